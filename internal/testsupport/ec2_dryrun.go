package testsupport

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// EC2DryRun sits in front of moto's EC2 and answers the way real EC2 does where moto
// does not: moto 5.2 ignores DryRun on ModifyInstanceMetadataOptions and makes the
// change, while EC2 changes nothing and answers HTTP 412 with the DryRunOperation error
// ("Request would have succeeded, but DryRun flag is set."). Every other request is
// passed to moto untouched.
type EC2DryRun struct {
	URL string

	server *loopbackServer
	mu     sync.Mutex
	dryRun map[string]int
}

// NewEC2DryRun starts the proxy in front of the moto server at motoURL.
func NewEC2DryRun(motoURL string) (*EC2DryRun, error) {
	target, err := url.Parse(motoURL)
	if err != nil {
		return nil, fmt.Errorf("moto URL %q: %w", motoURL, err)
	}
	p := &EC2DryRun{dryRun: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	p.server = startLoopback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, err := url.ParseQuery(string(body))
		if err == nil && form.Get("Action") == "ModifyInstanceMetadataOptions" && strings.EqualFold(form.Get("DryRun"), "true") {
			p.mu.Lock()
			p.dryRun[form.Get("InstanceId")]++
			p.mu.Unlock()
			w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
			w.WriteHeader(http.StatusPreconditionFailed)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
				`<Response><Errors><Error><Code>DryRunOperation</Code><Message>Request would have succeeded, but DryRun flag is set.</Message></Error></Errors><RequestID>%s</RequestID></Response>`,
				newUUID())
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	p.URL = p.server.url
	return p, nil
}

// DryRuns returns how many dry-run ModifyInstanceMetadataOptions calls named the instance.
func (p *EC2DryRun) DryRuns(instanceID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dryRun[instanceID]
}

// Close stops the proxy.
func (p *EC2DryRun) Close() { p.server.close() }
