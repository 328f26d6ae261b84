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
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/ticket/jira"
)

// jiraCase is one Jira product and way of signing in.
type jiraCase struct {
	name    string
	flavor  fakeaws.JiraFlavor
	flavour jira.Flavour
	auth    jira.Auth
	// secrets are what must never show in an error or a log line.
	secrets []string
	version int
	search  string // the search path
}

func jiraCases() []jiraCase {
	basic := func(user, pass string) string { return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)) }
	return []jiraCase{
		{"cloud", fakeaws.JiraCloud, jira.Cloud,
			jira.Auth{User: fakeaws.JiraTestEmail, Password: fakeaws.JiraTestAPIToken},
			[]string{fakeaws.JiraTestAPIToken, basic(fakeaws.JiraTestEmail, fakeaws.JiraTestAPIToken)},
			3, "/rest/api/3/search/jql"},
		{"datacenter password", fakeaws.JiraDataCenter, jira.DataCenter,
			jira.Auth{User: fakeaws.JiraTestUsername, Password: fakeaws.JiraTestPassword},
			[]string{fakeaws.JiraTestPassword, basic(fakeaws.JiraTestUsername, fakeaws.JiraTestPassword)},
			2, "/rest/api/2/search"},
		{"datacenter pat", fakeaws.JiraDataCenter, jira.DataCenter,
			jira.Auth{PAT: fakeaws.JiraTestPAT},
			[]string{fakeaws.JiraTestPAT},
			2, "/rest/api/2/search"},
	}
}

// syncBuffer is a log sink safe for the concurrent writes of an HTTP client.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fastRetry keeps the tests free of real waits.
var fastRetry = jira.Retry{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

// newJira starts a stand-in of the case's flavour (Retry-After 0 unless given) and a
// backend for it that logs into the returned buffer.
func newJira(t *testing.T, c jiraCase, retryAfter string) (*fakeaws.Jira, *Jira, *syncBuffer) {
	t.Helper()
	if retryAfter == "" {
		retryAfter = "0"
	}
	srv := fakeaws.NewJira(fakeaws.JiraOptions{Flavor: c.flavor, RetryAfter: retryAfter})
	t.Cleanup(srv.Close)
	site, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	j := &Jira{
		Client: jira.Client{HTTP: &http.Client{Timeout: 30 * time.Second}, Site: site, Auth: c.auth, Flavour: c.flavour,
			Retry: fastRetry, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))},
		Project: "SEC", IssueType: "Task", Labels: []string{"security", "team-platform"},
	}
	return srv, j, logs
}

// checkNoSecrets fails when any of the texts holds a secret.
func checkNoSecrets(t *testing.T, secrets []string, texts ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, text := range texts {
			if strings.Contains(text, s) {
				t.Errorf("a secret shows in %q", text)
			}
		}
	}
}

func issueByKey(t *testing.T, srv *fakeaws.Jira, key string) fakeaws.JiraIssue {
	t.Helper()
	for _, it := range srv.Issues() {
		if it.Key == key {
			return it
		}
	}
	t.Fatalf("no issue %s", key)
	return fakeaws.JiraIssue{}
}

func jsonEqual(t *testing.T, a json.RawMessage, b any) bool {
	t.Helper()
	var x, y any
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(raw, &y) != nil {
		return false
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}

func adfOf(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("not ADF JSON: %v", err)
	}
	if doc["type"] != "doc" {
		t.Fatalf("ADF root type %v", doc["type"])
	}
	return doc
}

func TestJiraLifecycle(t *testing.T) {
	for _, c := range jiraCases() {
		t.Run(c.name, func(t *testing.T) {
			srv, j, logs := newJira(t, c, "")
			ctx := testCtx(t)
			tk := NewTicket(metricVerdict(), ComposeOptions{ExemptTag: testTag})

			key, err := j.Open(ctx, tk)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			issues := srv.Issues()
			if len(issues) != 1 || issues[0].Key != key {
				t.Fatalf("after Open: %d issues, want 1 with key %s", len(issues), key)
			}
			it := issues[0]
			wantLabels := []string{"imdsguard", "imdsguard-i-0abc1234def567890", "security", "team-platform"}
			if it.Summary != tk.Content.Title || it.Project != "SEC" || it.IssueType != "Task" ||
				strings.Join(it.Labels, ",") != strings.Join(wantLabels, ",") || it.APIVersion != c.version || it.StatusCategory != "new" {
				t.Errorf("issue %+v", it)
			}
			if c.flavour == jira.Cloud {
				if !jsonEqual(t, it.DescriptionADF, tk.Content.ADF()) {
					t.Errorf("Cloud description is not the ticket's ADF: %s", it.DescriptionADF)
				}
			} else if want := "{noformat}\n" + strings.TrimRight(tk.Content.PlainText(), "\n") + "\n{noformat}"; it.Description != want {
				t.Errorf("Data Center description:\n%s\nwant:\n%s", it.Description, want)
			}

			// The next sweep finds the open issue.
			again, err := j.Open(ctx, NewTicket(metricVerdict(), ComposeOptions{ExemptTag: testTag}))
			if err != nil || again != key {
				t.Fatalf("second Open = %q, %v; want %s", again, err, key)
			}
			if n := len(srv.Issues()); n != 1 {
				t.Fatalf("second Open created an issue: %d issues", n)
			}
			// Another instance gets its own issue.
			other, err := j.Open(ctx, NewTicket(cloudTrailVerdict(), ComposeOptions{}))
			if err != nil || other == key || len(srv.Issues()) != 2 {
				t.Fatalf("Open for another instance = %q, %v; %d issues", other, err, len(srv.Issues()))
			}

			// New evidence: one comment.
			nv := metricVerdict()
			nv.Evidence.CloudTrail = &message.CloudTrail{}
			nv.Evidence.CloudTrail.V1Deliveries = 1
			nv.Evidence.CloudTrail.UserAgents = []string{uaBoto}
			nt := NewTicket(nv, ComposeOptions{ExemptTag: testTag})
			if err := j.Update(ctx, key, nt); err != nil {
				t.Fatalf("Update: %v", err)
			}
			it = issueByKey(t, srv, key)
			if len(it.Comments) != 1 {
				t.Fatalf("%d comments after Update", len(it.Comments))
			}
			cm := it.Comments[0]
			if cm.APIVersion != c.version {
				t.Errorf("comment through REST v%d", cm.APIVersion)
			}
			if c.flavour == jira.Cloud {
				doc := adfOf(t, cm.BodyADF)
				checkADF(t, "comment", roundTrip(t, doc), "")
				text := adfText(doc)
				for _, w := range []string{"New evidence for this imdsguard ticket.", uaBoto, "Boto3", tk.Content.Title} {
					if !strings.Contains(text, w) {
						t.Errorf("Cloud comment lacks %q:\n%s", w, text)
					}
				}
			} else {
				if !strings.HasPrefix(cm.Body, "New evidence for this imdsguard ticket.\n\n{noformat}\n") ||
					!strings.HasSuffix(cm.Body, "\n{noformat}") || !strings.Contains(cm.Body, uaBoto) {
					t.Errorf("Data Center comment:\n%s", cm.Body)
				}
				if strings.Contains(cm.Body, `"type":"doc"`) {
					t.Errorf("Data Center comment holds ADF")
				}
			}

			closing := Closing{AccountID: nv.AccountID, Region: nv.Region, InstanceID: nv.InstanceID,
				Why: "HttpTokens is now required.", DecisionID: "0192f0a1b2d00-fedcba9876543210", At: fixedNow}
			if err := j.Resolve(ctx, key, closing); err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			it = issueByKey(t, srv, key)
			if it.StatusCategory != "done" || len(it.Comments) != 2 {
				t.Fatalf("after Resolve: status %s (%s), %d comments", it.Status, it.StatusCategory, len(it.Comments))
			}
			for _, w := range []string{closing.Title(), closing.Why, closing.DecisionID} {
				if !strings.Contains(it.Comments[1].Body, w) {
					t.Errorf("closing comment lacks %q:\n%s", w, it.Comments[1].Body)
				}
			}
			if issueByKey(t, srv, other).StatusCategory != "new" {
				t.Errorf("Resolve closed the other instance's issue")
			}

			// IMDSv1 comes back: a new issue.
			next, err := j.Open(ctx, tk)
			if err != nil {
				t.Fatalf("Open after Resolve: %v", err)
			}
			if next == key || len(srv.Issues()) != 3 || issueByKey(t, srv, next).StatusCategory != "new" {
				t.Fatalf("Open after Resolve = %s (resolved %s); %d issues", next, key, len(srv.Issues()))
			}
			checkNoSecrets(t, c.secrets, logs.String())
		})
	}
}

func TestJiraContent(t *testing.T) {
	for _, c := range jiraCases()[:2] {
		t.Run(c.name, func(t *testing.T) {
			for _, tc := range []struct {
				name   string
				v      message.Verdict
				dryRun bool
				cut    bool
			}{
				{"theft dry-run", theftVerdict(), true, false},
				{"30 long user agents", bigVerdict(), false, false},
				{"and 30 long addresses", hugeVerdict(), false, true},
			} {
				srv, j, _ := newJira(t, c, "")
				ctx := testCtx(t)
				tk := NewTicket(tc.v, ComposeOptions{ExemptTag: testTag, DryRun: tc.dryRun})
				key, err := j.Open(ctx, tk)
				if err != nil {
					t.Fatalf("%s: Open: %v", tc.name, err)
				}
				it := issueByKey(t, srv, key)
				if tc.dryRun != strings.HasPrefix(it.Summary, "[dry-run] ") {
					t.Errorf("%s: summary %q", tc.name, it.Summary)
				}
				desc := it.Description
				if c.flavour == jira.Cloud {
					checkADF(t, tc.name, roundTrip(t, adfOf(t, it.DescriptionADF)), "")
					desc = adfText(adfOf(t, it.DescriptionADF))
					if n := len(it.DescriptionADF); n > jiraMaxText {
						t.Errorf("%s: ADF description of %d bytes", tc.name, n)
					}
				} else if n := utf8.RuneCountInString(desc); n > jiraMaxText {
					t.Errorf("%s: description of %d characters", tc.name, n)
				}
				for _, w := range []string{tk.Verdict.DecisionID, "WARNING: possible credential theft", "Revoke"} {
					if !strings.Contains(strings.ToUpper(desc), strings.ToUpper(w)) {
						t.Errorf("%s: description lacks %q", tc.name, w)
					}
				}
				// A rendering over the limit was shortened, one within it was not.
				full := len(tk.Content.PlainText()) > jiraMaxText-len(noformatOpen+noformatClose)
				if c.flavour == jira.Cloud {
					full = adfSize(tk.Content.ADF()) > jiraMaxText
				}
				if full != tc.cut {
					t.Fatalf("%s: the full rendering is over the limit = %v: the fixture is wrong", tc.name, full)
				}
				if c.flavour == jira.Cloud && !tc.cut && !jsonEqual(t, it.DescriptionADF, tk.Content.ADF()) {
					t.Errorf("%s: a description within the limit was changed", tc.name)
				}
				if c.flavour != jira.Cloud && (it.Description == noformat(tk.Content.PlainText())) == tc.cut {
					t.Errorf("%s: description shortened = %v, want %v", tc.name, !tc.cut, tc.cut)
				}
				// The same limits hold for the comment of an update.
				if err := j.Update(ctx, key, tk); err != nil {
					t.Errorf("%s: Update: %v", tc.name, err)
				}
			}
		})
	}
}

func TestJiraSummaryAndLabels(t *testing.T) {
	srv, j, _ := newJira(t, jiraCases()[0], "")
	ctx := testCtx(t)
	tk := NewTicket(metricVerdict(), ComposeOptions{})
	tk.Content.Title = strings.Repeat("é", 300) + "\nsecond line"
	key, err := j.Open(ctx, tk)
	if err != nil {
		t.Fatalf("Open with a long title: %v", err)
	}
	if it := issueByKey(t, srv, key); utf8.RuneCountInString(it.Summary) != 255 || strings.Contains(it.Summary, "\n") {
		t.Errorf("summary of %d characters: %q", utf8.RuneCountInString(it.Summary), it.Summary)
	}
	if got := InstanceLabel("i-0abc 1\t2"); got != "imdsguard-i-0abc-1-2" {
		t.Errorf("InstanceLabel = %q", got)
	}
	for _, bad := range [][]string{{"has space"}, {""}, {strings.Repeat("x", 256)}} {
		j.Labels = bad
		if _, err := j.Open(ctx, tk); err == nil || !strings.Contains(err.Error(), "label") {
			t.Errorf("labels %q: %v", bad, err)
		}
	}
}

func TestJiraConfigErrors(t *testing.T) {
	site, _ := url.Parse("https://example.atlassian.net")
	good := Jira{Client: jira.Client{Site: site, Flavour: jira.Cloud, Auth: jira.Auth{User: "a@example.com", Password: "tok"}}, Project: "SEC"}
	for _, tc := range []struct {
		name   string
		change func(*Jira)
		want   string
	}{
		{"no site", func(j *Jira) { j.Client.Site = nil }, "site URL"},
		{"http site", func(j *Jira) { j.Client.Site, _ = url.Parse("http://jira.example.com") }, "https"},
		{"user info", func(j *Jira) { j.Client.Site, _ = url.Parse("https://a:b@jira.example.com") }, "user info"},
		{"no flavour", func(j *Jira) { j.Client.Flavour = "" }, "flavour"},
		{"cloud with a PAT", func(j *Jira) { j.Client.Auth.PAT = "p" }, "Jira Cloud needs"},
		{"cloud without a token", func(j *Jira) { j.Client.Auth.Password = "" }, "Jira Cloud needs"},
		{"datacenter without credentials", func(j *Jira) { j.Client.Flavour, j.Client.Auth = jira.DataCenter, jira.Auth{User: "u"} }, "Jira Data Center needs"},
		{"no project", func(j *Jira) { j.Project = "" }, "project key"},
		{"quoted project", func(j *Jira) { j.Project = `SEC" OR project = "X` }, "project key"},
	} {
		j := good
		tc.change(&j)
		err := j.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", tc.name, err, tc.want)
		}
	}
	if err := good.Validate(); err != nil {
		t.Errorf("valid configuration: %v", err)
	}
	loop, _ := url.Parse("http://127.0.0.1:8080/jira")
	dc := Jira{Client: jira.Client{Site: loop, Flavour: jira.DataCenter, Auth: jira.Auth{PAT: "p"}}, Project: "SEC"}
	if err := dc.Validate(); err != nil {
		t.Errorf("http to a loopback address: %v", err)
	}
	if err := dc.Update(context.Background(), "SEC-1/../../admin", NewTicket(metricVerdict(), ComposeOptions{})); err == nil ||
		!strings.Contains(err.Error(), "not an issue key") {
		t.Errorf("a malformed ref: %v", err)
	}
}

// failFirst makes the stand-in answer the first request matching match with status,
// without (commit false) or after (commit true) serving it.
type failFirst struct {
	srv    *fakeaws.Jira
	match  func(*http.Request) bool
	status int
	commit bool

	mu   sync.Mutex
	done bool
}

func (f *failFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	fire := !f.done && f.match(r)
	if fire {
		f.done = true
	}
	f.mu.Unlock()
	if fire && !f.commit {
		f.srv.FailNext(1, f.status, "")
		return http.DefaultTransport.RoundTrip(r)
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if !fire || err != nil {
		return resp, err
	}
	// Served, but the answer is lost: the client sees a gateway error.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	body := `{"errorMessages":["upstream timed out"],"errors":{}}`
	return &http.Response{StatusCode: f.status, Status: http.StatusText(f.status), Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, nil
}

func TestJiraOutage(t *testing.T) {
	tk := NewTicket(theftVerdict(), ComposeOptions{})
	for _, c := range jiraCases() {
		t.Run(c.name, func(t *testing.T) {
			for _, tc := range []struct {
				status int
				body   string
			}{
				{http.StatusServiceUnavailable, ""},
				{http.StatusTooManyRequests, ""},
				{http.StatusBadGateway, "<html><body>502 Bad Gateway</body></html>"},
				{http.StatusInternalServerError, ""},
			} {
				srv, j, logs := newJira(t, c, "")
				ctx := testCtx(t)
				srv.FailNext(1, tc.status, tc.body)
				key, err := j.Open(ctx, tk)
				if err != nil {
					t.Fatalf("Open after one %d: %v", tc.status, err)
				}
				if n := srv.Requests(); n != 3 {
					t.Errorf("%d: %d requests, want search, retried search, create", tc.status, n)
				}
				if !strings.Contains(logs.String(), "retrying") || !strings.Contains(logs.String(), fmt.Sprint(tc.status)) {
					t.Errorf("%d: the retry was not logged: %s", tc.status, logs.String())
				}
				srv.FailNext(2, tc.status, tc.body)
				if err := j.Update(ctx, key, tk); err != nil {
					t.Errorf("Update after two %d: %v", tc.status, err)
				}
				srv.FailNext(1, tc.status, tc.body)
				if err := j.Resolve(ctx, key, Closing{InstanceID: tk.Verdict.InstanceID, Why: "fixed", At: fixedNow}); err != nil {
					t.Errorf("Resolve after a %d: %v", tc.status, err)
				}
				if it := issueByKey(t, srv, key); it.StatusCategory != "done" || len(it.Comments) != 2 || len(srv.Issues()) != 1 {
					t.Errorf("%d: %d issues, %d comments, status %s", tc.status, len(srv.Issues()), len(it.Comments), it.StatusCategory)
				}
			}
		})
	}

	t.Run("persistent 503", func(t *testing.T) {
		for _, c := range jiraCases() {
			srv, j, logs := newJira(t, c, "")
			srv.FailNext(100, http.StatusServiceUnavailable, "")
			_, err := j.Open(testCtx(t), tk)
			if err == nil {
				t.Fatalf("%s: Open succeeded through a persistent 503", c.name)
			}
			for _, w := range []string{"POST " + c.search, "503", "Service Unavailable", "gave up after 4 attempts", tk.Verdict.InstanceID} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: error lacks %q: %v", c.name, w, err)
				}
			}
			if n := srv.Requests(); n != 4 {
				t.Errorf("%s: %d attempts, want 4", c.name, n)
			}
			var je *jira.Error
			if !errors.As(err, &je) || je.Status != 503 {
				t.Errorf("%s: not a *jira.Error with status 503: %#v", c.name, err)
			}
			checkNoSecrets(t, c.secrets, err.Error(), fmt.Sprintf("%+v", err), logs.String())
		}
	})

	t.Run("create fails once", func(t *testing.T) {
		for _, commit := range []bool{false, true} {
			c := jiraCases()[0]
			srv, j, _ := newJira(t, c, "")
			j.Client.HTTP = &http.Client{Transport: &failFirst{srv: srv, status: http.StatusGatewayTimeout, commit: commit,
				match: func(r *http.Request) bool {
					return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/issue")
				}}}
			key, err := j.Open(testCtx(t), tk)
			if err != nil {
				t.Fatalf("commit %v: Open: %v", commit, err)
			}
			// Not committed: search, create (fails), search, create. Committed: search,
			// create (served, answer lost), search finds it.
			want := 4
			if commit {
				want = 3
			}
			if n, issues := srv.Requests(), srv.Issues(); n != want || len(issues) != 1 || issues[0].Key != key {
				t.Errorf("commit %v: %d requests (want %d), %d issues", commit, n, want, len(issues))
			}
		}
	})

	t.Run("Retry-After beyond the bound", func(t *testing.T) {
		srv, j, _ := newJira(t, jiraCases()[0], "120")
		srv.FailNext(1, http.StatusTooManyRequests, "")
		start := time.Now()
		_, err := j.Open(testCtx(t), tk)
		if err == nil || !strings.Contains(err.Error(), "429") || !strings.Contains(err.Error(), "Jira asks to wait 2m0s") {
			t.Fatalf("Open with Retry-After 120: %v", err)
		}
		if srv.Requests() != 1 || time.Since(start) > 10*time.Second {
			t.Errorf("%d requests in %s", srv.Requests(), time.Since(start))
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		srv, j, _ := newJira(t, jiraCases()[0], "")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := j.Open(ctx, tk); !errors.Is(err, context.Canceled) {
			t.Errorf("Open with a cancelled context: %v", err)
		}
		if srv.Requests() != 0 {
			t.Errorf("%d requests", srv.Requests())
		}
		_, j, _ = newJira(t, jiraCases()[0], "")
		j.Client.Retry = jira.Retry{MaxAttempts: 4, BaseDelay: time.Hour, MaxDelay: time.Hour}
		srv2 := fakeaws.NewJira(fakeaws.JiraOptions{Flavor: fakeaws.JiraCloud, RetryAfter: "0"})
		t.Cleanup(srv2.Close)
		j.Client.Site, _ = url.Parse(srv2.URL)
		srv2.FailNext(1, http.StatusServiceUnavailable, "")
		ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if _, err := j.Open(ctx, tk); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "503") {
			t.Errorf("Open whose backoff outlasts the context: %v", err)
		}
	})
}

func TestJiraErrors(t *testing.T) {
	tk := NewTicket(metricVerdict(), ComposeOptions{})
	for _, c := range jiraCases() {
		t.Run(c.name, func(t *testing.T) {
			// Wrong credentials: 401, not retried, and the error holds none of them.
			srv, j, logs := newJira(t, c, "")
			wrong := "wrong-secret-Zq9Xk"
			j.Client.Auth.Password, j.Client.Auth.PAT = jira.Credential(wrong), ""
			if c.auth.PAT != "" {
				j.Client.Auth.PAT = jira.Credential(wrong)
			}
			_, err := j.Open(testCtx(t), tk)
			if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "POST "+c.search) {
				t.Fatalf("Open with a wrong secret: %v", err)
			}
			if srv.Requests() != 1 {
				t.Errorf("401 was retried: %d requests", srv.Requests())
			}
			j.Client.Logger.Info("jira backend", "jira", j, "auth", j.Client.Auth)
			if !strings.Contains(logs.String(), `"project":"SEC"`) || !strings.Contains(logs.String(), jira.Redacted) {
				t.Errorf("the backend does not log its configuration, redacted: %s", logs.String())
			}
			secrets := append([]string{wrong, base64.StdEncoding.EncodeToString([]byte(j.Client.Auth.User + ":" + wrong))}, c.secrets...)
			checkNoSecrets(t, secrets, err.Error(), fmt.Sprintf("%+v|%#v|%v", err, err, errors.Unwrap(err)), logs.String(),
				fmt.Sprintf("%v %+v %#v %s %d %x", j, j, j, j.Client.Auth, j.Client.Auth, j.Client.Auth))

			// Jira's errorMessages and errors are in the error.
			srv, j, _ = newJira(t, c, "")
			j.Project = "NOPE"
			if _, err := j.Open(testCtx(t), tk); err == nil || !strings.Contains(err.Error(), "The value 'NOPE' does not exist for the field 'project'.") ||
				!strings.Contains(err.Error(), "400 Bad Request") {
				t.Errorf("unknown project: %v", err)
			}
			j.Project, j.IssueType = "SEC", "Epic"
			_, err = j.Open(testCtx(t), tk)
			if err == nil || !strings.Contains(err.Error(), "issuetype: ") || !strings.Contains(err.Error(), "POST /rest/api/") {
				t.Errorf("unknown issue type: %v", err)
			}
			var je *jira.Error
			if !errors.As(err, &je) || je.Fields["issuetype"] == "" || je.Status != 400 {
				t.Errorf("unknown issue type: not a *jira.Error with the field error: %#v", err)
			}

			// A server that echoes a credential: the error is scrubbed.
			j.IssueType = "Task"
			echo := fmt.Sprintf(`{"errorMessages":["bad credentials %s"],"errors":{"auth":"%s"}}`, c.secrets[0], c.secrets[len(c.secrets)-1])
			srv.FailNext(1, http.StatusBadRequest, echo)
			_, err = j.Open(testCtx(t), tk)
			if err == nil || !strings.Contains(err.Error(), "bad credentials [REDACTED]") {
				t.Errorf("echoed credentials: %v", err)
			}
			checkNoSecrets(t, c.secrets, fmt.Sprint(err))
			srv.FailNext(1, http.StatusBadGateway, "<html>proxy saw Authorization: Basic "+c.secrets[len(c.secrets)-1]+"</html>")
			j.Client.Retry.MaxAttempts = 1
			_, err = j.Open(testCtx(t), tk)
			if err == nil || !strings.Contains(err.Error(), "502") || !strings.Contains(err.Error(), "proxy saw") {
				t.Errorf("proxy page: %v", err)
			}
			checkNoSecrets(t, c.secrets, fmt.Sprint(err))

			// Resolve of an unknown issue names it.
			j.Client.Retry = fastRetry
			err = j.Resolve(testCtx(t), "SEC-999", Closing{InstanceID: "i-0abc", At: fixedNow})
			if err == nil || !strings.Contains(err.Error(), "SEC-999") || !strings.Contains(err.Error(), "404") {
				t.Errorf("Resolve of a missing issue: %v", err)
			}
		})
	}
}

func TestPickDoneTransition(t *testing.T) {
	tr := func(id, name, to, cat string) jira.Transition {
		t := jira.Transition{ID: id, Name: name}
		t.To.Name, t.To.StatusCategory.Key = to, cat
		return t
	}
	for _, tc := range []struct {
		name string
		ts   []jira.Transition
		want string // id, "" for none
	}{
		{"by category", []jira.Transition{tr("11", "Start", "In Progress", "indeterminate"), tr("41", "Ship it", "Shipped", "done")}, "41"},
		{"category wins over name", []jira.Transition{tr("5", "Done", "Done?", ""), tr("7", "Finish", "Finished", "done")}, "7"},
		{"by name", []jira.Transition{tr("11", "Start", "In Progress", ""), tr("51", "close", "Closed", "")}, "51"},
		{"by target status", []jira.Transition{tr("61", "Finish", "RESOLVED", "")}, "61"},
		{"none", []jira.Transition{tr("11", "Start", "In Progress", "indeterminate"), tr("12", "Reopen", "To Do", "new")}, ""},
		{"empty", nil, ""},
	} {
		got, ok := pickDoneTransition(tc.ts)
		if ok != (tc.want != "") || got.ID != tc.want {
			t.Errorf("%s: %+v, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
	msg := describeTransitions([]jira.Transition{tr("11", "Start", "In Progress", "indeterminate")})
	if !strings.Contains(msg, `"Start" (id 11) to "In Progress"`) {
		t.Errorf("describeTransitions: %s", msg)
	}
}

// TestJiraResolveWithoutDoneTransition uses a Jira whose workflow has no way to done.
func TestJiraResolveWithoutDoneTransition(t *testing.T) {
	srv, j, _ := newJira(t, jiraCases()[0], "")
	ctx := testCtx(t)
	key, err := j.Open(ctx, NewTicket(metricVerdict(), ComposeOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	j.Client.HTTP = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/transitions") {
			body := `{"transitions":[{"id":"21","name":"Start","to":{"name":"In Progress","statusCategory":{"key":"indeterminate"}}}]}`
			return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	err = j.Resolve(ctx, key, Closing{InstanceID: "i-0abc1234def567890", Why: "fixed", At: fixedNow})
	if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), `"Start" (id 21) to "In Progress"`) {
		t.Errorf("Resolve without a done transition: %v", err)
	}
	if it := issueByKey(t, srv, key); it.StatusCategory == "done" {
		t.Errorf("issue resolved anyway")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestJiraRequestHeaders(t *testing.T) {
	for _, c := range jiraCases() {
		var seen []http.Header
		var mu sync.Mutex
		srv, j, _ := newJira(t, c, "")
		j.Client.HTTP = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			seen = append(seen, r.Header.Clone())
			mu.Unlock()
			if r.Context() == context.Background() {
				t.Errorf("%s %s without the caller's context", r.Method, r.URL.Path)
			}
			return http.DefaultTransport.RoundTrip(r)
		})}
		ctx := testCtx(t)
		key, err := j.Open(ctx, NewTicket(metricVerdict(), ComposeOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Resolve(ctx, key, Closing{InstanceID: "i-0abc1234def567890", At: fixedNow}); err != nil {
			t.Fatal(err)
		}
		wantAuth := "Basic "
		if c.auth.PAT != "" {
			wantAuth = "Bearer "
		}
		if len(seen) != srv.Requests() || len(seen) < 4 {
			t.Fatalf("%s: %d requests seen", c.name, len(seen))
		}
		for _, h := range seen {
			if h.Get("Accept") != "application/json" || !strings.HasPrefix(h.Get("Authorization"), wantAuth) {
				t.Errorf("%s: headers %v", c.name, h)
			}
		}
	}
}

// TestJiraSiteContextPath serves Jira under /jira, as Data Center often is.
func TestJiraSiteContextPath(t *testing.T) {
	c := jiraCases()[1]
	srv, j, _ := newJira(t, c, "")
	j.Client.Site, _ = url.Parse(srv.URL + "/jira/")
	j.Client.HTTP = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if !strings.HasPrefix(r.URL.Path, "/jira/rest/api/2/") {
			t.Errorf("request to %s", r.URL.Path)
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/jira")
		return http.DefaultTransport.RoundTrip(r2)
	})}
	if _, err := j.Open(testCtx(t), NewTicket(metricVerdict(), ComposeOptions{})); err != nil {
		t.Fatal(err)
	}
}

func TestRenderWithin(t *testing.T) {
	for _, f := range []struct {
		name string
		v    message.Verdict
	}{{"theft", theftVerdict()}, {"big", bigVerdict()}, {"huge", hugeVerdict()}} {
		c := Compose(f.v, ComposeOptions{ExemptTag: testTag, DryRun: true})
		for _, limit := range []int{jiraMaxText, 8000, 3000} {
			text := plainWithin(c, limit)
			if len(text) > limit || !strings.Contains(text, f.v.DecisionID) || !strings.HasPrefix(text, c.Title+"\n") {
				t.Errorf("%s/%d: plain text of %d bytes, or without title or footer", f.name, limit, len(text))
			}
			if full := c.PlainText(); len(full) <= limit && text != full {
				t.Errorf("%s/%d: plain text that fits was changed", f.name, limit)
			}
			if before, _, cut := strings.Cut(text, "\nShortened:"); cut {
				lines := strings.Split(strings.TrimRight(before, "\n"), "\n")
				if last := lines[len(lines)-1]; strings.HasPrefix(last, "== ") || strings.HasPrefix(last, "!! ") {
					t.Errorf("%s/%d: shortened after an empty heading %q", f.name, limit, last)
				}
			}

			doc := adfWithin(c, limit)
			checkADF(t, f.name, roundTrip(t, doc), "")
			if n := adfSize(doc); n > limit {
				t.Errorf("%s/%d: ADF of %d bytes", f.name, limit, n)
			}
			adf := adfText(doc)
			if !strings.Contains(adf, f.v.DecisionID) || !strings.HasPrefix(adf, c.Title+"\n") {
				t.Errorf("%s/%d: ADF without title or footer", f.name, limit)
			}
			if adfSize(c.ADF()) <= limit && !jsonEqual(t, mustJSON(t, doc), c.ADF()) {
				t.Errorf("%s/%d: ADF that fits was changed", f.name, limit)
			}
			if limit == 3000 && !strings.Contains(adf, "Shortened: the rest of this ticket did not fit.") {
				t.Errorf("%s/%d: cut ADF does not say so", f.name, limit)
			}
		}
	}
	if got := noformat("a {noformat} b {NOFORMAT:title=x} c\n\n"); got != "{noformat}\na \uFF5Bnoformat} b \uFF5BNOFORMAT:title=x} c\n{noformat}" {
		t.Errorf("noformat = %q", got)
	}
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestJiraManyResolvedIssues: an instance with a long history of resolved issues still
// gets exactly one open issue.
func TestJiraManyResolvedIssues(t *testing.T) {
	srv, j, _ := newJira(t, jiraCases()[1], "")
	ctx := testCtx(t)
	tk := NewTicket(metricVerdict(), ComposeOptions{})
	closing := Closing{InstanceID: tk.Verdict.InstanceID, Why: "fixed", At: fixedNow}
	for i := range jiraSearchLimit + 2 {
		key, err := j.Open(ctx, tk)
		if err != nil {
			t.Fatalf("round %d: Open: %v", i, err)
		}
		if err := j.Resolve(ctx, key, closing); err != nil {
			t.Fatalf("round %d: Resolve: %v", i, err)
		}
	}
	key, err := j.Open(ctx, tk)
	if err != nil {
		t.Fatal(err)
	}
	again, err := j.Open(ctx, tk)
	if err != nil || again != key || len(srv.Issues()) != jiraSearchLimit+3 {
		t.Errorf("Open = %s, %v after %s; %d issues", again, err, key, len(srv.Issues()))
	}
}
