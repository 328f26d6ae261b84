package jira

import (
	"net/http"
	"strings"
	"testing"
)

// TestSameOriginRedirects checks the policy on requests built by hand, including the
// cases loopback servers cannot show: only the scheme differs, default ports, case.
func TestSameOriginRedirects(t *testing.T) {
	check := sameOriginRedirects(nil)
	request := func(method, rawURL string) *http.Request {
		r, err := http.NewRequest(method, rawURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Response = &http.Response{StatusCode: http.StatusTemporaryRedirect}
		return r
	}
	first := request(http.MethodPost, "https://jira.example.com/rest/api/2/search")
	for _, tc := range []struct {
		method, to string
		ok         bool
	}{
		{http.MethodPost, "https://jira.example.com/jira/rest/api/2/search", true},
		{http.MethodPost, "https://JIRA.example.com:443/rest/api/2/search", true},
		{http.MethodPost, "http://jira.example.com:443/rest/api/2/search", false},
		{http.MethodPost, "http://jira.example.com/rest/api/2/search", false},
		{http.MethodPost, "https://jira.example.com:8443/rest/api/2/search", false},
		{http.MethodPost, "https://evil.jira.example.com/rest/api/2/search", false},
		{http.MethodPost, "https://jira.example.com.evil.example/rest/api/2/search", false},
		{http.MethodPost, "https://user:pass@jira.example.net/x?token=1", false},
		{http.MethodGet, "https://jira.example.com/rest/api/2/search", false},
	} {
		err := check(request(tc.method, tc.to), []*http.Request{first})
		if (err == nil) != tc.ok {
			t.Errorf("%s %s after POST %s: %v, want allowed %v", tc.method, tc.to, first.URL, err, tc.ok)
		}
		if err != nil && (strings.Contains(err.Error(), "pass") || strings.Contains(err.Error(), "token")) {
			t.Errorf("the error shows the target's user info or query: %v", err)
		}
	}
	var via []*http.Request
	for range maxRedirects {
		via = append(via, first)
	}
	if err := check(request(http.MethodPost, first.URL.String()), via); err == nil {
		t.Errorf("followed more than %d redirects", maxRedirects)
	}
}
