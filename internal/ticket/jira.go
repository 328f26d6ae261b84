package ticket

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
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// JiraFlavour is the Jira product: Cloud (REST v3, Atlassian Document Format) or Data
// Center (REST v2, wiki text).
type JiraFlavour string

// The Jira flavours, spelt as the secret's "flavour" field spells them.
const (
	JiraCloud      JiraFlavour = "cloud"
	JiraDataCenter JiraFlavour = "datacenter"
)

// JiraRetry bounds the retries of throttled (429) and failed (5xx, network) requests.
// Zero fields take the defaults.
type JiraRetry struct {
	// MaxAttempts is the number of tries of one request, the first included (default 4).
	MaxAttempts int
	// BaseDelay is the wait before the first retry, doubled for each further one
	// (default 500ms); each wait is drawn between half of it and all of it.
	BaseDelay time.Duration
	// MaxDelay caps each wait (default 20s). A Retry-After longer than MaxDelay is not
	// waited out: the request fails at once, saying so, so that the caller (the SQS
	// redelivery) retries later.
	MaxDelay time.Duration
}

const (
	defaultJiraAttempts  = 4
	defaultJiraBaseDelay = 500 * time.Millisecond
	defaultJiraMaxDelay  = 20 * time.Second
	defaultJiraIssueType = "Task"
	defaultJiraTimeout   = 30 * time.Second

	jiraLabel = "imdsguard"
	// jiraMaxSummary is the longest summary Jira takes, in characters.
	jiraMaxSummary = 255
	// jiraMaxLabel is the longest label Jira takes, in characters.
	jiraMaxLabel = 255
	// jiraMaxText is Jira's limit of a text field (description, comment body): 32,767
	// characters. The renderings are held to that many bytes of text (Data Center) or of
	// ADF JSON (Cloud), which is stricter.
	jiraMaxText = 32767
	// jiraMaxResponse bounds how much of a response is read.
	jiraMaxResponse = 1 << 20
	// jiraSearchLimit is how many open issues of one instance a search returns; there
	// should be one.
	jiraSearchLimit = 10
)

// Jira files tickets as Jira issues, one open issue per instance: each issue carries the
// labels "imdsguard" and InstanceLabel(instance id), and Open first searches the project
// for an issue with that label whose status category is not Done, so a retry or the next
// sweep finds the same issue; once it is resolved, the next Open creates a new one. The
// reference is the issue key.
//
// Jira Cloud is spoken to through REST v3 (ADF descriptions and comments, Basic auth
// with the account's e-mail and an API token, search at /rest/api/3/search/jql), Jira
// Data Center through REST v2 (wiki text, set in {noformat} so nothing in the evidence
// is rendered as markup; Basic auth with user and password, or a personal access token
// as Bearer).
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
type Jira struct {
	// HTTP is the client; nil means one with a 30 s timeout. Its redirect policy
	// (CheckRedirect) runs only after the Jira backend's own check, above, has passed.
	HTTP *http.Client
	// Site is the Jira base URL, e.g. https://example.atlassian.net or, for Data Center
	// under a context path, https://jira.example.com/jira.
	Site    *url.URL
	Auth    JiraAuth
	Flavour JiraFlavour
	// Project is the project key (e.g. SEC) and IssueType the issue type's name
	// (default Task).
	Project, IssueType string
	// Labels are added to every issue, after "imdsguard" and the instance's label.
	Labels []string
	Retry  JiraRetry
	// Logger gets a warning for each retry and for an instance with several open issues;
	// nil means slog.Default().
	Logger *slog.Logger
}

// NewJira is the Jira backend for a loaded secret, checked.
func NewJira(s JiraSecret, project, issueType string, labels []string) (*Jira, error) {
	j := &Jira{Site: s.SiteURL, Auth: s.Auth, Flavour: s.Flavour, Project: project, IssueType: issueType, Labels: labels}
	if err := j.Validate(); err != nil {
		return nil, err
	}
	return j, nil
}

// Name implements Backend.
func (j *Jira) Name() string { return "jira" }

// LogValue implements slog.LogValuer: the configuration, without the credential.
func (j *Jira) LogValue() slog.Value {
	site := ""
	if j.Site != nil {
		site = j.Site.Redacted()
	}
	return slog.GroupValue(slog.String("site_url", site), slog.String("flavour", string(j.Flavour)),
		slog.String("project", j.Project), slog.String("issue_type", j.issueType()),
		slog.Any("labels", j.Labels), slog.Any("auth", j.Auth))
}

var jiraKeyPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*-[0-9]+$`)

// Validate checks the configuration; every operation calls it first.
func (j *Jira) Validate() error {
	var problems []string
	if msg := checkSiteURL(j.Site); msg != "" {
		problems = append(problems, "the site URL "+msg)
	}
	switch j.Flavour {
	case JiraCloud:
		if j.Auth.User == "" || j.Auth.Password == "" || j.Auth.PAT != "" {
			problems = append(problems, "Jira Cloud needs an e-mail address and an API token (and no personal access token)")
		}
	case JiraDataCenter:
		if j.Auth.PAT == "" && (j.Auth.User == "" || j.Auth.Password == "") {
			problems = append(problems, "Jira Data Center needs a user and a password, or a personal access token")
		}
	default:
		problems = append(problems, fmt.Sprintf("the flavour %q is neither %q nor %q", j.Flavour, JiraCloud, JiraDataCenter))
	}
	if j.Project == "" {
		problems = append(problems, "the project key is missing")
	} else if strings.ContainsFunc(j.Project, func(r rune) bool { return unicode.IsSpace(r) || r == '"' || r == '\\' }) {
		problems = append(problems, fmt.Sprintf("the project key %q is not a key", j.Project))
	}
	for _, l := range j.Labels {
		switch {
		case l == "":
			problems = append(problems, "a label is empty")
		case strings.ContainsFunc(l, unicode.IsSpace):
			problems = append(problems, fmt.Sprintf("the label %q contains white space, which Jira labels cannot", l))
		case utf8.RuneCountInString(l) > jiraMaxLabel:
			problems = append(problems, fmt.Sprintf("the label %q is longer than %d characters", l, jiraMaxLabel))
		}
	}
	r := j.Retry
	if r.MaxAttempts < 0 || r.BaseDelay < 0 || r.MaxDelay < 0 {
		problems = append(problems, "the retry settings are negative")
	}
	if len(problems) > 0 {
		return errors.New("jira backend: " + strings.Join(problems, "; "))
	}
	return nil
}

// InstanceLabel is the Jira label that marks an instance's issues.
func InstanceLabel(instanceID string) string {
	l := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return '-'
		}
		return r
	}, jiraLabel+"-"+instanceID)
	return truncateRunes(l, jiraMaxLabel)
}

// Open returns the open issue of the instance, creating it when there is none.
func (j *Jira) Open(ctx context.Context, t Ticket) (string, error) {
	if err := j.Validate(); err != nil {
		return "", err
	}
	id := t.Verdict.InstanceID
	label := InstanceLabel(id)
	r := j.retry()
	// A failed create may still have created the issue: search again before each retry.
	for attempt := 1; ; attempt++ {
		key, err := j.findOpen(ctx, label)
		if err != nil {
			return "", fmt.Errorf("jira: looking for the open ticket of %s: %w", id, err)
		}
		if key != "" {
			return key, nil
		}
		key, err = j.create(ctx, t, label)
		if err == nil {
			return key, nil
		}
		wait, stop := j.next(ctx, err, attempt, r)
		if stop != nil {
			return "", fmt.Errorf("jira: opening the ticket for %s: %w", id, stop)
		}
		if serr := sleep(ctx, wait); serr != nil {
			return "", fmt.Errorf("jira: opening the ticket for %s: %w (stopped waiting to retry: %w)", id, err, serr)
		}
	}
}

// jiraIssueRef is an issue in a search result or a create response.
type jiraIssueRef struct {
	ID     string `json:"id"`
	Key    string `json:"key"`
	Fields struct {
		Status jiraStatus `json:"status"`
	} `json:"fields"`
}

type jiraStatus struct {
	Name           string `json:"name"`
	StatusCategory struct {
		Key string `json:"key"`
	} `json:"statusCategory"`
}

// findOpen returns the key of the oldest open issue with the label, or "".
func (j *Jira) findOpen(ctx context.Context, label string) (string, error) {
	jql := fmt.Sprintf("project = %s AND labels = %s AND statusCategory != Done ORDER BY created ASC", jqlQuote(j.Project), jqlQuote(label))
	path := j.api("search")
	if j.Flavour == JiraCloud {
		path = j.api("search", "jql")
	}
	var out struct {
		Issues []jiraIssueRef `json:"issues"`
	}
	in := map[string]any{"jql": jql, "fields": []string{"status", "labels", "created"}, "maxResults": jiraSearchLimit}
	if err := j.call(ctx, http.MethodPost, path, in, &out); err != nil {
		return "", err
	}
	var open []string
	for _, it := range out.Issues {
		if it.Key != "" && it.Fields.Status.StatusCategory.Key != "done" {
			open = append(open, it.Key)
		}
	}
	if len(open) == 0 {
		return "", nil
	}
	if len(open) > 1 {
		j.logger().Warn("jira: several open imdsguard tickets for one instance; using the oldest",
			"label", label, "issues", open)
	}
	return open[0], nil
}

// create creates the issue in one request: Open retries it, searching first.
func (j *Jira) create(ctx context.Context, t Ticket, label string) (string, error) {
	labels := []string{jiraLabel, label}
	for _, l := range j.Labels {
		if !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	fields := map[string]any{
		"project":     map[string]string{"key": j.Project},
		"issuetype":   map[string]string{"name": j.issueType()},
		"summary":     titleLine(t.Content.Title, jiraMaxSummary),
		"labels":      labels,
		"description": j.description(t.Content),
	}
	var out jiraIssueRef
	if err := j.once(ctx, http.MethodPost, j.api("issue"), map[string]any{"fields": fields}, &out); err != nil {
		return "", err
	}
	if out.Key == "" {
		return "", fmt.Errorf("jira: POST %s: the response names no issue key", j.api("issue"))
	}
	return out.Key, nil
}

// Update adds the new evidence to the issue as a comment.
func (j *Jira) Update(ctx context.Context, ref string, t Ticket) error {
	if err := j.checkRef(ref); err != nil {
		return err
	}
	if err := j.call(ctx, http.MethodPost, j.api("issue", ref, "comment"), map[string]any{"body": j.updateComment(t.Content)}, nil); err != nil {
		return fmt.Errorf("jira: adding new evidence for %s to %s: %w", t.Verdict.InstanceID, ref, err)
	}
	return nil
}

// Resolve adds the closing comment and moves the issue to a done status.
func (j *Jira) Resolve(ctx context.Context, ref string, c Closing) error {
	if err := j.checkRef(ref); err != nil {
		return err
	}
	if err := j.call(ctx, http.MethodPost, j.api("issue", ref, "comment"), map[string]any{"body": j.resolveComment(c)}, nil); err != nil {
		return fmt.Errorf("jira: adding the closing comment for %s to %s: %w", c.InstanceID, ref, err)
	}

	var ts struct {
		Transitions []jiraTransition `json:"transitions"`
	}
	if err := j.call(ctx, http.MethodGet, j.api("issue", ref, "transitions"), nil, &ts); err != nil {
		return fmt.Errorf("jira: listing the transitions of %s to resolve it for %s: %w", ref, c.InstanceID, err)
	}
	tr, ok := pickDoneTransition(ts.Transitions)
	if !ok {
		// Already done (a person closed it, or a retried Resolve): nothing to do.
		var issue jiraIssueRef
		if err := j.call(ctx, http.MethodGet, j.api("issue", ref)+"?fields=status", nil, &issue); err == nil &&
			issue.Fields.Status.StatusCategory.Key == "done" {
			return nil
		}
		return fmt.Errorf("jira: cannot resolve %s for %s: no transition leads to a done status (available: %s)",
			ref, c.InstanceID, describeTransitions(ts.Transitions))
	}
	in := map[string]any{"transition": map[string]string{"id": tr.ID}}
	if err := j.call(ctx, http.MethodPost, j.api("issue", ref, "transitions"), in, nil); err != nil {
		return fmt.Errorf("jira: resolving %s for %s with transition %q (%s): %w", ref, c.InstanceID, tr.Name, tr.ID, err)
	}
	return nil
}

// The bodies Jira gets. On Data Center every text from a ticket is inside noformat,
// on Cloud inside ADF text nodes; both within Jira's limit of a text field.

// description is an issue's description.
func (j *Jira) description(c Content) any {
	if j.Flavour == JiraCloud {
		return adfWithin(c, jiraMaxText)
	}
	return noformat(plainWithin(c, jiraMaxText-len(noformatOpen+noformatClose)))
}

const jiraUpdateIntro = "New evidence for this imdsguard ticket."

// updateComment is the comment that adds new evidence to an issue.
func (j *Jira) updateComment(c Content) any {
	if j.Flavour == JiraCloud {
		doc := adfWithin(c, jiraMaxText-512)
		content := doc["content"].([]any)
		doc["content"] = append([]any{adfParagraph([]Span{{jiraUpdateIntro, Strong}})}, content...)
		return doc
	}
	return jiraUpdateIntro + "\n\n" + noformat(plainWithin(c, jiraMaxText-len(jiraUpdateIntro)-len(noformatOpen+noformatClose)-2))
}

// resolveComment is the closing comment: its first line strong on Cloud.
func (j *Jira) resolveComment(c Closing) any {
	text := truncateBytes(c.Text(), jiraMaxText-len(noformatOpen+noformatClose)-4)
	if j.Flavour != JiraCloud {
		return noformat(text)
	}
	var content []any
	for i, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		style := Plain
		if i == 0 {
			style = Strong
		}
		content = append(content, adfParagraph([]Span{{line, style}}))
	}
	return map[string]any{"type": "doc", "version": 1, "content": content}
}

type jiraTransition struct {
	ID   string     `json:"id"`
	Name string     `json:"name"`
	To   jiraStatus `json:"to"`
}

// pickDoneTransition is the first transition to a status of the done category or,
// failing that, the first named (or leading to a status named) Done, Closed or Resolved.
func pickDoneTransition(ts []jiraTransition) (jiraTransition, bool) {
	for _, t := range ts {
		if t.To.StatusCategory.Key == "done" && t.ID != "" {
			return t, true
		}
	}
	for _, t := range ts {
		for _, name := range []string{"done", "closed", "resolved", "close", "resolve"} {
			if t.ID != "" && (strings.EqualFold(strings.TrimSpace(t.Name), name) || strings.EqualFold(strings.TrimSpace(t.To.Name), name)) {
				return t, true
			}
		}
	}
	return jiraTransition{}, false
}

func describeTransitions(ts []jiraTransition) string {
	if len(ts) == 0 {
		return "none; the issue may be closed already, or the user lacks the Transition Issues permission"
	}
	var out []string
	for _, t := range ts {
		out = append(out, fmt.Sprintf("%q (id %s) to %q", t.Name, t.ID, t.To.Name))
	}
	return strings.Join(out, ", ")
}

func (j *Jira) checkRef(ref string) error {
	if err := j.Validate(); err != nil {
		return err
	}
	if !jiraKeyPattern.MatchString(ref) {
		return fmt.Errorf("jira: %q is not an issue key", ref)
	}
	return nil
}

// --- HTTP ----------------------------------------------------------------------------

// JiraError is a Jira request that failed with an HTTP status. Its text never holds the
// credentials.
type JiraError struct {
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

func (e *JiraError) Error() string {
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
func (e *JiraError) Retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// jiraTransportError is a request that got no response. Its text is scrubbed.
type jiraTransportError struct {
	msg string
	err error
}

func (e *jiraTransportError) Error() string { return e.msg }
func (e *jiraTransportError) Unwrap() error { return e.err }

// call does one request, retrying as j.Retry allows.
func (j *Jira) call(ctx context.Context, method, path string, in, out any) error {
	r := j.retry()
	for attempt := 1; ; attempt++ {
		err := j.once(ctx, method, path, in, out)
		if err == nil {
			return nil
		}
		wait, stop := j.next(ctx, err, attempt, r)
		if stop != nil {
			return stop
		}
		if serr := sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (stopped waiting to retry: %w)", err, serr)
		}
	}
}

// next decides what follows a failed attempt: a wait before the next one, or (stop) the
// error to return.
func (j *Jira) next(ctx context.Context, err error, attempt int, r JiraRetry) (wait time.Duration, stop error) {
	var je *JiraError
	var te *jiraTransportError
	switch {
	case ctx.Err() != nil:
		return 0, err
	case errors.As(err, &je) && je.Retryable():
	case errors.As(err, &te):
	default:
		return 0, err
	}
	if attempt >= r.MaxAttempts {
		if attempt > 1 {
			return 0, fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		return 0, err
	}
	wait = r.backoff(attempt)
	if je != nil && je.RetryAfter > 0 {
		if je.RetryAfter > r.MaxDelay {
			return 0, fmt.Errorf("%w (not retried: Jira asks to wait %s, longer than the %s this client waits)", err, je.RetryAfter, r.MaxDelay)
		}
		wait = max(wait, je.RetryAfter)
	}
	status := 0
	if je != nil {
		status = je.Status
	}
	j.logger().Warn("jira: request failed, retrying", "error", err.Error(), "status", status,
		"attempt", attempt, "max_attempts", r.MaxAttempts, "wait", wait.String())
	return wait, nil
}

// once does one request: in (if not nil) is sent as JSON, a 2xx response decoded into
// out (if not nil).
func (j *Jira) once(ctx context.Context, method, path string, in, out any) error {
	u, err := j.Site.Parse(path)
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
		return fmt.Errorf("jira: %s %s: %s", method, shown, j.scrub(err.Error()))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "imdsguard")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	j.authorize(req)
	resp, err := j.client().Do(req)
	if err != nil {
		// The same request would meet the same redirect: not a transport error to retry.
		var refused *jiraRedirectError
		if errors.As(err, &refused) {
			return fmt.Errorf("jira: %s %s: %w", method, shown, refused)
		}
		return &jiraTransportError{msg: fmt.Sprintf("jira: %s %s: %s", method, shown, j.scrub(err.Error())), err: err}
	}
	defer resp.Body.Close()
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, jiraMaxResponse))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return j.statusError(method, shown, resp, raw)
	}
	if readErr != nil {
		return &jiraTransportError{msg: fmt.Sprintf("jira: %s %s: reading the response: %s", method, shown, j.scrub(readErr.Error())), err: readErr}
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("jira: %s %s: %d but the response is not the JSON expected: %s", method, shown, resp.StatusCode, j.scrub(err.Error()))
		}
	}
	return nil
}

func (j *Jira) statusError(method, path string, resp *http.Response, raw []byte) *JiraError {
	e := &JiraError{Method: method, Path: path, Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	var body struct {
		ErrorMessages []string          `json:"errorMessages"`
		Errors        map[string]string `json:"errors"`
		Message       string            `json:"message"`
	}
	if json.Unmarshal(raw, &body) == nil && (len(body.ErrorMessages) > 0 || len(body.Errors) > 0 || body.Message != "") {
		for _, m := range body.ErrorMessages {
			e.Messages = append(e.Messages, j.scrub(oneLine(m)))
		}
		if body.Message != "" {
			e.Messages = append(e.Messages, j.scrub(oneLine(body.Message)))
		}
		for k, v := range body.Errors {
			if e.Fields == nil {
				e.Fields = map[string]string{}
			}
			e.Fields[j.scrub(oneLine(k))] = j.scrub(oneLine(v))
		}
		return e
	}
	if excerpt := oneLine(string(raw)); excerpt != "" {
		e.Body = j.scrub(truncateRunes(excerpt, 200))
	}
	return e
}

// authorize sets the Authorization header.
func (j *Jira) authorize(req *http.Request) {
	if j.Flavour == JiraDataCenter && j.Auth.PAT != "" {
		req.Header.Set("Authorization", "Bearer "+j.Auth.PAT.Reveal())
		return
	}
	req.SetBasicAuth(j.Auth.User, j.Auth.Password.Reveal())
}

// scrub removes the credentials from a text bound for an error or a log line, in case
// a server or a proxy echoed them.
func (j *Jira) scrub(s string) string {
	secrets := []string{j.Auth.Password.Reveal(), j.Auth.PAT.Reveal()}
	if j.Auth.Password != "" {
		secrets = append(secrets, base64.StdEncoding.EncodeToString([]byte(j.Auth.User+":"+j.Auth.Password.Reveal())))
	}
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, redacted)
		}
	}
	return s
}

func (j *Jira) api(parts ...string) string {
	version := "2"
	if j.Flavour == JiraCloud {
		version = "3"
	}
	escaped := make([]string, len(parts))
	for i, p := range parts {
		escaped[i] = url.PathEscape(p)
	}
	// Relative to the site's path, which may be a Data Center context path.
	base := strings.TrimSuffix(j.Site.Path, "/")
	return base + "/rest/api/" + version + "/" + strings.Join(escaped, "/")
}

// client is the HTTP client with the backend's redirect check in front of its own: a
// caller's client is copied (sharing its transport and so its connections) rather than
// changed.
func (j *Jira) client() *http.Client {
	if j.HTTP == nil {
		return defaultJiraClient
	}
	c := *j.HTTP
	c.CheckRedirect = sameOriginRedirects(j.HTTP.CheckRedirect)
	return &c
}

var defaultJiraClient = &http.Client{Timeout: defaultJiraTimeout, CheckRedirect: sameOriginRedirects(nil)}

// maxJiraRedirects is Go's default limit, kept when the client has no policy of its own.
const maxJiraRedirects = 10

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
			return &jiraRedirectError{status: status, target: redirectTarget(req.URL),
				why: fmt.Sprintf("it leaves %s, and the Jira credentials go nowhere else (is the site URL the address Jira answers on?)", from)}
		}
		if req.Method != first.Method {
			return &jiraRedirectError{status: status, target: redirectTarget(req.URL),
				why: fmt.Sprintf("following it would send a %s without its body instead of the %s", req.Method, first.Method)}
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= maxJiraRedirects {
			return fmt.Errorf("stopped after %d redirects", maxJiraRedirects)
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

// jiraRedirectError is a redirect the Jira client refused to follow.
type jiraRedirectError struct {
	status int
	target string
	why    string
}

func (e *jiraRedirectError) Error() string {
	return fmt.Sprintf("refused to follow the %d %s redirect to %s: %s", e.status, http.StatusText(e.status), e.target, e.why)
}

func (j *Jira) issueType() string {
	if j.IssueType == "" {
		return defaultJiraIssueType
	}
	return j.IssueType
}

func (j *Jira) logger() *slog.Logger {
	if j.Logger == nil {
		return slog.Default()
	}
	return j.Logger
}

func (j *Jira) retry() JiraRetry {
	r := j.Retry
	if r.MaxAttempts == 0 {
		r.MaxAttempts = defaultJiraAttempts
	}
	if r.BaseDelay == 0 {
		r.BaseDelay = defaultJiraBaseDelay
	}
	if r.MaxDelay == 0 {
		r.MaxDelay = defaultJiraMaxDelay
	}
	return r
}

// backoff is the wait after the given failed attempt (1-based): BaseDelay doubled per
// attempt, capped at MaxDelay, drawn from its upper half.
func (r JiraRetry) backoff(attempt int) time.Duration {
	d := r.BaseDelay
	for i := 1; i < attempt && d < r.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, r.MaxDelay)
	if half := d / 2; half > 0 {
		d = half + rand.N(half+1)
	}
	return d
}

// retryAfter parses a Retry-After header: seconds or an HTTP date. 0 when absent or
// unreadable.
func retryAfter(h string) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil {
		return max(0, time.Duration(s)*time.Second)
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// --- rendering -------------------------------------------------------------------------

// jqlQuote is a JQL string literal.
func jqlQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

const (
	noformatOpen  = "{noformat}\n"
	noformatClose = "\n{noformat}"
)

// noformatStart is the start of a {noformat} macro, with or without parameters.
var noformatStart = regexp.MustCompile(`(?i)\{noformat`)

// noformat sets text in a {noformat} block, so Data Center's wiki renderer shows it as
// it is. Inside the block the one piece of markup is another {noformat}: it ends the
// block, and whatever follows is live wiki markup (links, images, macros). So the
// brace of every "{noformat" inside becomes a fullwidth one (U+FF5B). Removing the
// macro instead would let the text around it join into a new one ("{no{noformat}format}"
// becomes "{noformat}"); replacing a brace with a character that is no brace cannot
// form one.
func noformat(text string) string {
	body := noformatStart.ReplaceAllStringFunc(text, func(m string) string { return "\uFF5B" + m[1:] })
	return noformatOpen + strings.TrimRight(body, "\n") + noformatClose
}

// oneLine folds white space, including line breaks, to single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// plainWithin renders PlainText in at most maxBytes bytes: the full text when it fits,
// else the compact ticket (evidence last), cut at a line and saying so, with the footer.
func plainWithin(c Content, maxBytes int) string {
	if t := c.PlainText(); len(t) <= maxBytes {
		return t
	}
	t := c.compact().PlainText()
	if len(t) <= maxBytes {
		return t
	}
	footer := "\n" + plainSpans(c.Footer) + "\n"
	const notice = "\nShortened: the rest of this ticket did not fit.\n"
	body := strings.TrimSuffix(t, footer)
	kept := strings.TrimRight(truncateLines(body, max(0, maxBytes-len(footer)-len(notice))), "\n")
	for {
		// A heading whose section was cut away says nothing.
		last := kept[strings.LastIndexByte(kept, '\n')+1:]
		if !(strings.HasPrefix(last, "== ") || strings.HasPrefix(last, "!! ")) {
			break
		}
		kept = strings.TrimRight(strings.TrimSuffix(kept, last), "\n")
	}
	return truncateBytes(kept+"\n"+notice+footer, maxBytes)
}

// adfWithin renders ADF whose JSON takes at most maxBytes bytes: the full document when
// it fits, else the compact one (evidence last) with top-level blocks dropped from the
// end, saying so, with the footer.
func adfWithin(c Content, maxBytes int) map[string]any {
	if doc := c.ADF(); adfSize(doc) <= maxBytes {
		return doc
	}
	doc := c.compact().ADF()
	if adfSize(doc) <= maxBytes {
		return doc
	}
	content := doc["content"].([]any)
	if len(content) < 3 {
		return doc
	}
	// The title heading, the middle, the rule and the footer.
	head, tail := content[:1], content[len(content)-2:]
	middle := slices.Clone(content[1 : len(content)-2])
	notice := adfParagraph([]Span{{"Shortened:", Strong}, {" the rest of this ticket did not fit.", Plain}})
	for {
		if len(middle) > 0 {
			middle = middle[:len(middle)-1]
		}
		for len(middle) > 0 {
			if m, _ := middle[len(middle)-1].(map[string]any); m["type"] != "heading" {
				break
			}
			middle = middle[:len(middle)-1]
		}
		out := slices.Concat(head, middle, []any{notice}, tail)
		doc := map[string]any{"type": "doc", "version": 1, "content": out}
		if adfSize(doc) <= maxBytes || len(middle) == 0 {
			return doc
		}
	}
}

func adfSize(doc map[string]any) int {
	b, err := json.Marshal(doc)
	if err != nil {
		return 0
	}
	return len(b)
}
