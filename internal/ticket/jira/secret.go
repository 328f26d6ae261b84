package jira

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// SecretsManagerAPI is the part of the Secrets Manager client LoadSecret uses.
type SecretsManagerAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Redacted is what a credential shows as wherever it is printed, logged or marshalled.
const Redacted = "[REDACTED]"

// Credential is a secret string: an API token, a password or a personal access token.
// However it is printed (any fmt verb), logged (slog) or marshalled (JSON, text), it
// shows as [REDACTED], so that a stray log line cannot leak it; Reveal returns it.
type Credential string

// Reveal returns the secret itself, for the Authorization header.
func (c Credential) Reveal() string { return string(c) }

// String implements fmt.Stringer.
func (c Credential) String() string { return c.shown() }

// GoString implements fmt.GoStringer.
func (c Credential) GoString() string { return fmt.Sprintf("jira.Credential(%q)", c.shown()) }

// Format implements fmt.Formatter for every verb, so %d or %x cannot print it either.
func (c Credential) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, c.GoString())
		return
	}
	_, _ = io.WriteString(f, c.shown())
}

// LogValue implements slog.LogValuer.
func (c Credential) LogValue() slog.Value { return slog.StringValue(c.shown()) }

// MarshalJSON implements json.Marshaler.
func (c Credential) MarshalJSON() ([]byte, error) { return json.Marshal(c.shown()) }

// MarshalText implements encoding.TextMarshaler.
func (c Credential) MarshalText() ([]byte, error) { return []byte(c.shown()), nil }

// shown is what is printed: nothing for an empty credential, so that a missing one is
// visible in a log line, else the redaction marker.
func (c Credential) shown() string {
	if c == "" {
		return ""
	}
	return Redacted
}

// Auth are the credentials of the Jira user imdsguard acts as.
type Auth struct {
	// User is the Basic-auth user: the Atlassian account's e-mail address on Jira
	// Cloud, the user name on Jira Data Center.
	User string
	// Password is the Basic-auth password: an API token on Jira Cloud, the user's
	// password on Jira Data Center.
	Password Credential
	// PAT is a Jira Data Center personal access token, sent as "Authorization: Bearer";
	// when set, User and Password are not used.
	PAT Credential
}

// String implements fmt.Stringer without the secret.
func (a Auth) String() string {
	switch {
	case a.PAT != "":
		return "bearer personal access token " + Redacted
	case a.Password != "":
		return fmt.Sprintf("basic %s:%s", a.User, Redacted)
	}
	return fmt.Sprintf("basic %s without a password", a.User)
}

// GoString implements fmt.GoStringer without the secret.
func (a Auth) GoString() string {
	return fmt.Sprintf("jira.Auth{User:%q, Password:%#v, PAT:%#v}", a.User, a.Password, a.PAT)
}

// Format implements fmt.Formatter for every verb.
func (a Auth) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, a.GoString())
		return
	}
	_, _ = io.WriteString(f, a.String())
}

// LogValue implements slog.LogValuer without the secret.
func (a Auth) LogValue() slog.Value {
	if a.PAT != "" {
		return slog.GroupValue(slog.String("scheme", "bearer"), slog.Any("pat", a.PAT))
	}
	return slog.GroupValue(slog.String("scheme", "basic"), slog.String("user", a.User), slog.Any("password", a.Password))
}

// Secret is the Jira connection kept in a Secrets Manager secret:
//
//	{"site_url": "https://example.atlassian.net", "flavour": "cloud",
//	 "email": "bot@example.com", "api_token": "..."}
//	{"site_url": "https://jira.example.com", "flavour": "datacenter",
//	 "user": "imdsguard", "password": "..."}            (or "pat": "..." instead of user and password)
//
// It prints, logs and marshals without its credential.
type Secret struct {
	// ARN is the secret it was loaded from (as given to LoadSecret).
	ARN     string
	SiteURL *url.URL
	Flavour Flavour
	Auth    Auth
}

// String implements fmt.Stringer without the secret.
func (s Secret) String() string {
	site := ""
	if s.SiteURL != nil {
		site = s.SiteURL.Redacted()
	}
	return fmt.Sprintf("jira secret %s: %s %s, %s", s.ARN, s.Flavour, site, s.Auth)
}

// GoString implements fmt.GoStringer without the secret.
func (s Secret) GoString() string {
	site := ""
	if s.SiteURL != nil {
		site = s.SiteURL.Redacted()
	}
	return fmt.Sprintf("jira.Secret{ARN:%q, SiteURL:%q, Flavour:%q, Auth:%#v}", s.ARN, site, s.Flavour, s.Auth)
}

// Format implements fmt.Formatter for every verb.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	_, _ = io.WriteString(f, s.String())
}

// LogValue implements slog.LogValuer without the secret.
func (s Secret) LogValue() slog.Value {
	site := ""
	if s.SiteURL != nil {
		site = s.SiteURL.Redacted()
	}
	return slog.GroupValue(slog.String("arn", s.ARN), slog.String("site_url", site),
		slog.String("flavour", string(s.Flavour)), slog.Any("auth", s.Auth))
}

// MarshalJSON implements json.Marshaler without the secret.
func (s Secret) MarshalJSON() ([]byte, error) {
	site := ""
	if s.SiteURL != nil {
		site = s.SiteURL.Redacted()
	}
	return json.Marshal(map[string]any{"arn": s.ARN, "site_url": site, "flavour": s.Flavour,
		"user": s.Auth.User, "password": s.Auth.Password, "pat": s.Auth.PAT})
}

// secretJSON is the secret's JSON. Unknown fields are refused so that a misspelt
// field name is reported instead of silently missing.
type secretJSON struct {
	SiteURL  *string `json:"site_url"`
	Flavour  *string `json:"flavour"`
	Email    *string `json:"email"`
	User     *string `json:"user"`
	APIToken *string `json:"api_token"`
	Password *string `json:"password"`
	PAT      *string `json:"pat"`
}

// LoadSecret reads and checks the Jira secret secretID (an ARN or a name). Its
// errors name the secret and the field at fault but never hold a value from the secret.
func LoadSecret(ctx context.Context, api SecretsManagerAPI, secretID string) (Secret, error) {
	if secretID == "" {
		return Secret{}, errors.New("jira secret: no secret ARN given")
	}
	out, err := api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretID)})
	if err != nil {
		return Secret{}, fmt.Errorf("jira secret %s: secretsmanager:GetSecretValue: %w", secretID, err)
	}
	if out.SecretString == nil {
		return Secret{}, fmt.Errorf("jira secret %s: has no SecretString (a binary secret?); it must be a JSON object", secretID)
	}
	return ParseSecret(secretID, *out.SecretString)
}

// ParseSecret checks the JSON of a Jira secret; name is the secret's ARN or name, for
// errors. Its errors never hold a value from the secret.
//
// Rules: site_url is an absolute https URL without user info, query or fragment (http
// only to a loopback address: 127.0.0.0/8, ::1 or localhost, where nothing crosses a
// network); flavour is "cloud" (email and api_token) or "datacenter" (user and
// password, or pat); no other fields.
func ParseSecret(name, raw string) (Secret, error) {
	fail := func(format string, args ...any) (Secret, error) {
		return Secret{}, fmt.Errorf("jira secret %s: "+format, append([]any{name}, args...)...)
	}
	var in secretJSON
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return fail("%s", describeJSONError(err))
	}
	if dec.More() {
		return fail("is not one JSON object: there is more after it")
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return strings.TrimSpace(*p)
	}
	s := Secret{ARN: name}

	site := str(in.SiteURL)
	if site == "" {
		return fail(`field "site_url" is missing or empty`)
	}
	u, err := url.Parse(site)
	if err != nil {
		return fail(`field "site_url" is not a URL`)
	}
	if msg := checkSiteURL(u); msg != "" {
		return fail(`field "site_url" %s`, msg)
	}
	s.SiteURL = u

	switch f := Flavour(strings.ToLower(str(in.Flavour))); f {
	case Cloud, DataCenter:
		s.Flavour = f
	case "":
		return fail(`field "flavour" is missing or empty: it is %q or %q`, Cloud, DataCenter)
	default:
		return fail(`field "flavour" is neither %q nor %q`, Cloud, DataCenter)
	}

	email, user := str(in.Email), str(in.User)
	token, password, pat := str(in.APIToken), str(in.Password), str(in.PAT)
	switch s.Flavour {
	case Cloud:
		for _, f := range []struct{ name, value string }{{"user", user}, {"password", password}, {"pat", pat}} {
			if f.value != "" {
				return fail(`field %q is for Jira Data Center; Jira Cloud takes "email" and "api_token"`, f.name)
			}
		}
		switch {
		case email == "" && token == "":
			return fail(`fields "email" and "api_token" are missing: Jira Cloud needs both`)
		case email == "":
			return fail(`field "email" is missing: Jira Cloud needs "email" and "api_token"`)
		case token == "":
			return fail(`field "api_token" is missing: Jira Cloud needs "email" and "api_token"`)
		}
		s.Auth = Auth{User: email, Password: Credential(token)}
	case DataCenter:
		for _, f := range []struct{ name, value string }{{"email", email}, {"api_token", token}} {
			if f.value != "" {
				return fail(`field %q is for Jira Cloud; Jira Data Center takes "user" and "password", or "pat"`, f.name)
			}
		}
		switch {
		case pat != "" && (user != "" || password != ""):
			return fail(`give either "pat" or "user" and "password", not both`)
		case pat != "":
			s.Auth = Auth{PAT: Credential(pat)}
		case user == "" && password == "":
			return fail(`fields "user" and "password" (or "pat") are missing: Jira Data Center needs one of them`)
		case user == "":
			return fail(`field "user" is missing: Jira Data Center needs "user" and "password", or "pat"`)
		case password == "":
			return fail(`field "password" is missing: Jira Data Center needs "user" and "password", or "pat"`)
		default:
			s.Auth = Auth{User: user, Password: Credential(password)}
		}
	}
	return s, nil
}

// describeJSONError says what is wrong with the secret's JSON without quoting it (a
// syntax error's text can hold a character of the secret).
func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("is not JSON (syntax error at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("is not a JSON object (it is a JSON %s)", typ.Value)
		}
		return fmt.Sprintf("field %q must be a string, not a JSON %s", typ.Field, typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "is empty or cut short: it must be a JSON object"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// The message names the field, which is the caller's key, not a value.
		return fmt.Sprintf("has the unknown field %s (known: site_url, flavour, email, api_token, user, password, pat)",
			strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return "is not a valid JSON object"
}

// checkSiteURL returns what is wrong with a Jira site URL, or "".
func checkSiteURL(u *url.URL) string {
	switch {
	case u == nil:
		return "is missing"
	case u.User != nil:
		return "must not hold user info (credentials belong in their own fields)"
	case u.Host == "" || u.Opaque != "":
		return "must be an absolute URL such as https://example.atlassian.net"
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "must not have a query or a fragment"
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return ""
	case "http":
		if isLoopback(u.Hostname()) {
			return ""
		}
		return "must be https (http is allowed only to a loopback address)"
	}
	return "must be an https URL"
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
