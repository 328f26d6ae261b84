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
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
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

func (j *Jira) createIssue(req *jiraRequest) (int, any, *jiraError) {
	body, e := req.object()
	if e != nil {
		return 0, nil, e
	}
	fields, ok := body["fields"].(map[string]any)
	if !ok {
		return 0, nil, jiraFieldErrs(map[string]string{"project": j.projectMessage(req), "issuetype": "Specify an issue type", "summary": "You must specify a summary of the issue."})
	}
	errs := map[string]string{}
	for k := range fields {
		switch k {
		case "project", "issuetype", "summary", "description", "labels":
		default:
			errs[k] = fmt.Sprintf("Field '%s' cannot be set. It is not on the appropriate screen, or unknown.", k)
		}
	}
	project, ok := j.project(ref(fields["project"], "key", "id"))
	if !ok {
		return 0, nil, jiraFieldErrs(map[string]string{"project": j.projectMessage(req)})
	}
	var issueType string
	if raw := ref(fields["issuetype"], "name", "id"); raw == "" {
		errs["issuetype"] = map[bool]string{true: "Specify an issue type", false: "issue type is required"}[req.cloud]
	} else if issueType, ok = j.issueType(raw); !ok {
		errs["issuetype"] = map[bool]string{true: "Specify a valid issue type", false: "valid issue type is required"}[req.cloud]
	}
	summary, _ := fields["summary"].(string)
	switch s := fields["summary"].(type) {
	case nil:
		errs["summary"] = "You must specify a summary of the issue."
	case string:
		switch {
		case strings.TrimSpace(s) == "":
			errs["summary"] = "You must specify a summary of the issue."
		case strings.ContainsAny(s, "\r\n"):
			errs["summary"] = "The summary is invalid because it contains newline characters."
		case utf8.RuneCountInString(s) > 255:
			errs["summary"] = "Summary must be less than 255 characters."
		}
	default:
		errs["summary"] = stringMessage
	}
	var desc *jiraText
	if v, ok := fields["description"]; ok && v != nil {
		var msg string
		if desc, msg = req.text(v); msg != "" {
			errs["description"] = msg
		}
	}
	var labels []string
	switch ls := fields["labels"].(type) {
	case nil:
	case []any:
		for _, l := range ls {
			s, ok := l.(string)
			switch {
			case !ok:
				errs["labels"] = stringMessage
			case strings.ContainsAny(s, " \t\r\n"):
				errs["labels"] = fmt.Sprintf("The label '%s' contains spaces which is invalid.", s)
			case utf8.RuneCountInString(s) > 255:
				errs["labels"] = fmt.Sprintf("The label '%s' exceeds the maximum length for a single label of 255 characters.", s)
			case s != "" && !slices.Contains(labels, s):
				labels = append(labels, s)
			}
		}
	default:
		errs["labels"] = "Operation value must be an array"
	}
	if len(errs) > 0 {
		return 0, nil, jiraFieldErrs(errs)
	}

	now := time.Now().UTC().Truncate(time.Millisecond)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.nextNum[project]++
	it := &jiraIssue{
		id: j.nextID, key: fmt.Sprintf("%s-%d", project, j.nextNum[project]), project: project, issueType: issueType,
		summary: summary, desc: desc, labels: labels, created: now, updated: now, apiVersion: req.ver,
	}
	j.nextID++
	j.issues = append(j.issues, it)
	j.byID[strconv.Itoa(it.id)] = it
	j.byKey[strings.ToUpper(it.key)] = it
	return http.StatusCreated, map[string]string{"id": strconv.Itoa(it.id), "key": it.key, "self": fmt.Sprintf("%s/issue/%d", req.base, it.id)}, nil
}

func (j *Jira) projectMessage(req *jiraRequest) string {
	if req.cloud {
		return "Specify a valid project ID or key"
	}
	return "valid project is required"
}

// issueLocked finds the issue of path[1] by id or (case-insensitive) key.
func (j *Jira) issueLocked(req *jiraRequest) (*jiraIssue, *jiraError) {
	idOrKey := req.path[1]
	it := j.byID[idOrKey]
	if it == nil {
		it = j.byKey[strings.ToUpper(idOrKey)]
	}
	if it == nil {
		return nil, jiraErr(http.StatusNotFound, "Issue does not exist or you do not have permission to see it.")
	}
	return it, nil
}

const jiraTime = "2006-01-02T15:04:05.000-0700"

func (j *Jira) statusJSON(base string, s jiraStatus) map[string]any {
	return map[string]any{
		"self": base + "/status/" + s.id, "id": s.id, "name": s.name, "description": "",
		"statusCategory": map[string]any{
			"self": fmt.Sprintf("%s/statuscategory/%d", base, s.catID), "id": s.catID,
			"key": s.catKey, "name": s.catName, "colorName": s.catColor,
		},
	}
}

func (j *Jira) userJSON(req *jiraRequest, login string) map[string]any {
	if req.cloud {
		return map[string]any{"accountId": "5b10ac8d82e05b22cc7d4ef5", "emailAddress": login, "displayName": login, "active": true, "accountType": "atlassian"}
	}
	return map[string]any{"name": login, "key": login, "displayName": login, "active": true}
}

func (j *Jira) commentJSON(req *jiraRequest, it *jiraIssue, c *jiraComment) map[string]any {
	var body any = c.body.text
	if req.cloud {
		body = c.body.ADF()
	}
	return map[string]any{
		"self": fmt.Sprintf("%s/issue/%d/comment/%d", req.base, it.id, c.id), "id": strconv.Itoa(c.id),
		"author": j.userJSON(req, c.author), "updateAuthor": j.userJSON(req, c.author),
		"body": body, "created": c.created.Format(jiraTime), "updated": c.created.Format(jiraTime),
	}
}

var jiraAllFields = []string{"summary", "description", "labels", "status", "issuetype", "project", "created", "updated", "comment"}

// fieldSet resolves a "fields" selection; want nil means the default.
func fieldSet(want []string, def []string) []string {
	if want == nil {
		return def
	}
	var out []string
	for _, f := range want {
		for _, f := range strings.Split(f, ",") {
			switch f = strings.TrimSpace(f); {
			case f == "*all" || f == "*navigable":
				return jiraAllFields
			case slices.Contains(jiraAllFields, f) && !slices.Contains(out, f):
				out = append(out, f)
			}
		}
	}
	return out
}

// issueJSON renders an issue with the chosen fields in the request's dialect.
func (j *Jira) issueJSON(req *jiraRequest, it *jiraIssue, fields []string) map[string]any {
	out := map[string]any{"id": strconv.Itoa(it.id), "key": it.key, "self": fmt.Sprintf("%s/issue/%d", req.base, it.id)}
	if len(fields) == 0 {
		return out
	}
	f := map[string]any{}
	for _, name := range fields {
		switch name {
		case "summary":
			f[name] = it.summary
		case "description":
			switch {
			case it.desc == nil:
				f[name] = nil
			case req.cloud:
				f[name] = it.desc.ADF()
			default:
				f[name] = it.desc.text
			}
		case "labels":
			f[name] = append([]string{}, it.labels...)
		case "status":
			f[name] = j.statusJSON(req.base, jiraStatuses[it.status])
		case "issuetype":
			id := 10001 + slices.Index(j.opts.IssueTypes, it.issueType)
			f[name] = map[string]any{"self": fmt.Sprintf("%s/issuetype/%d", req.base, id), "id": strconv.Itoa(id), "name": it.issueType, "subtask": false}
		case "project":
			id := 10000 + slices.Index(j.opts.Projects, it.project)
			f[name] = map[string]any{"self": fmt.Sprintf("%s/project/%d", req.base, id), "id": strconv.Itoa(id), "key": it.project, "name": it.project}
		case "created":
			f[name] = it.created.Format(jiraTime)
		case "updated":
			f[name] = it.updated.Format(jiraTime)
		case "comment":
			cs := []any{}
			for _, c := range it.comments {
				cs = append(cs, j.commentJSON(req, it, c))
			}
			f[name] = map[string]any{"comments": cs, "maxResults": len(cs), "total": len(cs), "startAt": 0}
		}
	}
	out["fields"] = f
	return out
}

func queryFields(q url.Values) []string {
	if !q.Has("fields") {
		return nil
	}
	return q["fields"]
}

func (j *Jira) getIssue(req *jiraRequest) (int, any, *jiraError) {
	j.mu.Lock()
	defer j.mu.Unlock()
	it, e := j.issueLocked(req)
	if e != nil {
		return 0, nil, e
	}
	return http.StatusOK, j.issueJSON(req, it, fieldSet(queryFields(req.r.URL.Query()), jiraAllFields)), nil
}

func (j *Jira) listComments(req *jiraRequest) (int, any, *jiraError) {
	j.mu.Lock()
	defer j.mu.Unlock()
	it, e := j.issueLocked(req)
	if e != nil {
		return 0, nil, e
	}
	cs := []any{}
	for _, c := range it.comments {
		cs = append(cs, j.commentJSON(req, it, c))
	}
	return http.StatusOK, map[string]any{"startAt": 0, "maxResults": len(cs), "total": len(cs), "comments": cs}, nil
}

// commentBody validates a comment body in the request's dialect.
func (req *jiraRequest) commentBody(v any) (*jiraText, *jiraError) {
	if v == nil || v == "" {
		return nil, jiraFieldErrs(map[string]string{"comment": "Comment body can not be empty!"})
	}
	t, msg := req.text(v)
	if msg != "" {
		return nil, jiraFieldErrs(map[string]string{"comment": msg})
	}
	if strings.TrimSpace(t.text) == "" {
		return nil, jiraFieldErrs(map[string]string{"comment": "Comment body can not be empty!"})
	}
	return t, nil
}

func (j *Jira) addCommentLocked(req *jiraRequest, it *jiraIssue, body *jiraText) *jiraComment {
	now := time.Now().UTC().Truncate(time.Millisecond)
	c := &jiraComment{id: j.nextCmtID, body: *body, author: req.user, created: now, apiVersion: req.ver}
	j.nextCmtID++
	it.comments = append(it.comments, c)
	it.updated = now
	return c
}

func (j *Jira) addComment(req *jiraRequest) (int, any, *jiraError) {
	body, e := req.object()
	if e != nil {
		return 0, nil, e
	}
	t, e := req.commentBody(body["body"])
	if e != nil {
		return 0, nil, e
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	it, e := j.issueLocked(req)
	if e != nil {
		return 0, nil, e
	}
	return http.StatusCreated, j.commentJSON(req, it, j.addCommentLocked(req, it, t)), nil
}

func (j *Jira) getTransitions(req *jiraRequest) (int, any, *jiraError) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, e := j.issueLocked(req); e != nil {
		return 0, nil, e
	}
	ts := []any{}
	for _, s := range jiraStatuses {
		ts = append(ts, map[string]any{
			"id": s.transID, "name": s.transName, "to": j.statusJSON(req.base, s),
			"hasScreen": false, "isGlobal": true, "isInitial": false, "isAvailable": true, "isConditional": false, "isLooped": false,
		})
	}
	return http.StatusOK, map[string]any{"expand": "transitions", "transitions": ts}, nil
}

func (j *Jira) doTransition(req *jiraRequest) (int, any, *jiraError) {
	body, e := req.object()
	if e != nil {
		return 0, nil, e
	}
	id := ref(body["transition"], "id")
	if id == "" {
		return 0, nil, jiraErr(http.StatusBadRequest, "Missing 'transition' identifier")
	}
	// An optional "update": {"comment": [{"add": {"body": ...}}]} comments in the same call.
	var comments []*jiraText
	if upd, ok := body["update"].(map[string]any); ok {
		ops, _ := upd["comment"].([]any)
		for _, op := range ops {
			m, _ := op.(map[string]any)
			add, _ := m["add"].(map[string]any)
			if add == nil {
				return 0, nil, jiraFieldErrs(map[string]string{"comment": "Only the 'add' operation is supported for comments."})
			}
			t, e := req.commentBody(add["body"])
			if e != nil {
				return 0, nil, e
			}
			comments = append(comments, t)
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	it, e := j.issueLocked(req)
	if e != nil {
		return 0, nil, e
	}
	to := slices.IndexFunc(jiraStatuses, func(s jiraStatus) bool { return s.transID == id })
	if to < 0 {
		return 0, nil, jiraErr(http.StatusBadRequest, fmt.Sprintf("Transition id '%s' is not valid for this issue.", id))
	}
	it.status = to
	it.updated = time.Now().UTC().Truncate(time.Millisecond)
	for _, c := range comments {
		j.addCommentLocked(req, it, c)
	}
	return http.StatusNoContent, nil, nil
}

func (j *Jira) myself(req *jiraRequest) (int, any, *jiraError) {
	u := j.userJSON(req, req.user)
	u["self"] = req.base + "/myself"
	return http.StatusOK, u, nil
}

// searchParams are the parameters common to both search endpoints.
type searchParams struct {
	jql        string
	fields     []string // nil when not given
	maxResults int      // -1 when not given
	startAt    int
	pageToken  string
}

func intParam(v any, name string) (int, *jiraError) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return 0, jiraErr(http.StatusBadRequest, fmt.Sprintf("The '%s' parameter must be an integer.", name))
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, jiraErr(http.StatusBadRequest, fmt.Sprintf("The '%s' parameter must be a non-negative integer, not '%s'.", name, s))
	}
	return n, nil
}

func (req *jiraRequest) searchParams() (searchParams, *jiraError) {
	p := searchParams{maxResults: -1}
	if req.r.Method == http.MethodGet {
		q := req.r.URL.Query()
		p.jql, p.fields, p.pageToken = q.Get("jql"), queryFields(q), q.Get("nextPageToken")
		for name, dst := range map[string]*int{"maxResults": &p.maxResults, "startAt": &p.startAt} {
			if q.Has(name) {
				n, e := intParam(q.Get(name), name)
				if e != nil {
					return p, e
				}
				*dst = n
			}
		}
		return p, nil
	}
	body, e := req.object()
	if e != nil {
		return p, e
	}
	p.jql, _ = body["jql"].(string)
	p.pageToken, _ = body["nextPageToken"].(string)
	if fs, ok := body["fields"].([]any); ok {
		p.fields = []string{}
		for _, f := range fs {
			if s, ok := f.(string); ok {
				p.fields = append(p.fields, s)
			}
		}
	}
	for name, dst := range map[string]*int{"maxResults": &p.maxResults, "startAt": &p.startAt} {
		if v, ok := body[name]; ok && v != nil {
			n, e := intParam(v, name)
			if e != nil {
				return p, e
			}
			*dst = n
		}
	}
	return p, nil
}

// searchJQL is Cloud's POST/GET /rest/api/3/search/jql.
func (j *Jira) searchJQL(req *jiraRequest) (int, any, *jiraError) {
	p, e := req.searchParams()
	if e != nil {
		return 0, nil, e
	}
	q, e := j.parseJQL(p.jql)
	if e != nil {
		return 0, nil, e
	}
	if len(q.clauses) == 0 {
		return 0, nil, jiraErr(http.StatusBadRequest, "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.")
	}
	fields := fieldSet(p.fields, nil) // only the id unless fields are asked for
	limit := p.maxResults
	switch {
	case limit < 0:
		limit = 50
	case len(fields) == 0:
		limit = min(max(limit, 1), 5000)
	default:
		limit = min(max(limit, 1), 100)
	}
	fp := fingerprint("search/jql", p.jql, strings.Join(fields, ","))
	offset := 0
	if p.pageToken != "" {
		tok, err := decodePageToken(p.pageToken, fp)
		if err != nil {
			return 0, nil, jiraErr(http.StatusBadRequest, "The provided next page token is invalid or expired.")
		}
		offset = tok.Offset
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	hits := q.run(j.issues)
	issues := []any{}
	for _, it := range hits[min(offset, len(hits)):min(offset+limit, len(hits))] {
		issue := j.issueJSON(req, it, fields)
		if len(fields) == 0 {
			issue = map[string]any{"id": issue["id"]}
		}
		issues = append(issues, issue)
	}
	out := map[string]any{"issues": issues, "isLast": offset+limit >= len(hits)}
	if offset+limit < len(hits) {
		out["nextPageToken"] = pageToken{Request: fp, Offset: offset + limit}.encode()
	}
	return http.StatusOK, out, nil
}

// searchV2 is Data Center's GET/POST /rest/api/2/search.
func (j *Jira) searchV2(req *jiraRequest) (int, any, *jiraError) {
	p, e := req.searchParams()
	if e != nil {
		return 0, nil, e
	}
	q, e := j.parseJQL(p.jql)
	if e != nil {
		return 0, nil, e
	}
	limit := p.maxResults
	if limit < 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	fields := fieldSet(p.fields, jiraAllFields)
	j.mu.Lock()
	defer j.mu.Unlock()
	hits := q.run(j.issues)
	issues := []any{}
	start := min(p.startAt, len(hits))
	for _, it := range hits[start:min(start+limit, len(hits))] {
		issues = append(issues, j.issueJSON(req, it, fields))
	}
	return http.StatusOK, map[string]any{"expand": "schema,names", "startAt": p.startAt, "maxResults": limit, "total": len(hits), "issues": issues}, nil
}

// --- JQL -------------------------------------------------------------------------

type jqlClause struct {
	field string // canonical: project, labels, status, statusCategory, issuetype, key
	neg   bool   // !=
	value string // canonical value
}

type jqlQuery struct {
	clauses []jqlClause
	order   []jqlOrder
}

type jqlOrder struct {
	field string // created, updated, key
	desc  bool
}

type jqlToken struct {
	text   string
	quoted bool
}

var jqlBareWord = regexp.MustCompile(`^[A-Za-z0-9_.\-]+`)

func tokenizeJQL(s string) ([]jqlToken, bool) {
	var toks []jqlToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"' || c == '\'':
			var b strings.Builder
			i++
			for ; i < len(s) && s[i] != c; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, false
			}
			i++
			toks = append(toks, jqlToken{b.String(), true})
		case strings.HasPrefix(s[i:], "!="):
			toks = append(toks, jqlToken{"!=", false})
			i += 2
		case c == '=' || c == ',':
			toks = append(toks, jqlToken{string(c), false})
			i++
		default:
			w := jqlBareWord.FindString(s[i:])
			if w == "" {
				return nil, false
			}
			toks = append(toks, jqlToken{w, false})
			i += len(w)
		}
	}
	return toks, true
}

var jqlFields = map[string]string{
	"project": "project", "labels": "labels", "status": "status", "statuscategory": "statusCategory",
	"issuetype": "issuetype", "type": "issuetype", "key": "key", "issuekey": "key", "id": "key",
}

func kw(t jqlToken, word string) bool { return !t.quoted && strings.EqualFold(t.text, word) }

// parseJQL parses the supported JQL subset:
//
//	clause { AND clause } [ ORDER BY field [ASC|DESC] { , field [ASC|DESC] } ]
//	clause = field ( = | != ) value
//
// with field one of project, labels, status, statusCategory, issuetype (type) and key
// (issuekey), and value quoted ("..." or '...') or a bare word.
func (j *Jira) parseJQL(jql string) (*jqlQuery, *jiraError) {
	unsupported := func(why string) *jiraError {
		return jiraErr(http.StatusBadRequest, fmt.Sprintf("Error in the JQL Query: %s. The stand-in supports field = or != value clauses joined by AND (fields project, labels, status, statusCategory, issuetype, key) and ORDER BY; the query was: %s", why, jql))
	}
	toks, ok := tokenizeJQL(jql)
	if !ok {
		return nil, unsupported("the query could not be tokenised")
	}
	q := &jqlQuery{}
	i := 0
	for i < len(toks) && !kw(toks[i], "order") {
		if len(q.clauses) > 0 {
			if !kw(toks[i], "and") {
				return nil, unsupported(fmt.Sprintf("expected AND or ORDER BY but got '%s'", toks[i].text))
			}
			i++
		}
		if i+3 > len(toks) {
			return nil, unsupported("incomplete clause at the end of the query")
		}
		f, op, v := toks[i], toks[i+1], toks[i+2]
		field, ok := jqlFields[strings.ToLower(f.text)]
		if f.quoted || !ok {
			return nil, unsupported(fmt.Sprintf("the field '%s' is not supported", f.text))
		}
		if op.quoted || (op.text != "=" && op.text != "!=") {
			return nil, unsupported(fmt.Sprintf("the operator '%s' is not supported", op.text))
		}
		if !v.quoted && (v.text == "=" || v.text == "!=" || v.text == "," || kw(v, "empty") || kw(v, "null") || kw(v, "and") || kw(v, "or")) {
			return nil, unsupported(fmt.Sprintf("the value '%s' is not supported", v.text))
		}
		c := jqlClause{field: field, neg: op.text == "!=", value: v.text}
		if e := j.resolveClause(&c); e != nil {
			return nil, e
		}
		q.clauses = append(q.clauses, c)
		i += 3
	}
	if i < len(toks) {
		if i+1 >= len(toks) || !kw(toks[i+1], "by") {
			return nil, unsupported("expected BY after ORDER")
		}
		i += 2
		for {
			if i >= len(toks) {
				return nil, unsupported("ORDER BY needs a field")
			}
			f := strings.ToLower(toks[i].text)
			if f != "created" && f != "updated" && f != "key" {
				return nil, unsupported(fmt.Sprintf("ordering by '%s' is not supported", toks[i].text))
			}
			o := jqlOrder{field: f}
			i++
			if i < len(toks) && (kw(toks[i], "asc") || kw(toks[i], "desc")) {
				o.desc = kw(toks[i], "desc")
				i++
			}
			q.order = append(q.order, o)
			if i < len(toks) && toks[i].text == "," && !toks[i].quoted {
				i++
				continue
			}
			break
		}
		if i < len(toks) {
			return nil, unsupported(fmt.Sprintf("unexpected '%s' after ORDER BY", toks[i].text))
		}
	}
	return q, nil
}

var jiraKeyPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*-[0-9]+$`)

// resolveClause checks a clause's value the way Jira does and canonicalises it.
func (j *Jira) resolveClause(c *jqlClause) *jiraError {
	noValue := func(field string) *jiraError {
		return jiraErr(http.StatusBadRequest, fmt.Sprintf("The value '%s' does not exist for the field '%s'.", c.value, field))
	}
	switch c.field {
	case "project":
		p, ok := j.project(c.value)
		if !ok {
			return noValue("project")
		}
		c.value = p
	case "issuetype":
		t, ok := j.issueType(c.value)
		if !ok {
			return noValue("issuetype")
		}
		c.value = t
	case "status":
		i := slices.IndexFunc(jiraStatuses, func(s jiraStatus) bool { return strings.EqualFold(s.name, c.value) || s.id == c.value })
		if i < 0 {
			return noValue("status")
		}
		c.value = jiraStatuses[i].name
	case "statusCategory":
		i := slices.IndexFunc(jiraStatuses, func(s jiraStatus) bool {
			return strings.EqualFold(s.catName, c.value) || strings.EqualFold(s.catKey, c.value) || strconv.Itoa(s.catID) == c.value
		})
		if i < 0 {
			return noValue("statusCategory")
		}
		c.value = jiraStatuses[i].catKey
	case "key":
		if !jiraKeyPattern.MatchString(c.value) {
			if _, err := strconv.Atoi(c.value); err != nil {
				return jiraErr(http.StatusBadRequest, fmt.Sprintf("The issue key '%s' for field 'key' is invalid.", c.value))
			}
		}
		j.mu.Lock()
		it := j.byKey[strings.ToUpper(c.value)]
		if it == nil {
			it = j.byID[c.value]
		}
		j.mu.Unlock()
		if it == nil {
			return jiraErr(http.StatusBadRequest, fmt.Sprintf("An issue with key '%s' does not exist for field 'key'.", c.value))
		}
		c.value = it.key
	}
	return nil
}

func (c jqlClause) match(it *jiraIssue) bool {
	var eq bool
	switch c.field {
	case "project":
		eq = it.project == c.value
	case "issuetype":
		eq = it.issueType == c.value
	case "status":
		eq = jiraStatuses[it.status].name == c.value
	case "statusCategory":
		eq = jiraStatuses[it.status].catKey == c.value
	case "key":
		eq = it.key == c.value
	case "labels":
		// As in Jira, != never matches an issue without labels (EMPTY).
		if len(it.labels) == 0 {
			return false
		}
		eq = slices.Contains(it.labels, c.value)
	}
	return eq != c.neg
}

// run returns the matching issues, ordered by ORDER BY or, by default, newest first.
func (q *jqlQuery) run(all []*jiraIssue) []*jiraIssue {
	var hits []*jiraIssue
	for _, it := range all {
		if !slices.ContainsFunc(q.clauses, func(c jqlClause) bool { return !c.match(it) }) {
			hits = append(hits, it)
		}
	}
	order := q.order
	if len(order) == 0 {
		order = []jqlOrder{{field: "created", desc: true}}
	}
	slices.SortStableFunc(hits, func(a, b *jiraIssue) int {
		for _, o := range order {
			var c int
			switch o.field {
			case "created":
				c = a.created.Compare(b.created)
			case "updated":
				c = a.updated.Compare(b.updated)
			}
			if c == 0 {
				c = a.id - b.id // creation order breaks ties; also the key order
			}
			if o.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
	return hits
}

// --- Atlassian Document Format ------------------------------------------------------

var adfNodeTypes = []string{
	"doc", "paragraph", "text", "heading", "bulletList", "orderedList", "listItem", "codeBlock", "blockquote",
	"rule", "hardBreak", "mention", "emoji", "panel", "table", "tableRow", "tableHeader", "tableCell",
	"mediaSingle", "mediaGroup", "media", "mediaInline", "inlineCard", "blockCard", "embedCard", "expand",
	"nestedExpand", "status", "date", "decisionList", "decisionItem", "taskList", "taskItem", "placeholder",
	"extension", "bodiedExtension", "inlineExtension", "layoutSection", "layoutColumn",
}

// validADF checks that v is an ADF document: {"type":"doc","version":1,"content":[...]}
// whose nodes are all known types and whose text nodes have text. It returns "" when
// valid, else what is wrong.
func validADF(v any) string {
	doc, ok := v.(map[string]any)
	if !ok {
		return "not a JSON object"
	}
	if doc["type"] != "doc" {
		return `top-level type is not "doc"`
	}
	if n, ok := doc["version"].(json.Number); !ok || n.String() != "1" {
		return "version is not 1"
	}
	if _, ok := doc["content"].([]any); !ok {
		return "content is not an array"
	}
	var walk func(node any, top bool) string
	walk = func(node any, top bool) string {
		m, ok := node.(map[string]any)
		if !ok {
			return "a node is not an object"
		}
		t, _ := m["type"].(string)
		if !slices.Contains(adfNodeTypes, t) || (t == "doc") != top {
			return fmt.Sprintf("node type %q is not valid here", t)
		}
		if t == "text" {
			if s, _ := m["text"].(string); s == "" {
				return "a text node has no text"
			}
		}
		if c, ok := m["content"]; ok {
			children, ok := c.([]any)
			if !ok {
				return "content is not an array"
			}
			for _, ch := range children {
				if err := walk(ch, false); err != "" {
					return err
				}
			}
		}
		return ""
	}
	return walk(doc, true)
}

var adfBlocks = []string{"paragraph", "heading", "codeBlock", "blockquote", "listItem", "panel", "tableRow", "rule", "mediaSingle", "decisionItem", "taskItem"}

// adfToText flattens an ADF document: block nodes on their own lines.
func adfToText(v any) string {
	var lines []string
	var cur strings.Builder
	flush := func() {
		lines = append(lines, cur.String())
		cur.Reset()
	}
	var walk func(node any)
	walk = func(node any) {
		m, _ := node.(map[string]any)
		t, _ := m["type"].(string)
		switch t {
		case "text":
			s, _ := m["text"].(string)
			cur.WriteString(s)
		case "hardBreak":
			flush()
		case "mention", "emoji", "status", "date", "inlineCard":
			if attrs, ok := m["attrs"].(map[string]any); ok {
				for _, k := range []string{"text", "shortName", "url"} {
					if s, ok := attrs[k].(string); ok {
						cur.WriteString(s)
						break
					}
				}
			}
		}
		children, _ := m["content"].([]any)
		for _, ch := range children {
			walk(ch)
		}
		if slices.Contains(adfBlocks, t) && !(t == "listItem" && cur.Len() == 0) {
			flush()
		}
	}
	walk(v)
	if cur.Len() > 0 {
		flush()
	}
	return strings.Join(lines, "\n")
}

// textToADF wraps plain text in an ADF document, one paragraph per line, as Jira
// shows a v2 (wiki) text through v3.
func textToADF(s string) json.RawMessage {
	content := []any{}
	for _, line := range strings.Split(s, "\n") {
		p := map[string]any{"type": "paragraph", "content": []any{}}
		if line != "" {
			p["content"] = []any{map[string]any{"type": "text", "text": line}}
		}
		content = append(content, p)
	}
	raw, _ := json.Marshal(map[string]any{"type": "doc", "version": 1, "content": content})
	return raw
}
