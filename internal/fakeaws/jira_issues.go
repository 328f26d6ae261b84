package fakeaws

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

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
