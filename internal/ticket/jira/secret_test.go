package jira

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/imdsguard/imdsguard/internal/testsupport"
)

// Values of the secrets in these tests: none may show in an error, a log line or a
// printed Secret.
const (
	secretToken    = "tok-CLOUD-8fJ2kq"
	secretPassword = "pw-DC-Lm42xz"
	secretPAT      = "pat-DC-Qw93vb"
	secretEmail    = "bot-7Hq@example.com"
	secretUser     = "svc-imds-Kp5"
)

var secretValues = []string{secretToken, secretPassword, secretPAT, "8fJ2kq", "Lm42xz", "Qw93vb"}

func TestLoadSecret(t *testing.T) {
	sm := testsupport.SecretsManager(t)
	valid := []struct {
		name, json string
		flavour    Flavour
		site       string
		auth       Auth
	}{
		{"cloud", `{"site_url":"https://example.atlassian.net","flavour":"cloud","email":"` + secretEmail + `","api_token":"` + secretToken + `"}`,
			Cloud, "https://example.atlassian.net", Auth{User: secretEmail, Password: secretToken}},
		{"datacenter password", `{"site_url":" https://jira.example.com/jira ","flavour":"DataCenter","user":"` + secretUser + `","password":"` + secretPassword + "\\n" + `"}`,
			DataCenter, "https://jira.example.com/jira", Auth{User: secretUser, Password: secretPassword}},
		{"datacenter pat", `{"site_url":"http://127.0.0.1:8080","flavour":"datacenter","pat":"` + secretPAT + `"}`,
			DataCenter, "http://127.0.0.1:8080", Auth{PAT: secretPAT}},
		{"loopback names", `{"site_url":"http://localhost:9","flavour":"datacenter","pat":"` + secretPAT + `"}`,
			DataCenter, "http://localhost:9", Auth{PAT: secretPAT}},
	}
	for _, tc := range valid {
		arn := testsupport.CreateSecret(t, sm, "imdsguard/jira-"+strings.ReplaceAll(tc.name, " ", "-"), tc.json)
		s, err := LoadSecret(testCtx(t), sm, arn)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if s.ARN != arn || s.Flavour != tc.flavour || s.SiteURL.String() != tc.site || s.Auth != tc.auth {
			t.Errorf("%s: %#v (user %q)", tc.name, s, s.Auth.User)
		}
		checkPrintedSecret(t, tc.name, s)
	}

	invalid := []struct {
		name, json string
		want       string
	}{
		{"missing api_token", `{"site_url":"https://example.atlassian.net","flavour":"cloud","email":"` + secretEmail + `"}`, `"api_token" is missing`},
		{"missing email", `{"site_url":"https://example.atlassian.net","flavour":"cloud","api_token":"` + secretToken + `"}`, `"email" is missing`},
		{"empty api_token", `{"site_url":"https://example.atlassian.net","flavour":"cloud","email":"` + secretEmail + `","api_token":"  "}`, `"api_token" is missing`},
		{"missing site_url", `{"flavour":"cloud","email":"` + secretEmail + `","api_token":"` + secretToken + `"}`, `"site_url" is missing`},
		{"missing flavour", `{"site_url":"https://example.atlassian.net","email":"` + secretEmail + `","api_token":"` + secretToken + `"}`, `"flavour" is missing`},
		{"unknown flavour", `{"site_url":"https://example.atlassian.net","flavour":"server-` + secretToken + `","email":"a","api_token":"` + secretToken + `"}`, `"flavour" is neither`},
		{"missing password", `{"site_url":"https://jira.example.com","flavour":"datacenter","user":"` + secretUser + `"}`, `"password" is missing`},
		{"missing user", `{"site_url":"https://jira.example.com","flavour":"datacenter","password":"` + secretPassword + `"}`, `"user" is missing`},
		{"no credentials", `{"site_url":"https://jira.example.com","flavour":"datacenter"}`, `"user" and "password" (or "pat") are missing`},
		{"pat and password", `{"site_url":"https://jira.example.com","flavour":"datacenter","user":"u","password":"` + secretPassword + `","pat":"` + secretPAT + `"}`, `either "pat" or "user" and "password"`},
		{"cloud with a pat", `{"site_url":"https://example.atlassian.net","flavour":"cloud","email":"a","api_token":"` + secretToken + `","pat":"` + secretPAT + `"}`, `"pat" is for Jira Data Center`},
		{"datacenter with an api_token", `{"site_url":"https://jira.example.com","flavour":"datacenter","api_token":"` + secretToken + `"}`, `"api_token" is for Jira Cloud`},
		{"http site", `{"site_url":"http://jira.example.com","flavour":"datacenter","pat":"` + secretPAT + `"}`, `must be https`},
		{"credentials in the URL", `{"site_url":"https://u:` + secretPassword + `@jira.example.com","flavour":"datacenter","pat":"` + secretPAT + `"}`, `must not hold user info`},
		{"relative site", `{"site_url":"jira.example.com","flavour":"datacenter","pat":"` + secretPAT + `"}`, `must be an absolute URL`},
		{"ftp site", `{"site_url":"ftp://jira.example.com","flavour":"datacenter","pat":"` + secretPAT + `"}`, `must be an https URL`},
		{"site with a query", `{"site_url":"https://jira.example.com/?token=` + secretToken + `","flavour":"datacenter","pat":"` + secretPAT + `"}`, `must not have a query`},
		{"not JSON", `api_token=` + secretToken, `is not JSON (syntax error at byte`},
		{"a JSON string", `"` + secretToken + `"`, `is not a JSON object (it is a JSON string)`},
		{"a number field", `{"site_url":"https://jira.example.com","flavour":"datacenter","pat":12345678}`, `field "pat" must be a string, not a JSON number`},
		{"misspelt field", `{"site_url":"https://jira.example.com","flavour":"datacenter","apitoken":"` + secretToken + `"}`, `unknown field "apitoken"`},
		{"two objects", `{"site_url":"https://jira.example.com","flavour":"datacenter","pat":"` + secretPAT + `"} {"pat":"x"}`, `is not one JSON object`},
		{"cut short", `{"site_url":"https://jira.example.com","pat":"` + secretPAT, `cut short`},
	}
	for i, tc := range invalid {
		name := fmt.Sprintf("imdsguard/jira-bad-%d", i)
		arn := testsupport.CreateSecret(t, sm, name, tc.json)
		_, err := LoadSecret(testCtx(t), sm, arn)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), arn) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want the ARN and %q", tc.name, err, tc.want)
		}
		checkNoSecrets(t, append(secretValues, secretEmail, secretUser, "jira.example.com"), err.Error())
	}

	missing := "arn:aws:secretsmanager:us-east-1:123456789012:secret:imdsguard/none-AbCdEf"
	if _, err := LoadSecret(testCtx(t), sm, missing); err == nil || !strings.Contains(err.Error(), missing) ||
		!strings.Contains(err.Error(), "ResourceNotFoundException") || !strings.Contains(err.Error(), "secretsmanager:GetSecretValue") {
		t.Errorf("missing secret: %v", err)
	}
	if _, err := LoadSecret(testCtx(t), sm, ""); err == nil || !strings.Contains(err.Error(), "no secret ARN") {
		t.Errorf("no ARN: %v", err)
	}
	out, err := sm.CreateSecret(testCtx(t), &secretsmanager.CreateSecretInput{Name: aws.String("imdsguard/binary"), SecretBinary: []byte(secretToken)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSecret(testCtx(t), sm, aws.ToString(out.ARN)); err == nil || !strings.Contains(err.Error(), "no SecretString") {
		t.Errorf("binary secret: %v", err)
	}
}

// checkPrintedSecret prints and logs s every way a careless line might.
func checkPrintedSecret(t *testing.T, name string, s Secret) {
	t.Helper()
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("loaded", "secret", s, "auth", s.Auth, "password", s.Auth.Password, "pat", s.Auth.PAT)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("loaded", "secret", s, "auth", s.Auth, "password", s.Auth.Password, "pat", s.Auth.PAT)
	marshalled, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	printed := fmt.Sprintf("%v|%+v|%#v|%s|%q|%x|%d|%v|%+v|%#v|%v|%#v|%s",
		s, s, s, s, s, s, s, s.Auth, s.Auth, s.Auth, s.Auth.Password, s.Auth.PAT, []any{s, &s, s.Auth.Password})
	for _, out := range []string{logs.String(), string(marshalled), printed, s.String(), s.GoString(), s.Auth.String(), s.Auth.GoString()} {
		checkNoSecrets(t, secretValues, out)
		if !strings.Contains(out, "[REDACTED]") {
			t.Errorf("%s: the credential is not shown as redacted in %q", name, out)
		}
	}
	if !strings.Contains(s.String(), s.SiteURL.Host) || !strings.Contains(s.String(), string(s.Flavour)) {
		t.Errorf("%s: String() = %q, want the site and the flavour", name, s.String())
	}
	if got := s.Auth.Password.Reveal() + s.Auth.PAT.Reveal(); got == "" {
		t.Errorf("%s: Reveal returns nothing", name)
	}
}
