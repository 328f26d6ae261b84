package fakeaws

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

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
