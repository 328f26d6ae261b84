package ticket

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/imdsguard/imdsguard/internal/ticket/jira"
)

// recorder is a server that notes every request it gets and the Authorization it
// carried; it answers 200 with an empty search result.
type recorder struct {
	mu    sync.Mutex
	auths []string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.auths = append(rec.auths, r.Header.Get("Authorization"))
	rec.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"issues":[]}`))
}

func (rec *recorder) requests() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.auths...)
}

// redirector answers every request with status and a Location on target, the path kept,
// and counts the requests.
type redirector struct {
	status int
	target string
	mu     sync.Mutex
	n      int
}

func (rd *redirector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rd.mu.Lock()
	rd.n++
	rd.mu.Unlock()
	http.Redirect(w, r, rd.target+r.URL.Path, rd.status)
}

func (rd *redirector) requests() int {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.n
}

var redirectStatuses = []int{
	http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
	http.StatusTemporaryRedirect, http.StatusPermanentRedirect,
}

// loopbackDialer dials 127.0.0.1 at the port asked for, whatever the host: it lets a
// test use host names (localhost and a subdomain of it) on loopback servers.
func loopbackDialer() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}
	return tr
}

func portOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// TestJiraRefusesRedirectsElsewhere: a Jira site (or whatever answers at its address)
// that redirects to another port, down from https to http, or to a subdomain gets one
// request and an error naming the target; the target gets nothing, so never the
// credentials Go's client would carry there. Go forwards Authorization on each of
// these: the host name is the same, or the target is a subdomain.
func TestJiraRefusesRedirectsElsewhere(t *testing.T) {
	target := &recorder{}
	targetSrv := httptest.NewServer(target)
	t.Cleanup(targetSrv.Close)
	targetPort := portOf(t, targetSrv.URL)

	type redirectCase struct {
		name string
		// start serves h and returns the site URL and the client to use (nil: the default).
		start func(h http.Handler) (site string, client *http.Client)
		// to is where the redirect goes.
		to string
	}
	origins := []redirectCase{
		{"another port, default client", func(h http.Handler) (string, *http.Client) {
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			return srv.URL, nil
		}, targetSrv.URL},
		{"https to http, caller's client", func(h http.Handler) (string, *http.Client) {
			srv := httptest.NewTLSServer(h)
			t.Cleanup(srv.Close)
			return srv.URL, srv.Client()
		}, targetSrv.URL},
		{"subdomain, caller's client that follows everything", func(h http.Handler) (string, *http.Client) {
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			return "http://localhost:" + portOf(t, srv.URL), &http.Client{
				Transport:     loopbackDialer(),
				CheckRedirect: func(*http.Request, []*http.Request) error { return nil },
			}
		}, "http://evil.localhost:" + targetPort},
	}
	for _, c := range jiraCases() {
		for _, o := range origins {
			for _, status := range redirectStatuses {
				rd := &redirector{status: status, target: o.to}
				site, client := o.start(rd)
				siteURL, err := url.Parse(site)
				if err != nil {
					t.Fatal(err)
				}
				j := &Jira{Client: jira.Client{HTTP: client, Site: siteURL, Auth: c.auth, Flavour: c.flavour, Retry: fastRetry}, Project: "SEC"}
				name := c.name + ", " + o.name + ", " + http.StatusText(status)

				_, err = j.Open(testCtx(t), NewTicket(metricVerdict(), ComposeOptions{}))
				if err == nil {
					t.Fatalf("%s: Open followed the redirect to %s", name, o.to)
				}
				msg := err.Error()
				if !strings.Contains(msg, "refused to follow the") || !strings.Contains(msg, o.to+"/rest/api/") {
					t.Errorf("%s: error does not say which redirect was refused: %v", name, err)
				}
				checkNoSecrets(t, c.secrets, msg)
				if n := rd.requests(); n != 1 {
					t.Errorf("%s: the site got %d requests, want 1 (a refused redirect is not retried)", name, n)
				}
			}
		}
	}
	if got := target.requests(); len(got) != 0 {
		t.Errorf("the redirect target got %d requests, with Authorization %q", len(got), got)
	}
}

// TestJiraSameOriginRedirects: a redirect within the site's origin that keeps the method
// is followed, credentials and body included (here a proxy that moved Jira from /old to
// /); one that would turn the POST into a GET is refused, and so is whatever the
// caller's own CheckRedirect refuses.
func TestJiraSameOriginRedirects(t *testing.T) {
	for _, status := range redirectStatuses {
		c := jiraCases()[1]
		srv, j, _ := newJira(t, c, "")
		jiraURL, err := url.Parse(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		proxy := httputil.NewSingleHostReverseProxy(jiraURL)
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if rest, moved := strings.CutPrefix(r.URL.Path, "/old"); moved {
				http.Redirect(w, r, rest, status)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		t.Cleanup(front.Close)
		j.Client.Site, _ = url.Parse(front.URL + "/old")
		name := http.StatusText(status)

		key, err := j.Open(testCtx(t), NewTicket(metricVerdict(), ComposeOptions{}))
		keepsMethod := status == http.StatusTemporaryRedirect || status == http.StatusPermanentRedirect
		switch {
		case keepsMethod && err != nil:
			t.Errorf("%s: Open through a same-origin redirect: %v", name, err)
		case keepsMethod && len(srv.Issues()) != 1:
			t.Errorf("%s: Open returned %s but Jira has %d issues", name, key, len(srv.Issues()))
		case !keepsMethod && (err == nil || !strings.Contains(err.Error(), "without its body instead of the POST")):
			t.Errorf("%s: Open = %q, %v; want the POST-to-GET redirect refused", name, key, err)
		case !keepsMethod && srv.Requests() != 0:
			t.Errorf("%s: Jira got %d requests after a refused redirect", name, srv.Requests())
		}

		if !keepsMethod {
			continue
		}
		refuse := errors.New("the caller's policy says no")
		j.Client.HTTP = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return refuse }}
		if _, err := j.Open(testCtx(t), NewTicket(cloudTrailVerdict(), ComposeOptions{})); !errors.Is(err, refuse) {
			t.Errorf("%s: Open with a caller's CheckRedirect that refuses = %v, want %v", name, err, refuse)
		}
	}
}
