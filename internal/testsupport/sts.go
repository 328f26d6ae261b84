package testsupport

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// DenyAssumeRole starts a proxy in front of moto (motoURL) that refuses sts:AssumeRole
// into account with STS's AccessDenied, as STS does when the account has no such role or
// it does not trust the caller, and passes every other request on. It returns the
// proxy's URL (for AWS_ENDPOINT_URL_STS); the proxy closes with the test.
func DenyAssumeRole(t testing.TB, motoURL, account string) string {
	t.Helper()
	target, err := url.Parse(motoURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		if form.Get("Action") != "AssumeRole" || !strings.Contains(form.Get("RoleArn"), ":"+account+":") {
			proxy.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code>`+
			`<Message>User is not authorized to perform: sts:AssumeRole on resource: %s</Message></Error><RequestId>0000</RequestId></ErrorResponse>`, form.Get("RoleArn"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
