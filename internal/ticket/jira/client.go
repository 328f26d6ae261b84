// Package jira is a client of the Jira REST API, for Jira Cloud (REST v3) and Jira Data
// Center (REST v2): the issue operations the ticket backend needs, with retries of
// throttled and failed requests (Retry, Retry-After), no redirect that leaves the site
// (redirect.go), credentials that never show in an error or a log line (Credential,
// scrubbing of Jira's texts), and the secret they are loaded from (secret.go).
//
// It knows Jira's REST, not tickets: what an issue holds and which issue belongs to
// which instance is the ticket package's.
package jira

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Flavour is the Jira product: Cloud (REST v3, Atlassian Document Format) or Data
// Center (REST v2, wiki text).
type Flavour string

// The Jira flavours, spelt as the secret's "flavour" field spells them.
const (
	Cloud      Flavour = "cloud"
	DataCenter Flavour = "datacenter"
)

const (
	defaultTimeout = 30 * time.Second
	// maxResponse bounds how much of a response is read.
	maxResponse = 1 << 20
)

// Client speaks to one Jira site as one user. Its zero fields take defaults; its methods
// assume a configuration without Problems (the ticket backend checks them before every
// operation). It holds no state of its own, so a copy is another client.
//
// Cloud is spoken to through REST v3 (Basic auth with the account's e-mail and an API
// token, search at /rest/api/3/search/jql), Data Center through REST v2 (Basic auth with
// user and password, or a personal access token as Bearer).
//
// Errors and log lines never hold the credentials: every text from Jira that goes into
// an error is scrubbed of them too.
//
// The credentials go to the site's origin (scheme, host and port) only. A redirect is
// followed only when it stays there and keeps the request's method; any other fails the
// call at once, unretried, with an error naming the target, before anything is sent to
// it. Go's client would carry the Authorization header to another port of the same host,
// to a subdomain and from https down to http. A same-origin redirect is harmless to the
// credentials (a reverse proxy canonicalising a Data Center's context path sends them),
// but a 301, 302 or 303 answer to a POST would turn it into a GET without its body: a
// search without its JQL, whose issues are some other instance's, so those are refused
// too.
type Client struct {
	// HTTP is the client; nil means one with a 30 s timeout. Its redirect policy
	// (CheckRedirect) runs only after the client's own check, above, has passed.
	HTTP *http.Client
	// Site is the Jira base URL, e.g. https://example.atlassian.net or, for Data Center
	// under a context path, https://jira.example.com/jira.
	Site    *url.URL
	Auth    Auth
	Flavour Flavour
	Retry   Retry
	// Logger gets a warning for each retry; nil means slog.Default().
	Logger *slog.Logger
}

// Problems says what is wrong with the configuration, one phrase each; none when the
// client can be used.
func (c *Client) Problems() []string {
	var problems []string
	if msg := checkSiteURL(c.Site); msg != "" {
		problems = append(problems, "the site URL "+msg)
	}
	switch c.Flavour {
	case Cloud:
		if c.Auth.User == "" || c.Auth.Password == "" || c.Auth.PAT != "" {
			problems = append(problems, "Jira Cloud needs an e-mail address and an API token (and no personal access token)")
		}
	case DataCenter:
		if c.Auth.PAT == "" && (c.Auth.User == "" || c.Auth.Password == "") {
			problems = append(problems, "Jira Data Center needs a user and a password, or a personal access token")
		}
	default:
		problems = append(problems, fmt.Sprintf("the flavour %q is neither %q nor %q", c.Flavour, Cloud, DataCenter))
	}
	r := c.Retry
	if r.MaxAttempts < 0 || r.BaseDelay < 0 || r.MaxDelay < 0 {
		problems = append(problems, "the retry settings are negative")
	}
	return problems
}

// Error is a Jira request that failed with an HTTP status. Its text never holds the
// credentials.
type Error struct {
	Method string
	// Path is the request's path (the site's context path included), without query.
	Path   string
	Status int
	// Messages and Fields are Jira's errorMessages and errors.
	Messages []string
	Fields   map[string]string
	// Body is an excerpt of a response that is not Jira's error JSON (a proxy's page).
	Body string
	// RetryAfter is the response's Retry-After, 0 when it has none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "jira: %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if len(e.Messages) > 0 {
		b.WriteString(": " + strings.Join(e.Messages, "; "))
	}
	if len(e.Fields) > 0 {
		var fs []string
		for _, k := range slices.Sorted(maps.Keys(e.Fields)) {
			fs = append(fs, k+": "+e.Fields[k])
		}
		b.WriteString(" (" + strings.Join(fs, "; ") + ")")
	}
	if e.Body != "" {
		b.WriteString(": " + e.Body)
	}
	return b.String()
}

// Retryable reports whether the request may succeed when tried again: 429 and 5xx.
func (e *Error) Retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// transportError is a request that got no response. Its text is scrubbed.
type transportError struct {
	msg string
	err error
}

func (e *transportError) Error() string { return e.msg }
func (e *transportError) Unwrap() error { return e.err }

// once does one request: in (if not nil) is sent as JSON, a 2xx response decoded into
// out (if not nil).
func (c *Client) once(ctx context.Context, method, path string, in, out any) error {
	u, err := c.Site.Parse(path)
	if err != nil {
		return fmt.Errorf("jira: %s %s: %w", method, path, err)
	}
	shown := u.Path
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("jira: %s %s: encoding the request: %w", method, shown, err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("jira: %s %s: %s", method, shown, c.scrub(err.Error()))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "imdsguard")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.authorize(req)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		// The same request would meet the same redirect: not a transport error to retry.
		var refused *redirectError
		if errors.As(err, &refused) {
			return fmt.Errorf("jira: %s %s: %w", method, shown, refused)
		}
		return &transportError{msg: fmt.Sprintf("jira: %s %s: %s", method, shown, c.scrub(err.Error())), err: err}
	}
	defer resp.Body.Close()
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.statusError(method, shown, resp, raw)
	}
	if readErr != nil {
		return &transportError{msg: fmt.Sprintf("jira: %s %s: reading the response: %s", method, shown, c.scrub(readErr.Error())), err: readErr}
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("jira: %s %s: %d but the response is not the JSON expected: %s", method, shown, resp.StatusCode, c.scrub(err.Error()))
		}
	}
	return nil
}

func (c *Client) statusError(method, path string, resp *http.Response, raw []byte) *Error {
	e := &Error{Method: method, Path: path, Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	var body struct {
		ErrorMessages []string          `json:"errorMessages"`
		Errors        map[string]string `json:"errors"`
		Message       string            `json:"message"`
	}
	if json.Unmarshal(raw, &body) == nil && (len(body.ErrorMessages) > 0 || len(body.Errors) > 0 || body.Message != "") {
		for _, m := range body.ErrorMessages {
			e.Messages = append(e.Messages, c.scrub(oneLine(m)))
		}
		if body.Message != "" {
			e.Messages = append(e.Messages, c.scrub(oneLine(body.Message)))
		}
		for k, v := range body.Errors {
			if e.Fields == nil {
				e.Fields = map[string]string{}
			}
			e.Fields[c.scrub(oneLine(k))] = c.scrub(oneLine(v))
		}
		return e
	}
	if excerpt := oneLine(string(raw)); excerpt != "" {
		e.Body = c.scrub(truncateRunes(excerpt, 200))
	}
	return e
}

// authorize sets the Authorization header.
func (c *Client) authorize(req *http.Request) {
	if c.Flavour == DataCenter && c.Auth.PAT != "" {
		req.Header.Set("Authorization", "Bearer "+c.Auth.PAT.Reveal())
		return
	}
	req.SetBasicAuth(c.Auth.User, c.Auth.Password.Reveal())
}

// scrub removes the credentials from a text bound for an error or a log line, in case
// a server or a proxy echoed them.
func (c *Client) scrub(s string) string {
	secrets := []string{c.Auth.Password.Reveal(), c.Auth.PAT.Reveal()}
	if c.Auth.Password != "" {
		secrets = append(secrets, base64.StdEncoding.EncodeToString([]byte(c.Auth.User+":"+c.Auth.Password.Reveal())))
	}
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, Redacted)
		}
	}
	return s
}

// path is the path of a REST resource, each part escaped, under the site's path (which
// may be a Data Center context path): REST v3 on Cloud, v2 on Data Center.
func (c *Client) path(parts ...string) string {
	version := "2"
	if c.Flavour == Cloud {
		version = "3"
	}
	escaped := make([]string, len(parts))
	for i, p := range parts {
		escaped[i] = url.PathEscape(p)
	}
	base := strings.TrimSuffix(c.Site.Path, "/")
	return base + "/rest/api/" + version + "/" + strings.Join(escaped, "/")
}

func (c *Client) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// oneLine folds white space, including line breaks, to single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// truncateRunes keeps s within max runes, ending with "…" when cut.
func truncateRunes(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}
