package fakeaws

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

// jiraCaller is a minimal net/http JSON client of the kind the ticketing code uses.
type jiraCaller struct {
	t    *testing.T
	base string
	auth func(*http.Request)
}

func basicAuth(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

func bearerAuth(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

var (
	cloudAuth = basicAuth(JiraTestEmail, JiraTestAPIToken)
	dcAuth    = basicAuth(JiraTestUsername, JiraTestPassword)
)

type jiraResponse struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// send performs one request; it does not touch c.t, so goroutines may call it.
func (c jiraCaller) send(ctx context.Context, method, path string, body any) (jiraResponse, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return jiraResponse{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return jiraResponse{}, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.auth != nil {
		c.auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return jiraResponse{}, err
	}
	defer resp.Body.Close()
	out := jiraResponse{status: resp.StatusCode, header: resp.Header}
	if out.raw, err = io.ReadAll(resp.Body); err != nil {
		return out, err
	}
	if len(out.raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(out.raw, &out.body); err != nil {
			return out, fmt.Errorf("%s %s: response is not a JSON object: %s", method, path, out.raw)
		}
	}
	return out, nil
}

func (c jiraCaller) do(method, path string, body any) jiraResponse {
	c.t.Helper()
	r, err := c.send(testContext(c.t), method, path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

func (c jiraCaller) must(method, path string, body any, status int) map[string]any {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.status != status {
		c.t.Fatalf("%s %s = %d %s, want %d", method, path, r.status, r.raw, status)
	}
	return r.body
}

func newTestJira(t *testing.T, opts JiraOptions) *Jira {
	t.Helper()
	j := NewJira(opts)
	t.Cleanup(j.Close)
	return j
}

func cloudCaller(t *testing.T, j *Jira) jiraCaller {
	return jiraCaller{t, j.URL + "/rest/api/3", cloudAuth}
}
func dcCaller(t *testing.T, j *Jira) jiraCaller { return jiraCaller{t, j.URL + "/rest/api/2", dcAuth} }

// adfDoc is an ADF document of one paragraph per line.
func adfDoc(lines ...string) map[string]any {
	var content []any
	for _, l := range lines {
		content = append(content, map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": l}}})
	}
	return map[string]any{"type": "doc", "version": 1, "content": content}
}

func issueFields(project, summary string, description any, labels ...string) map[string]any {
	f := map[string]any{
		"project":   map[string]any{"key": project},
		"issuetype": map[string]any{"name": "Task"},
		"summary":   summary,
		"labels":    labels,
	}
	if description != nil {
		f["description"] = description
	}
	return map[string]any{"fields": f}
}

// get walks a decoded JSON value: get(v, "fields", "status", "name").
func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func TestJiraCreateAndGet(t *testing.T) {
	j := newTestJira(t, JiraOptions{})
	tests := []struct {
		name        string
		caller      func(*testing.T) jiraCaller
		ver         string
		description any
		wantText    string // the description through v2
		wantADF     any    // the description through v3
	}{
		{"Cloud v3 with an ADF description", func(t *testing.T) jiraCaller { return cloudCaller(t, j) }, "3",
			adfDoc("IMDSv1 calls: 3", "Instance: i-0abc"), "IMDSv1 calls: 3\nInstance: i-0abc", adfDoc("IMDSv1 calls: 3", "Instance: i-0abc")},
		{"Data Center v2 with Basic auth and a string description", func(t *testing.T) jiraCaller { return dcCaller(t, j) }, "2",
			"IMDSv1 calls: 3\nInstance: i-0abc", "IMDSv1 calls: 3\nInstance: i-0abc", adfDoc("IMDSv1 calls: 3", "Instance: i-0abc")},
		{"Data Center v2 with a Bearer personal access token", func(t *testing.T) jiraCaller {
			return jiraCaller{t, j.URL + "/rest/api/2", bearerAuth(JiraTestPAT)}
		}, "2", "one line", "one line", adfDoc("one line")},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.caller(t)
			created := c.must(http.MethodPost, "/issue", issueFields("SEC", "IMDSv1 in use on i-0abc", tc.description, "imdsv1", "imdsguard"), http.StatusCreated)
			wantID, wantKey := fmt.Sprint(10001+i), fmt.Sprintf("SEC-%d", i+1)
			if created["id"] != wantID || created["key"] != wantKey || created["self"] != fmt.Sprintf("%s/rest/api/%s/issue/%s", j.URL, tc.ver, wantID) {
				t.Fatalf("create response %v, want id %s key %s", created, wantID, wantKey)
			}
			for _, key := range []string{wantKey, strings.ToLower(wantKey), wantID} {
				got := c.must(http.MethodGet, "/issue/"+key, nil, http.StatusOK)
				if got["key"] != wantKey || get(got, "fields", "summary") != "IMDSv1 in use on i-0abc" ||
					get(got, "fields", "status", "name") != "To Do" || get(got, "fields", "status", "statusCategory", "key") != "new" ||
					!slices.Equal(toStrings(get(got, "fields", "labels")), []string{"imdsv1", "imdsguard"}) ||
					get(got, "fields", "project", "key") != "SEC" || get(got, "fields", "issuetype", "name") != "Task" {
					t.Fatalf("GET /issue/%s = %v", key, got)
				}
			}
			// Each dialect reads the description in its own format.
			v2 := dcCaller(t, j).must(http.MethodGet, "/issue/"+wantKey, nil, http.StatusOK)
			if d := get(v2, "fields", "description"); d != tc.wantText {
				t.Errorf("v2 description %#v, want %q", d, tc.wantText)
			}
			v3 := cloudCaller(t, j).must(http.MethodGet, "/issue/"+wantKey+"?fields=description,summary", nil, http.StatusOK)
			if !jsonEqual(get(v3, "fields", "description"), tc.wantADF) {
				t.Errorf("v3 description %v, want %v", get(v3, "fields", "description"), tc.wantADF)
			}
			if get(v3, "fields", "status") != nil {
				t.Errorf("fields=description,summary returned status")
			}
			rec := j.Issues()[i]
			if rec.Key != wantKey || rec.Description != tc.wantText || !jsonEqual(rec.DescriptionADF, tc.wantADF) ||
				rec.Status != "To Do" || rec.StatusCategory != "new" || fmt.Sprint(rec.APIVersion) != tc.ver {
				t.Errorf("Issues()[%d] = %+v", i, rec)
			}
		})
	}
}

func toStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func jsonEqual(a, b any) bool {
	norm := func(v any) any {
		var raw []byte
		if r, ok := v.(json.RawMessage); ok {
			raw = r
		} else {
			raw, _ = json.Marshal(v)
		}
		var out any
		_ = json.Unmarshal(raw, &out)
		return out
	}
	x, _ := json.Marshal(norm(a))
	y, _ := json.Marshal(norm(b))
	return bytes.Equal(x, y)
}

func TestJiraSearch(t *testing.T) {
	j := newTestJira(t, JiraOptions{Projects: []string{"SEC", "OPS"}})
	cloud, dc := cloudCaller(t, j), dcCaller(t, j)
	mk := func(project, summary string, labels ...string) string {
		return cloud.must(http.MethodPost, "/issue", issueFields(project, summary, nil, labels...), http.StatusCreated)["key"].(string)
	}
	a := mk("SEC", "i-a", "imdsv1", "imdsguard")
	b := mk("SEC", "i-b", "imdsv1")
	c := mk("SEC", "i-c", "other")
	d := mk("OPS", "i-d", "imdsv1")
	e := mk("SEC", "i-e")
	cloud.must(http.MethodPost, "/issue/"+b+"/transitions", map[string]any{"transition": map[string]any{"id": "31"}}, http.StatusNoContent)
	cloud.must(http.MethodPost, "/issue/"+a+"/transitions", map[string]any{"transition": map[string]any{"id": "21"}}, http.StatusNoContent)

	tests := []struct {
		jql  string
		want []string // newest first unless ordered
	}{
		{`project = SEC AND labels = "imdsv1" AND statusCategory != Done`, []string{a}},
		{`project = "SEC" AND labels = imdsv1 AND statusCategory = Done`, []string{b}},
		{`project = SEC AND labels = imdsv1 ORDER BY created DESC`, []string{b, a}},
		{`project = SEC and labels = 'imdsv1' order by created asc`, []string{a, b}},
		{`labels = imdsv1`, []string{d, b, a}},
		{`project = SEC AND statusCategory = "In Progress"`, []string{a}},
		{`project = SEC AND statusCategory = new`, []string{e, c}},
		{`project = SEC AND status = "To Do"`, []string{e, c}},
		{`project = SEC AND status != Done AND labels = imdsv1`, []string{a}},
		{`project = SEC AND labels != imdsv1`, []string{c}}, // as in Jira, != skips issues without labels
		{`key = ` + strings.ToLower(c), []string{c}},
		{`project = OPS AND issuetype = Task`, []string{d}},
	}
	for _, tc := range tests {
		t.Run(tc.jql, func(t *testing.T) {
			// Cloud: POST /rest/api/3/search/jql, fields asked for.
			out := cloud.must(http.MethodPost, "/search/jql", map[string]any{"jql": tc.jql, "fields": []string{"summary", "status", "labels"}, "maxResults": 50}, http.StatusOK)
			if got := issueKeys(out); !slices.Equal(got, tc.want) {
				t.Errorf("v3 search/jql keys %v, want %v", got, tc.want)
			}
			if out["isLast"] != true || out["nextPageToken"] != nil {
				t.Errorf("v3 single page: isLast %v nextPageToken %v", out["isLast"], out["nextPageToken"])
			}
			// Data Center: GET /rest/api/2/search.
			out = dc.must(http.MethodGet, "/search?jql="+url.QueryEscape(tc.jql), nil, http.StatusOK)
			if got := issueKeys(out); !slices.Equal(got, tc.want) || out["total"] != float64(len(tc.want)) {
				t.Errorf("v2 search keys %v total %v, want %v", got, out["total"], tc.want)
			}
		})
	}

	t.Run("search/jql returns only ids unless fields are asked for", func(t *testing.T) {
		out := cloud.must(http.MethodGet, "/search/jql?jql="+url.QueryEscape("project = OPS"), nil, http.StatusOK)
		issues := out["issues"].([]any)
		if len(issues) != 1 || !jsonEqual(issues[0], map[string]any{"id": "10004"}) {
			t.Fatalf("issues %v, want just the id", issues)
		}
		out = cloud.must(http.MethodPost, "/search/jql", map[string]any{"jql": "project = OPS", "fields": []string{"status"}}, http.StatusOK)
		if get(out["issues"].([]any)[0], "fields", "status", "statusCategory", "key") != "new" || get(out["issues"].([]any)[0], "fields", "summary") != nil {
			t.Fatalf("fields=[status]: %v", out["issues"])
		}
	})

	t.Run("v2 search by POST, all fields by default", func(t *testing.T) {
		out := dc.must(http.MethodPost, "/search", map[string]any{"jql": "project = SEC AND statusCategory = Done"}, http.StatusOK)
		issues := out["issues"].([]any)
		if len(issues) != 1 || get(issues[0], "fields", "status", "name") != "Done" || get(issues[0], "fields", "summary") != "i-b" {
			t.Fatalf("issues %v", issues)
		}
	})

	t.Run("paging", func(t *testing.T) {
		var keys []string
		token := ""
		pages := 0
		for {
			body := map[string]any{"jql": "project = SEC ORDER BY created ASC", "fields": []string{"summary"}, "maxResults": 2}
			if token != "" {
				body["nextPageToken"] = token
			}
			out := cloud.must(http.MethodPost, "/search/jql", body, http.StatusOK)
			keys = append(keys, issueKeys(out)...)
			pages++
			tok, _ := out["nextPageToken"].(string)
			if out["isLast"] == true {
				if tok != "" {
					t.Fatal("last page carries a nextPageToken")
				}
				break
			}
			token = tok
		}
		if want := []string{a, b, c, e}; !slices.Equal(keys, want) || pages != 2 {
			t.Fatalf("v3 pages %d keys %v, want %v in 2 pages", pages, keys, want)
		}
		out := dc.must(http.MethodGet, "/search?jql="+url.QueryEscape("project = SEC ORDER BY created ASC")+"&startAt=3&maxResults=2", nil, http.StatusOK)
		if got := issueKeys(out); !slices.Equal(got, []string{e}) || out["total"] != float64(4) || out["startAt"] != float64(3) {
			t.Fatalf("v2 startAt=3: %v total %v", got, out["total"])
		}
		r := cloud.do(http.MethodPost, "/search/jql", map[string]any{"jql": "project = OPS", "nextPageToken": token})
		if r.status != http.StatusBadRequest {
			t.Fatalf("token of another query: %d %s", r.status, r.raw)
		}
	})
}

func issueKeys(out map[string]any) []string {
	var keys []string
	for _, it := range out["issues"].([]any) {
		keys = append(keys, get(it, "key").(string))
	}
	return keys
}

func TestJiraCommentsAndTransitions(t *testing.T) {
	j := newTestJira(t, JiraOptions{})
	for _, tc := range []struct {
		name    string
		c       jiraCaller
		comment any
		want    string
	}{
		{"Cloud v3, ADF comment", cloudCaller(t, j), adfDoc("Still seen on 2026-03-01."), "Still seen on 2026-03-01."},
		{"Data Center v2, string comment", dcCaller(t, j), "Still seen on 2026-03-01.", "Still seen on 2026-03-01."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.c.must(http.MethodPost, "/issue", issueFields("SEC", "IMDSv1 on i-1", nil, "imdsv1"), http.StatusCreated)["key"].(string)
			cm := tc.c.must(http.MethodPost, "/issue/"+key+"/comment", map[string]any{"body": tc.comment}, http.StatusCreated)
			if !jsonEqual(cm["body"], tc.comment) || cm["id"] == "" || cm["created"] == "" {
				t.Fatalf("comment response %v", cm)
			}

			tr := tc.c.must(http.MethodGet, "/issue/"+key+"/transitions", nil, http.StatusOK)
			var ids, cats []string
			for _, x := range tr["transitions"].([]any) {
				ids = append(ids, get(x, "id").(string)+"="+get(x, "name").(string))
				cats = append(cats, get(x, "to", "statusCategory", "key").(string))
			}
			if !slices.Equal(ids, []string{"11=To Do", "21=In Progress", "31=Done"}) || !slices.Equal(cats, []string{"new", "indeterminate", "done"}) {
				t.Fatalf("transitions %v / %v", ids, cats)
			}

			r := tc.c.do(http.MethodPost, "/issue/"+key+"/transitions", map[string]any{"transition": map[string]any{"id": "31"},
				"update": map[string]any{"comment": []any{map[string]any{"add": map[string]any{"body": tc.comment}}}}})
			if r.status != http.StatusNoContent || len(r.raw) != 0 {
				t.Fatalf("transition to Done: %d %s", r.status, r.raw)
			}
			got := tc.c.must(http.MethodGet, "/issue/"+key, nil, http.StatusOK)
			if get(got, "fields", "status", "name") != "Done" || get(got, "fields", "status", "statusCategory", "key") != "done" {
				t.Fatalf("status after transition: %v", get(got, "fields", "status"))
			}
			if n := get(got, "fields", "comment", "total"); n != float64(2) {
				t.Fatalf("comment.total %v, want 2", n)
			}
			list := tc.c.must(http.MethodGet, "/issue/"+key+"/comment", nil, http.StatusOK)
			if len(list["comments"].([]any)) != 2 {
				t.Fatalf("comment list %v", list)
			}
			var rec JiraIssue
			for _, it := range j.Issues() {
				if it.Key == key {
					rec = it
				}
			}
			if rec.Status != "Done" || rec.StatusCategory != "done" || len(rec.Comments) != 2 || rec.Comments[0].Body != tc.want ||
				rec.Comments[0].Author == "" || len(rec.Comments[1].BodyADF) == 0 {
				t.Fatalf("Issues() record %+v", rec)
			}
			// Reopen.
			tc.c.must(http.MethodPost, "/issue/"+key+"/transitions", map[string]any{"transition": map[string]any{"id": "11"}}, http.StatusNoContent)
			if st := get(tc.c.must(http.MethodGet, "/issue/"+key+"?fields=status", nil, http.StatusOK), "fields", "status", "statusCategory", "key"); st != "new" {
				t.Fatalf("after reopening: %v", st)
			}
		})
	}
}

func TestJiraErrors(t *testing.T) {
	j := newTestJira(t, JiraOptions{})
	cloud, dc := cloudCaller(t, j), dcCaller(t, j)
	key := cloud.must(http.MethodPost, "/issue", issueFields("SEC", "existing", nil), http.StatusCreated)["key"].(string)
	as := func(base string, auth func(*http.Request)) jiraCaller { return jiraCaller{t, j.URL + base, auth} }
	withField := func(k string, v any) map[string]any {
		b := issueFields("SEC", "s", nil)
		b["fields"].(map[string]any)[k] = v
		return b
	}
	tests := []struct {
		name       string
		c          jiraCaller
		method     string
		path       string
		body       any
		wantStatus int
		wantMsg    string // in errorMessages
		wantField  string // "field=message" in errors
	}{
		{"v3 wrong API token", as("/rest/api/3", basicAuth(JiraTestEmail, "wrong")), "GET", "/issue/" + key, nil, 401, "Client must be authenticated to access this resource.", ""},
		{"v3 no credentials", as("/rest/api/3", nil), "GET", "/issue/" + key, nil, 401, "Client must be authenticated", ""},
		{"v3 Data Center credentials", as("/rest/api/3", dcAuth), "GET", "/issue/" + key, nil, 401, "Client must be authenticated", ""},
		{"v3 Bearer token", as("/rest/api/3", bearerAuth(JiraTestPAT)), "GET", "/issue/" + key, nil, 401, "Client must be authenticated", ""},
		{"v2 wrong password", as("/rest/api/2", basicAuth(JiraTestUsername, "wrong")), "GET", "/issue/" + key, nil, 401, "You are not authenticated.", ""},
		{"v2 wrong PAT", as("/rest/api/2", bearerAuth("wrong")), "POST", "/issue", issueFields("SEC", "s", nil), 401, "You are not authenticated.", ""},
		{"v2 Cloud credentials", as("/rest/api/2", cloudAuth), "GET", "/issue/" + key, nil, 401, "You are not authenticated.", ""},
		{"v3 unknown project", cloud, "POST", "/issue", issueFields("NOPE", "s", nil), 400, "", "project=Specify a valid project ID or key"},
		{"v2 unknown project", dc, "POST", "/issue", issueFields("NOPE", "s", nil), 400, "", "project=valid project is required"},
		{"v2 unknown issue type", dc, "POST", "/issue", withField("issuetype", map[string]any{"name": "Epic"}), 400, "", "issuetype=valid issue type is required"},
		{"v3 unknown issue type", cloud, "POST", "/issue", withField("issuetype", map[string]any{"name": "Epic"}), 400, "", "issuetype=Specify a valid issue type"},
		{"v3 string description", cloud, "POST", "/issue", withField("description", "plain"), 400, "", "description=" + adfMessage},
		{"v3 description that is not a doc", cloud, "POST", "/issue", withField("description", map[string]any{"type": "paragraph"}), 400, "", "description=" + adfMessage},
		{"v3 ADF with an empty text node", cloud, "POST", "/issue", withField("description", map[string]any{"type": "doc", "version": 1,
			"content": []any{map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": ""}}}}}), 400, "", "description=" + adfMessage},
		{"v2 ADF description", dc, "POST", "/issue", withField("description", adfDoc("x")), 400, "", "description=Operation value must be a string"},
		{"missing summary", dc, "POST", "/issue", withField("summary", ""), 400, "", "summary=You must specify a summary of the issue."},
		{"summary with a newline", cloud, "POST", "/issue", withField("summary", "a\nb"), 400, "", "summary=The summary is invalid because it contains newline characters."},
		{"summary over 255 characters", cloud, "POST", "/issue", withField("summary", strings.Repeat("s", 256)), 400, "", "summary=Summary must be less than 255 characters."},
		{"label with a space", cloud, "POST", "/issue", withField("labels", []string{"imds v1"}), 400, "", "labels=The label 'imds v1' contains spaces which is invalid."},
		{"field not on the screen", cloud, "POST", "/issue", withField("priority", map[string]any{"name": "High"}), 400, "", "priority=Field 'priority' cannot be set. It is not on the appropriate screen, or unknown."},
		{"v3 empty comment", cloud, "POST", "/issue/" + key + "/comment", map[string]any{"body": nil}, 400, "", "comment=Comment body can not be empty!"},
		{"v3 string comment", cloud, "POST", "/issue/" + key + "/comment", map[string]any{"body": "text"}, 400, "", "comment=" + adfMessage},
		{"v2 ADF comment", dc, "POST", "/issue/" + key + "/comment", map[string]any{"body": adfDoc("x")}, 400, "", "comment=Operation value must be a string"},
		{"unknown issue", cloud, "GET", "/issue/SEC-999", nil, 404, "Issue does not exist or you do not have permission to see it.", ""},
		{"comment on an unknown issue", dc, "POST", "/issue/SEC-999/comment", map[string]any{"body": "x"}, 404, "Issue does not exist", ""},
		{"invalid transition", cloud, "POST", "/issue/" + key + "/transitions", map[string]any{"transition": map[string]any{"id": "99"}}, 400, "Transition id '99' is not valid for this issue.", ""},
		{"transition without an id", dc, "POST", "/issue/" + key + "/transitions", map[string]any{}, 400, "Missing 'transition' identifier", ""},
		{"JQL with OR", cloud, "POST", "/search/jql", map[string]any{"jql": `project = SEC OR labels = x`}, 400, `project = SEC OR labels = x`, ""},
		{"JQL with a function", dc, "GET", "/search?jql=" + url.QueryEscape(`assignee = currentUser()`), nil, 400, "assignee = currentUser()", ""},
		{"JQL with the ~ operator", cloud, "POST", "/search/jql", map[string]any{"jql": `summary ~ "IMDS"`}, 400, `summary ~ "IMDS"`, ""},
		{"JQL with IN", cloud, "POST", "/search/jql", map[string]any{"jql": `labels in (a, b)`}, 400, `labels in (a, b)`, ""},
		{"JQL with an unknown project", cloud, "POST", "/search/jql", map[string]any{"jql": `project = NOPE`}, 400, "The value 'NOPE' does not exist for the field 'project'.", ""},
		{"JQL with an unknown status category", dc, "POST", "/search", map[string]any{"jql": `statusCategory = Closed`}, 400, "The value 'Closed' does not exist for the field 'statusCategory'.", ""},
		{"JQL with a missing key", cloud, "POST", "/search/jql", map[string]any{"jql": `key = SEC-42`}, 400, "An issue with key 'SEC-42' does not exist for field 'key'.", ""},
		{"unbounded JQL on search/jql", cloud, "POST", "/search/jql", map[string]any{"jql": `ORDER BY created DESC`}, 400, "Unbounded JQL queries are not allowed here.", ""},
		{"removed v3 search", cloud, "GET", "/search?jql=project%3DSEC", nil, 410, "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API.", ""},
		{"no search/jql on Data Center", dc, "POST", "/search/jql", map[string]any{"jql": "project = SEC"}, 404, "No REST resource", ""},
		{"unknown resource", cloud, "GET", "/priority", nil, 404, "No REST resource", ""},
		{"wrong method", cloud, "DELETE", "/issue/" + key, nil, 405, "Method DELETE is not allowed", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.do(tc.method, tc.path, tc.body)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d %s, want %d", r.status, r.raw, tc.wantStatus)
			}
			msgs := toStrings(r.body["errorMessages"])
			fields, _ := r.body["errors"].(map[string]any)
			if r.body["errorMessages"] == nil || fields == nil {
				t.Fatalf("body %s is not Jira's {errorMessages, errors}", r.raw)
			}
			if tc.wantMsg != "" && !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, tc.wantMsg) }) {
				t.Errorf("errorMessages %q lack %q", msgs, tc.wantMsg)
			}
			if tc.wantField != "" {
				k, v, _ := strings.Cut(tc.wantField, "=")
				if fields[k] != v {
					t.Errorf("errors %v, want %s=%q", fields, k, v)
				}
			}
			if tc.wantStatus == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if n := len(j.Issues()); n != 1 {
		t.Fatalf("%d issues after the failed calls, want 1", n)
	}

	t.Run("not JSON", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, j.URL+"/rest/api/3/issue", strings.NewReader("summary=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		cloudAuth(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("status %d, want 415", resp.StatusCode)
		}
	})
}

func TestJiraFailNext(t *testing.T) {
	tests := []struct {
		name         string
		status       int
		body         string
		retryAfter   string // option; "" = default
		wantRetry    string // Retry-After header; "" = none
		wantBodyPart string
	}{
		{"503 outage", http.StatusServiceUnavailable, "", "", "1", `"errorMessages":["Service Unavailable"]`},
		{"429 rate limit with Retry-After 0", http.StatusTooManyRequests, `{"errorMessages":["Rate limit exceeded."],"errors":{}}`, "0", "0", "Rate limit exceeded."},
		{"502 HTML from the proxy", http.StatusBadGateway, "<html><body>Bad gateway</body></html>", "", "", "Bad gateway"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := newTestJira(t, JiraOptions{RetryAfter: tc.retryAfter})
			c := cloudCaller(t, j)
			j.FailNext(2, tc.status, tc.body)
			for range 2 {
				r := c.do(http.MethodPost, "/issue", issueFields("SEC", "s", nil))
				if r.status != tc.status || r.header.Get("Retry-After") != tc.wantRetry || !strings.Contains(string(r.raw), tc.wantBodyPart) {
					t.Fatalf("got %d Retry-After %q body %s", r.status, r.header.Get("Retry-After"), r.raw)
				}
			}
			c.must(http.MethodPost, "/issue", issueFields("SEC", "s", nil), http.StatusCreated)
			if j.Requests() != 3 || len(j.Issues()) != 1 || j.Issues()[0].Key != "SEC-1" {
				t.Fatalf("requests %d issues %+v", j.Requests(), j.Issues())
			}
		})
	}

	t.Run("failures come before authentication and Reset clears them", func(t *testing.T) {
		j := newTestJira(t, JiraOptions{})
		j.FailNext(1, http.StatusServiceUnavailable, "")
		if r := (jiraCaller{t, j.URL + "/rest/api/3", nil}).do(http.MethodGet, "/myself", nil); r.status != 503 {
			t.Fatalf("unauthenticated call during an outage: %d", r.status)
		}
		cloudCaller(t, j).must(http.MethodPost, "/issue", issueFields("SEC", "s", nil), http.StatusCreated)
		j.FailNext(5, http.StatusServiceUnavailable, "")
		j.Reset()
		if j.Requests() != 0 || len(j.Issues()) != 0 {
			t.Fatal("Reset kept state")
		}
		if key := cloudCaller(t, j).must(http.MethodPost, "/issue", issueFields("SEC", "s", nil), http.StatusCreated)["key"]; key != "SEC-1" {
			t.Fatalf("first key after Reset %v", key)
		}
	})
}

func TestJiraFlavors(t *testing.T) {
	type call struct {
		base       string
		auth       func(*http.Request)
		method     string
		path       string
		body       any
		wantStatus int
	}
	create := issueFields("SEC", "s", nil)
	tests := []struct {
		name   string
		flavor JiraFlavor
		calls  []call
	}{
		{"Cloud only", JiraCloud, []call{
			{"/rest/api/3", cloudAuth, "POST", "/issue", issueFields("SEC", "s", adfDoc("d")), 201},
			{"/rest/api/2", cloudAuth, "POST", "/issue", create, 404},
			{"/rest/api/2", cloudAuth, "GET", "/search?jql=project%3DSEC", nil, 410},
			{"/rest/api/2", dcAuth, "GET", "/search?jql=project%3DSEC", nil, 401},
			{"/rest/api/3", cloudAuth, "GET", "/myself", nil, 200},
		}},
		{"Data Center only", JiraDataCenter, []call{
			{"/rest/api/2", dcAuth, "POST", "/issue", create, 201},
			{"/rest/api/2", bearerAuth(JiraTestPAT), "GET", "/search?jql=project%3DSEC", nil, 200},
			{"/rest/api/3", cloudAuth, "POST", "/issue", create, 404},
			{"/rest/api/3", cloudAuth, "POST", "/search/jql", map[string]any{"jql": "project = SEC"}, 404},
			{"/rest/api/2", dcAuth, "GET", "/myself", nil, 200},
		}},
		{"custom credentials and projects", JiraCloudAndDataCenter, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.calls == nil {
				j := newTestJira(t, JiraOptions{Projects: []string{"IMDS"}, IssueTypes: []string{"Vulnerability"}, Email: "me@corp.example", APIToken: "tok", Username: "svc", Password: "pw", PersonalAccessToken: "pat"})
				body := map[string]any{"fields": map[string]any{"project": map[string]any{"key": "IMDS"}, "issuetype": map[string]any{"name": "Vulnerability"}, "summary": "s"}}
				(jiraCaller{t, j.URL + "/rest/api/3", basicAuth("me@corp.example", "tok")}).must("POST", "/issue", body, 201)
				(jiraCaller{t, j.URL + "/rest/api/2", bearerAuth("pat")}).must("POST", "/issue", body, 201)
				(jiraCaller{t, j.URL + "/rest/api/2", basicAuth("svc", "pw")}).must("GET", "/issue/IMDS-2", nil, 200)
				(jiraCaller{t, j.URL + "/rest/api/3", cloudAuth}).must("GET", "/issue/IMDS-1", nil, 401)
				(jiraCaller{t, j.URL + "/rest/api/2", basicAuth("svc", "pw")}).must("POST", "/issue", create, 400) // SEC does not exist here
				me := (jiraCaller{t, j.URL + "/rest/api/3", basicAuth("me@corp.example", "tok")}).must("GET", "/myself", nil, 200)
				if me["emailAddress"] != "me@corp.example" {
					t.Fatalf("myself %v", me)
				}
				return
			}
			j := newTestJira(t, JiraOptions{Flavor: tc.flavor})
			for _, c := range tc.calls {
				(jiraCaller{t, j.URL + c.base, c.auth}).must(c.method, c.path, c.body, c.wantStatus)
			}
		})
	}
}

// Concurrent creates get distinct keys (run with -race).
func TestJiraConcurrentCreates(t *testing.T) {
	j := newTestJira(t, JiraOptions{})
	ctx := testContext(t)
	var wg sync.WaitGroup
	keys := make(chan string, 20)
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			c := jiraCaller{base: j.URL + "/rest/api/3", auth: cloudAuth}
			if i%2 == 1 {
				c = jiraCaller{base: j.URL + "/rest/api/2", auth: dcAuth}
			}
			r, err := c.send(ctx, http.MethodPost, "/issue", issueFields("SEC", fmt.Sprintf("issue %d", i), nil, "imdsv1"))
			switch {
			case err != nil:
				errs <- err
			case r.status != http.StatusCreated:
				errs <- fmt.Errorf("create %d: %d %s", i, r.status, r.raw)
			default:
				keys <- r.body["key"].(string)
			}
		})
	}
	wg.Wait()
	close(keys)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for k := range keys {
		seen[k] = true
	}
	if len(seen) != 20 || len(j.Issues()) != 20 {
		t.Fatalf("%d distinct keys, %d issues, want 20", len(seen), len(j.Issues()))
	}
	out := cloudCaller(t, j).must(http.MethodPost, "/search/jql", map[string]any{"jql": "project = SEC AND labels = imdsv1", "maxResults": 5000}, http.StatusOK)
	if n := len(out["issues"].([]any)); n != 20 {
		t.Fatalf("search found %d, want 20", n)
	}
}
