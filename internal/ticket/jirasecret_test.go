package ticket

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/testsupport"
	"github.com/imdsguard/imdsguard/internal/ticket/jira"
)

// TestJiraFromSecret goes from a secret in Secrets Manager to an issue in Jira.
func TestJiraFromSecret(t *testing.T) {
	sm := testsupport.SecretsManager(t)
	for _, c := range jiraCases() {
		srv := fakeaws.NewJira(fakeaws.JiraOptions{Flavor: c.flavor})
		t.Cleanup(srv.Close)
		secret := map[string]string{"site_url": srv.URL, "flavour": string(c.flavour)}
		switch {
		case c.auth.PAT != "":
			secret["pat"] = c.auth.PAT.Reveal()
		case c.flavour == jira.Cloud:
			secret["email"], secret["api_token"] = c.auth.User, c.auth.Password.Reveal()
		default:
			secret["user"], secret["password"] = c.auth.User, c.auth.Password.Reveal()
		}
		raw, _ := json.Marshal(secret)
		arn := testsupport.CreateSecret(t, sm, "imdsguard/jira-"+strings.ReplaceAll(c.name, " ", "-"), string(raw))
		s, err := jira.LoadSecret(testCtx(t), sm, arn)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		j, err := NewJira(s, "SEC", "Bug", []string{"imdsv1"})
		if err != nil {
			t.Fatalf("%s: NewJira: %v", c.name, err)
		}
		key, err := j.Open(testCtx(t), NewTicket(metricVerdict(), ComposeOptions{}))
		if err != nil {
			t.Fatalf("%s: Open: %v", c.name, err)
		}
		if it := issueByKey(t, srv, key); it.IssueType != "Bug" || !strings.Contains(strings.Join(it.Labels, " "), "imdsv1") {
			t.Errorf("%s: issue %+v", c.name, it)
		}
		if _, err := NewJira(s, "", "", []string{"two words"}); err == nil ||
			!strings.Contains(err.Error(), "project key is missing") || !strings.Contains(err.Error(), `label "two words"`) {
			t.Errorf("%s: NewJira with a bad configuration: %v", c.name, err)
		}
	}
}
