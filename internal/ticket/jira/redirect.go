package jira

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// httpClient is the HTTP client with the same-origin redirect check in front of its own:
// a caller's client is copied (sharing its transport and so its connections) rather than
// changed.
func (c *Client) httpClient() *http.Client {
	if c.HTTP == nil {
		return defaultHTTPClient
	}
	hc := *c.HTTP
	hc.CheckRedirect = sameOriginRedirects(c.HTTP.CheckRedirect)
	return &hc
}

var defaultHTTPClient = &http.Client{Timeout: defaultTimeout, CheckRedirect: sameOriginRedirects(nil)}

// maxRedirects is Go's default limit, kept when the client has no policy of its own.
const maxRedirects = 10

// sameOriginRedirects is a CheckRedirect that refuses a redirect leaving the first
// request's origin or changing its method, then applies next (Go's default policy when
// nil). It runs before the redirected request is sent, so a refused target receives
// nothing.
func sameOriginRedirects(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		first := via[0]
		status := 0
		if req.Response != nil {
			status = req.Response.StatusCode
		}
		if from, to := origin(first.URL), origin(req.URL); from != to {
			return &redirectError{status: status, target: redirectTarget(req.URL),
				why: fmt.Sprintf("it leaves %s, and the Jira credentials go nowhere else (is the site URL the address Jira answers on?)", from)}
		}
		if req.Method != first.Method {
			return &redirectError{status: status, target: redirectTarget(req.URL),
				why: fmt.Sprintf("following it would send a %s without its body instead of the %s", req.Method, first.Method)}
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
}

// origin is a URL's scheme, host and port, the port spelt out when it is the default.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// redirectTarget is a redirect's URL for an error: without user info, query or fragment,
// which a server chose and which may carry anything.
func redirectTarget(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// redirectError is a redirect the client refused to follow.
type redirectError struct {
	status int
	target string
	why    string
}

func (e *redirectError) Error() string {
	return fmt.Sprintf("refused to follow the %d %s redirect to %s: %s", e.status, http.StatusText(e.status), e.target, e.why)
}
