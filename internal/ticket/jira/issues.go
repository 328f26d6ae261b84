package jira

import (
	"context"
	"fmt"
	"net/http"
)

// Issue is an issue in a search result or a create response.
type Issue struct {
	ID     string `json:"id"`
	Key    string `json:"key"`
	Fields struct {
		Status Status `json:"status"`
	} `json:"fields"`
}

// Status is an issue's workflow status.
type Status struct {
	Name           string `json:"name"`
	StatusCategory struct {
		Key string `json:"key"`
	} `json:"statusCategory"`
}

// Done reports whether the status is of the done category.
func (s Status) Done() bool { return s.StatusCategory.Key == "done" }

// Transition is a move of an issue to another status.
type Transition struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	To   Status `json:"to"`
}

// Search returns the issues of a JQL query, at most max, with the fields named: on
// Cloud through /search/jql, on Data Center through /search. Retried.
func (c *Client) Search(ctx context.Context, jql string, fields []string, max int) ([]Issue, error) {
	path := c.path("search")
	if c.Flavour == Cloud {
		path = c.path("search", "jql")
	}
	var out struct {
		Issues []Issue `json:"issues"`
	}
	in := map[string]any{"jql": jql, "fields": fields, "maxResults": max}
	if err := c.call(ctx, http.MethodPost, path, in, &out); err != nil {
		return nil, err
	}
	return out.Issues, nil
}

// CreateIssue creates an issue with the fields and returns its key. It makes one
// attempt: a create that failed may still have created the issue, so the caller looks
// for it before it tries again (with Retrying).
func (c *Client) CreateIssue(ctx context.Context, fields map[string]any) (string, error) {
	var out Issue
	if err := c.once(ctx, http.MethodPost, c.path("issue"), map[string]any{"fields": fields}, &out); err != nil {
		return "", err
	}
	if out.Key == "" {
		return "", fmt.Errorf("jira: POST %s: the response names no issue key", c.path("issue"))
	}
	return out.Key, nil
}

// AddComment adds a comment to the issue: ADF on Cloud, wiki text on Data Center.
// Retried.
func (c *Client) AddComment(ctx context.Context, key string, body any) error {
	return c.call(ctx, http.MethodPost, c.path("issue", key, "comment"), map[string]any{"body": body}, nil)
}

// Transitions lists the transitions the user may make on the issue. Retried.
func (c *Client) Transitions(ctx context.Context, key string) ([]Transition, error) {
	var out struct {
		Transitions []Transition `json:"transitions"`
	}
	if err := c.call(ctx, http.MethodGet, c.path("issue", key, "transitions"), nil, &out); err != nil {
		return nil, err
	}
	return out.Transitions, nil
}

// TransitionIssue moves the issue through the transition id. Retried.
func (c *Client) TransitionIssue(ctx context.Context, key, id string) error {
	in := map[string]any{"transition": map[string]string{"id": id}}
	return c.call(ctx, http.MethodPost, c.path("issue", key, "transitions"), in, nil)
}

// IssueStatus is the issue's status. Retried.
func (c *Client) IssueStatus(ctx context.Context, key string) (Status, error) {
	var issue Issue
	if err := c.call(ctx, http.MethodGet, c.path("issue", key)+"?fields=status", nil, &issue); err != nil {
		return Status{}, err
	}
	return issue.Fields.Status, nil
}
