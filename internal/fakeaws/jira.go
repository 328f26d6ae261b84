package fakeaws

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Jira is a stand-in for the Jira REST API as a ticketing client uses it, in both of
// Atlassian's dialects:
//
//   - Jira Cloud, REST v3 (/rest/api/3/...): descriptions and comments are Atlassian
//     Document Format (ADF) documents; Basic auth with e-mail and API token; JQL search
//     is POST (or GET) /rest/api/3/search/jql, token-paged, returning only issue ids
//     unless fields are asked for. The removed /rest/api/{2,3}/search answers 410 Gone
//     with Atlassian's message, as Cloud does since 2025.
//   - Jira Data Center, REST v2 (/rest/api/2/...): descriptions and comments are plain
//     (wiki) text; Basic auth with user name and password, or "Authorization: Bearer" with
//     a personal access token; JQL search is GET or POST /rest/api/2/search, paged with
//     startAt/total. Data Center has no v3: /rest/api/3 is 404.
//
// With JiraCloudAndDataCenter (the zero JiraFlavor) both are served side by side, each
// version checking its own credentials, over one set of issues: an issue created through
// v2 reads back through v3 with its text wrapped in ADF paragraphs, and an ADF issue
// reads back through v2 as its flattened text.
//
// Served: create issue, get issue, add and list comments, list and perform transitions
// (To Do 11, In Progress 21, Done 31), JQL search over an AND-joined subset (project,
// labels, status, statusCategory, issuetype, key with = and !=, plus ORDER BY) and
// /myself. Errors carry Jira's {"errorMessages":[...],"errors":{...}} body and, where
// known, Jira's wording.
//
// It is safe for concurrent use.
type Jira struct {
	URL string

	opts   JiraOptions
	server *loopbackServer

	mu        sync.Mutex
	issues    []*jiraIssue
	byID      map[string]*jiraIssue
	byKey     map[string]*jiraIssue // upper-case key
	nextID    int
	nextNum   map[string]int // per project key
	nextCmtID int
	requests  int
	fail      []jiraFailure
}

// JiraFlavor selects which Jira REST dialects the stand-in serves.
type JiraFlavor int

const (
	JiraCloudAndDataCenter JiraFlavor = iota // /rest/api/3 as Cloud and /rest/api/2 as Data Center
	JiraCloud                                // /rest/api/3 only (plus 410 on the removed search)
	JiraDataCenter                           // /rest/api/2 only
)

// Credentials used when JiraOptions leaves them empty.
const (
	JiraTestEmail    = "imdsguard-bot@example.com"
	JiraTestAPIToken = "cloud-api-token"
	JiraTestUsername = "imdsguard"
	JiraTestPassword = "dc-password"
	JiraTestPAT      = "dc-personal-access-token"
)

// JiraOptions configures a Jira stand-in. Empty fields take the documented defaults.
type JiraOptions struct {
	Flavor JiraFlavor
	// Projects are the project keys that exist; default {"SEC"}.
	Projects []string
	// IssueTypes are the issue type names every project has; default {"Task", "Bug"}.
	IssueTypes []string
	// Email and APIToken are the Cloud (v3) Basic credentials; default JiraTestEmail
	// and JiraTestAPIToken.
	Email, APIToken string
	// Username and Password are the Data Center (v2) Basic credentials, and
	// PersonalAccessToken its Bearer token; default JiraTestUsername, JiraTestPassword
	// and JiraTestPAT.
	Username, Password, PersonalAccessToken string
	// RetryAfter is the Retry-After header (seconds) of injected 429 and 503 responses;
	// default "1". Set "0" to let a client that honours it retry at once.
	RetryAfter string
}

// JiraIssue is a copy of one stored issue, as Issues returns it.
type JiraIssue struct {
	ID        string // "10001", ...
	Key       string // "SEC-1", ...
	Project   string
	IssueType string
	Summary   string
	// Description is the plain text (ADF flattened); DescriptionADF the ADF document
	// (as given through v3, or the text wrapped in paragraphs). Both empty when unset.
	Description    string
	DescriptionADF json.RawMessage
	Labels         []string
	Status         string // "To Do", "In Progress" or "Done"
	StatusCategory string // "new", "indeterminate" or "done"
	Comments       []JiraComment
	Created        time.Time
	Updated        time.Time
	APIVersion     int // 2 or 3: the REST version the issue was created through
}

// JiraComment is one comment of a JiraIssue.
type JiraComment struct {
	ID         string
	Body       string          // plain text
	BodyADF    json.RawMessage // the ADF document
	Author     string          // the e-mail or user name that added it
	Created    time.Time
	APIVersion int
}

type jiraStatus struct {
	id, name           string
	catID              int
	catKey, catName    string
	catColor           string
	transID, transName string
}

// jiraStatuses is the simplified workflow: every status reachable from every other by
// a global transition.
var jiraStatuses = []jiraStatus{
	{"10000", "To Do", 2, "new", "To Do", "blue-gray", "11", "To Do"},
	{"3", "In Progress", 4, "indeterminate", "In Progress", "yellow", "21", "In Progress"},
	{"10001", "Done", 3, "done", "Done", "green", "31", "Done"},
}

type jiraText struct {
	text string
	adf  json.RawMessage // nil when given as text
}

func (t *jiraText) ADF() json.RawMessage {
	if t.adf != nil {
		return t.adf
	}
	return textToADF(t.text)
}

type jiraComment struct {
	id         int
	body       jiraText
	author     string
	created    time.Time
	apiVersion int
}

type jiraIssue struct {
	id         int
	key        string
	project    string
	issueType  string
	summary    string
	desc       *jiraText
	labels     []string
	status     int // index into jiraStatuses
	comments   []*jiraComment
	created    time.Time
	updated    time.Time
	apiVersion int
}

type jiraFailure struct {
	status int
	body   string
}

// NewJira starts a Jira stand-in on a loopback port. Close it when done.
func NewJira(opts JiraOptions) *Jira {
	if len(opts.Projects) == 0 {
		opts.Projects = []string{"SEC"}
	}
	if len(opts.IssueTypes) == 0 {
		opts.IssueTypes = []string{"Task", "Bug"}
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&opts.Email, JiraTestEmail)
	def(&opts.APIToken, JiraTestAPIToken)
	def(&opts.Username, JiraTestUsername)
	def(&opts.Password, JiraTestPassword)
	def(&opts.PersonalAccessToken, JiraTestPAT)
	def(&opts.RetryAfter, "1")
	opts.Projects = slices.Clone(opts.Projects)
	opts.IssueTypes = slices.Clone(opts.IssueTypes)
	j := &Jira{opts: opts}
	j.resetLocked()
	j.server = startLoopback(http.HandlerFunc(j.serveHTTP))
	j.URL = j.server.url
	return j
}

// Close stops the server.
func (j *Jira) Close() { j.server.close() }

// Reset drops all issues, counters and injected failures; keys start at 1 again.
func (j *Jira) Reset() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.resetLocked()
}

func (j *Jira) resetLocked() {
	j.issues, j.byID, j.byKey = nil, map[string]*jiraIssue{}, map[string]*jiraIssue{}
	j.nextID, j.nextNum, j.nextCmtID = 10001, map[string]int{}, 10001
	j.requests, j.fail = 0, nil
}

// FailNext makes the next n requests, whatever they are and before authentication,
// answer status with body. An empty body becomes Jira's error JSON with the status
// text. 429 and 503 carry Retry-After (JiraOptions.RetryAfter).
func (j *Jira) FailNext(n int, status int, body string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for range n {
		j.fail = append(j.fail, jiraFailure{status, body})
	}
}

// Requests returns how many requests arrived, including failed and unauthorised ones.
func (j *Jira) Requests() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.requests
}

// Issues returns a copy of every issue, with its comments and status, in creation order.
func (j *Jira) Issues() []JiraIssue {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]JiraIssue, 0, len(j.issues))
	for _, it := range j.issues {
		st := jiraStatuses[it.status]
		c := JiraIssue{
			ID: strconv.Itoa(it.id), Key: it.key, Project: it.project, IssueType: it.issueType,
			Summary: it.summary, Labels: slices.Clone(it.labels), Status: st.name, StatusCategory: st.catKey,
			Created: it.created, Updated: it.updated, APIVersion: it.apiVersion,
		}
		if it.desc != nil {
			c.Description, c.DescriptionADF = it.desc.text, bytes.Clone(it.desc.ADF())
		}
		for _, cm := range it.comments {
			c.Comments = append(c.Comments, JiraComment{
				ID: strconv.Itoa(cm.id), Body: cm.body.text, BodyADF: bytes.Clone(cm.body.ADF()),
				Author: cm.author, Created: cm.created, APIVersion: cm.apiVersion,
			})
		}
		out = append(out, c)
	}
	return out
}

// jiraError is a Jira error response.
type jiraError struct {
	status   int
	messages []string
	fields   map[string]string
	header   http.Header
}

func jiraErr(status int, msgs ...string) *jiraError {
	return &jiraError{status: status, messages: msgs}
}

func jiraFieldErrs(fields map[string]string) *jiraError {
	return &jiraError{status: http.StatusBadRequest, fields: fields}
}

func writeJiraJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("X-Arequestid", newUUID())
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

func writeJiraError(w http.ResponseWriter, e *jiraError) {
	for k, v := range e.header {
		w.Header()[k] = v
	}
	msgs, fields := e.messages, e.fields
	if msgs == nil {
		msgs = []string{}
	}
	if fields == nil {
		fields = map[string]string{}
	}
	writeJiraJSON(w, e.status, map[string]any{"errorMessages": msgs, "errors": fields})
}

// jiraRequest is one authenticated request being served.
type jiraRequest struct {
	r      *http.Request
	ver    int
	user   string // who authenticated
	path   []string
	base   string // URL + "/rest/api/N"
	cloud  bool   // v3 semantics
	parsed any
}

func (j *Jira) serveHTTP(w http.ResponseWriter, r *http.Request) {
	j.mu.Lock()
	j.requests++
	var fail *jiraFailure
	if len(j.fail) > 0 {
		fail = &j.fail[0]
		j.fail = j.fail[1:]
	}
	j.mu.Unlock()
	if fail != nil {
		j.writeFailure(w, *fail)
		return
	}
	if e := j.serve(w, r); e != nil {
		writeJiraError(w, e)
	}
}

func (j *Jira) writeFailure(w http.ResponseWriter, f jiraFailure) {
	if f.status == http.StatusTooManyRequests || f.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", j.opts.RetryAfter)
	}
	if f.body == "" {
		writeJiraError(w, jiraErr(f.status, http.StatusText(f.status)))
		return
	}
	ct := "text/plain;charset=UTF-8"
	if t := strings.TrimSpace(f.body); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
		ct = "application/json;charset=UTF-8"
	} else if strings.HasPrefix(t, "<") {
		ct = "text/html;charset=UTF-8"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(f.status)
	_, _ = io.WriteString(w, f.body)
}

func (j *Jira) serve(w http.ResponseWriter, r *http.Request) *jiraError {
	var ver int
	var rest string
	switch {
	case strings.HasPrefix(r.URL.Path, "/rest/api/3/"):
		ver, rest = 3, strings.TrimPrefix(r.URL.Path, "/rest/api/3/")
	case strings.HasPrefix(r.URL.Path, "/rest/api/2/"):
		ver, rest = 2, strings.TrimPrefix(r.URL.Path, "/rest/api/2/")
	default:
		return jiraErr(http.StatusNotFound, fmt.Sprintf("No REST resource at %s; the stand-in serves /rest/api/2 and /rest/api/3.", r.URL.Path))
	}
	path := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	cloudOnly, dcOnly := j.opts.Flavor == JiraCloud, j.opts.Flavor == JiraDataCenter
	removedSearch := path[0] == "search" && len(path) == 1 && !(ver == 2 && !cloudOnly)
	switch {
	case ver == 3 && dcOnly:
		return jiraErr(http.StatusNotFound, "Jira Data Center has no REST API version 3; use /rest/api/2.")
	case ver == 2 && cloudOnly && !removedSearch:
		return jiraErr(http.StatusNotFound, "The stand-in's Jira Cloud flavour serves /rest/api/3 only.")
	}
	// Cloud credentials on v3, Data Center credentials on v2 (Cloud's v2 only 410s).
	cloud := ver == 3 || cloudOnly
	user, e := j.authenticate(r, cloud)
	if e != nil {
		return e
	}
	if removedSearch {
		return jiraErr(http.StatusGone, "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046")
	}
	req := &jiraRequest{r: r, ver: ver, user: user, path: path, base: fmt.Sprintf("%s/rest/api/%d", j.URL, ver), cloud: cloud}

	var rt map[string]func(*jiraRequest) (int, any, *jiraError)
	switch {
	case len(path) == 1 && path[0] == "issue":
		rt = map[string]func(*jiraRequest) (int, any, *jiraError){http.MethodPost: j.createIssue}
	case len(path) == 2 && path[0] == "issue":
		rt = map[string]func(*jiraRequest) (int, any, *jiraError){http.MethodGet: j.getIssue}
	case len(path) == 3 && path[0] == "issue" && path[2] == "comment":
		rt = map[string]func(*jiraRequest) (int, any, *jiraError){http.MethodGet: j.listComments, http.MethodPost: j.addComment}
	case len(path) == 3 && path[0] == "issue" && path[2] == "transitions":
		rt = map[string]func(*jiraRequest) (int, any, *jiraError){http.MethodGet: j.getTransitions, http.MethodPost: j.doTransition}
	case ver == 3 && len(path) == 2 && path[0] == "search" && path[1] == "jql":
		rt = map[string]func(*jiraRequest) (int, any, *jiraError){http.MethodGet: j.searchJQL, http.MethodPost: j.searchJQL}
	case ver == 2 && len(path) == 1 && path[0] == "search":
		rt = map[string]func(*jiraRequest) (int, any, *jiraError){http.MethodGet: j.searchV2, http.MethodPost: j.searchV2}
	case len(path) == 1 && path[0] == "myself":
		rt = map[string]func(*jiraRequest) (int, any, *jiraError){http.MethodGet: j.myself}
	default:
		return jiraErr(http.StatusNotFound, fmt.Sprintf("No REST resource at %s %s in the stand-in.", r.Method, r.URL.Path))
	}
	h := rt[r.Method]
	if h == nil {
		allow := slices.Sorted(maps.Keys(rt))
		return &jiraError{status: http.StatusMethodNotAllowed, header: http.Header{"Allow": {strings.Join(allow, ", ")}},
			messages: []string{fmt.Sprintf("Method %s is not allowed on %s.", r.Method, r.URL.Path)}}
	}
	if r.Method == http.MethodPost {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			return jiraErr(http.StatusUnsupportedMediaType, "Unsupported Media Type: the request body must be application/json.")
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err == nil && len(bytes.TrimSpace(body)) > 0 {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			err = dec.Decode(&req.parsed)
		}
		if err != nil {
			return jiraErr(http.StatusBadRequest, "Unexpected character or end of input in the JSON body: "+err.Error())
		}
	}
	status, out, e := h(req)
	if e != nil {
		return e
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return nil
	}
	writeJiraJSON(w, status, out)
	return nil
}

func (j *Jira) authenticate(r *http.Request, cloud bool) (string, *jiraError) {
	auth := r.Header.Get("Authorization")
	if scheme, token, ok := strings.Cut(auth, " "); ok {
		switch {
		case strings.EqualFold(scheme, "Basic"):
			raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
			if user, pass, ok := strings.Cut(string(raw), ":"); err == nil && ok {
				if cloud && user == j.opts.Email && pass == j.opts.APIToken {
					return user, nil
				}
				if !cloud && user == j.opts.Username && pass == j.opts.Password {
					return user, nil
				}
			}
		case strings.EqualFold(scheme, "Bearer") && !cloud:
			if strings.TrimSpace(token) == j.opts.PersonalAccessToken {
				return j.opts.Username, nil
			}
		}
	}
	e := jiraErr(http.StatusUnauthorized, "You are not authenticated. Authentication required to perform this operation.")
	if cloud {
		e = jiraErr(http.StatusUnauthorized, "Client must be authenticated to access this resource.")
	}
	e.header = http.Header{"Www-Authenticate": {`Basic realm="protected-area"`}}
	if auth != "" {
		e.header.Set("X-Seraph-Loginreason", "AUTHENTICATED_FAILED")
	}
	return "", e
}

// object returns the parsed body as a JSON object, or a 400.
func (req *jiraRequest) object() (map[string]any, *jiraError) {
	m, ok := req.parsed.(map[string]any)
	if !ok {
		return nil, jiraErr(http.StatusBadRequest, "Can not deserialize the request body: a JSON object is required.")
	}
	return m, nil
}

const (
	adfMessage    = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
	stringMessage = "Operation value must be a string"
)

// text decodes a description or comment body in the request's dialect: an ADF document
// on v3, a string on v2. nil (JSON null) is allowed when nullable.
func (req *jiraRequest) text(v any) (*jiraText, string) {
	if req.cloud {
		if err := validADF(v); err != "" {
			return nil, adfMessage
		}
		raw, _ := json.Marshal(v)
		return &jiraText{text: adfToText(v), adf: raw}, ""
	}
	s, ok := v.(string)
	if !ok {
		return nil, stringMessage
	}
	return &jiraText{text: s}, ""
}

func (j *Jira) project(key string) (string, bool) {
	for _, p := range j.opts.Projects {
		if strings.EqualFold(p, key) {
			return p, true
		}
	}
	// Project ids are 10000 + position.
	for i, p := range j.opts.Projects {
		if key == strconv.Itoa(10000+i) {
			return p, true
		}
	}
	return "", false
}

func (j *Jira) issueType(name string) (string, bool) {
	for i, t := range j.opts.IssueTypes {
		if strings.EqualFold(t, name) || name == strconv.Itoa(10001+i) {
			return t, true
		}
	}
	return "", false
}

// ref reads {"key": ...} / {"id": ...} / {"name": ...} references.
func ref(v any, names ...string) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	for _, n := range names {
		switch s := m[n].(type) {
		case string:
			return s
		case json.Number:
			return s.String()
		}
	}
	return ""
}
