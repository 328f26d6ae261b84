package ticket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/imdsguard/imdsguard/internal/ticket/jira"
)

const (
	defaultJiraIssueType = "Task"

	jiraLabel = "imdsguard"
	// jiraMaxSummary is the longest summary Jira takes, in characters.
	jiraMaxSummary = 255
	// jiraMaxLabel is the longest label Jira takes, in characters.
	jiraMaxLabel = 255
	// jiraMaxText is Jira's limit of a text field (description, comment body): 32,767
	// characters. The renderings are held to that many bytes of text (Data Center) or of
	// ADF JSON (Cloud), which is stricter.
	jiraMaxText = 32767
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
// Descriptions and comments are ADF on Jira Cloud and, on Data Center, plain text set
// in {noformat} so nothing in the evidence is rendered as wiki markup. The requests, their
// retries, the credentials and the redirect policy are the jira.Client's.
type Jira struct {
	// Client is the Jira site, its credentials and how requests are retried and logged.
	Client jira.Client
	// Project is the project key (e.g. SEC) and IssueType the issue type's name
	// (default Task).
	Project, IssueType string
	// Labels are added to every issue, after "imdsguard" and the instance's label.
	Labels []string
}

// NewJira is the Jira backend for a loaded secret, checked.
func NewJira(s jira.Secret, project, issueType string, labels []string) (*Jira, error) {
	j := &Jira{Client: jira.Client{Site: s.SiteURL, Auth: s.Auth, Flavour: s.Flavour},
		Project: project, IssueType: issueType, Labels: labels}
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
	if j.Client.Site != nil {
		site = j.Client.Site.Redacted()
	}
	return slog.GroupValue(slog.String("site_url", site), slog.String("flavour", string(j.Client.Flavour)),
		slog.String("project", j.Project), slog.String("issue_type", j.issueType()),
		slog.Any("labels", j.Labels), slog.Any("auth", j.Client.Auth))
}

var jiraKeyPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*-[0-9]+$`)

// Validate checks the configuration, the client's included; every operation calls it
// first.
func (j *Jira) Validate() error {
	problems := j.Client.Problems()
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
	var key string
	var searchErr error
	// A failed create may still have created the issue: search again before each retry.
	err := j.Client.Retrying(ctx, func() error {
		if key, searchErr = j.findOpen(ctx, label); searchErr != nil || key != "" {
			return nil
		}
		var err error
		key, err = j.Client.CreateIssue(ctx, j.fields(t, label))
		return err
	})
	switch {
	case searchErr != nil:
		return "", fmt.Errorf("jira: looking for the open ticket of %s: %w", id, searchErr)
	case err != nil:
		return "", fmt.Errorf("jira: opening the ticket for %s: %w", id, err)
	}
	return key, nil
}

// findOpen returns the key of the oldest open issue with the label, or "".
func (j *Jira) findOpen(ctx context.Context, label string) (string, error) {
	jql := fmt.Sprintf("project = %s AND labels = %s AND statusCategory != Done ORDER BY created ASC", jqlQuote(j.Project), jqlQuote(label))
	issues, err := j.Client.Search(ctx, jql, []string{"status", "labels", "created"}, jiraSearchLimit)
	if err != nil {
		return "", err
	}
	var open []string
	for _, it := range issues {
		if it.Key != "" && !it.Fields.Status.Done() {
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

// fields are the fields of the instance's new issue.
func (j *Jira) fields(t Ticket, label string) map[string]any {
	labels := []string{jiraLabel, label}
	for _, l := range j.Labels {
		if !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	return map[string]any{
		"project":     map[string]string{"key": j.Project},
		"issuetype":   map[string]string{"name": j.issueType()},
		"summary":     titleLine(t.Content.Title, jiraMaxSummary),
		"labels":      labels,
		"description": j.description(t.Content),
	}
}

// Update adds the new evidence to the issue as a comment.
func (j *Jira) Update(ctx context.Context, ref string, t Ticket) error {
	if err := j.checkRef(ref); err != nil {
		return err
	}
	if err := j.Client.AddComment(ctx, ref, j.updateComment(t.Content)); err != nil {
		return fmt.Errorf("jira: adding new evidence for %s to %s: %w", t.Verdict.InstanceID, ref, err)
	}
	return nil
}

// Resolve adds the closing comment and moves the issue to a done status.
func (j *Jira) Resolve(ctx context.Context, ref string, c Closing) error {
	if err := j.checkRef(ref); err != nil {
		return err
	}
	if err := j.Client.AddComment(ctx, ref, j.resolveComment(c)); err != nil {
		return fmt.Errorf("jira: adding the closing comment for %s to %s: %w", c.InstanceID, ref, err)
	}

	ts, err := j.Client.Transitions(ctx, ref)
	if err != nil {
		return fmt.Errorf("jira: listing the transitions of %s to resolve it for %s: %w", ref, c.InstanceID, err)
	}
	tr, ok := pickDoneTransition(ts)
	if !ok {
		// Already done (a person closed it, or a retried Resolve): nothing to do.
		if status, err := j.Client.IssueStatus(ctx, ref); err == nil && status.Done() {
			return nil
		}
		return fmt.Errorf("jira: cannot resolve %s for %s: no transition leads to a done status (available: %s)",
			ref, c.InstanceID, describeTransitions(ts))
	}
	if err := j.Client.TransitionIssue(ctx, ref, tr.ID); err != nil {
		return fmt.Errorf("jira: resolving %s for %s with transition %q (%s): %w", ref, c.InstanceID, tr.Name, tr.ID, err)
	}
	return nil
}

// The bodies Jira gets. On Data Center every text from a ticket is inside noformat,
// on Cloud inside ADF text nodes; both within Jira's limit of a text field.

// description is an issue's description.
func (j *Jira) description(c Content) any {
	if j.Client.Flavour == jira.Cloud {
		return adfWithin(c, jiraMaxText)
	}
	return noformat(plainWithin(c, jiraMaxText-len(noformatOpen+noformatClose)))
}

const jiraUpdateIntro = "New evidence for this imdsguard ticket."

// updateComment is the comment that adds new evidence to an issue.
func (j *Jira) updateComment(c Content) any {
	if j.Client.Flavour == jira.Cloud {
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
	if j.Client.Flavour != jira.Cloud {
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

// pickDoneTransition is the first transition to a status of the done category or,
// failing that, the first named (or leading to a status named) Done, Closed or Resolved.
func pickDoneTransition(ts []jira.Transition) (jira.Transition, bool) {
	for _, t := range ts {
		if t.To.Done() && t.ID != "" {
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
	return jira.Transition{}, false
}

func describeTransitions(ts []jira.Transition) string {
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

// jqlQuote is a JQL string literal.
func jqlQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (j *Jira) issueType() string {
	if j.IssueType == "" {
		return defaultJiraIssueType
	}
	return j.IssueType
}

func (j *Jira) logger() *slog.Logger {
	if j.Client.Logger == nil {
		return slog.Default()
	}
	return j.Client.Logger
}
