package fakeaws

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// EC2DryRun sits in front of moto's EC2 and answers the way real EC2 does where moto
// does not: for dry runs of any action, for ModifyInstanceMetadataOptions, for the
// instance metadata defaults,
// which moto does not serve at all (ec2_defaults.go), and for the AMIs' ImdsSupport,
// which it never returns (ec2_images.go):
//   - moto 5.2 ignores DryRun (on every action) and makes the change, while EC2 changes nothing and
//     answers HTTP 412 with the DryRunOperation error ("Request would have succeeded,
//     but DryRun flag is set.");
//   - moto resets every option the call leaves out, while EC2 keeps it: the proxy fills
//     them in from the instance's current options before passing the call on, so a call
//     that sends only HttpTokens keeps the hop limit and, above all, a disabled endpoint.
//
// Every other request is passed to moto untouched.
type EC2DryRun struct {
	URL string

	server *loopbackServer
	mu     sync.Mutex
	dryRun map[string]int
	// defaults are the instance metadata defaults by region (ec2_defaults.go), and
	// defaultChanges how often they were modified.
	defaults       map[string]MetadataDefaults
	defaultChanges map[string]int
	// imdsSupport is the ImdsSupport of AMIs by id, which moto never returns
	// (ec2_images.go).
	imdsSupport map[string]string
}

// NewEC2DryRun starts the proxy in front of the moto server at motoURL.
func NewEC2DryRun(motoURL string) (*EC2DryRun, error) {
	target, err := url.Parse(motoURL)
	if err != nil {
		return nil, fmt.Errorf("moto URL %q: %w", motoURL, err)
	}
	p := &EC2DryRun{dryRun: map[string]int{}, defaults: map[string]MetadataDefaults{}, defaultChanges: map[string]int{}, imdsSupport: map[string]string{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = p.addImdsSupport
	p.server = startLoopback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, err := url.ParseQuery(string(body))
		// EC2 changes nothing on a dry run, whatever the action, and answers a permitted
		// one with HTTP 412 DryRunOperation; moto ignores DryRun and makes the change.
		if err == nil && form.Get("Action") != "" && strings.EqualFold(form.Get("DryRun"), "true") {
			p.mu.Lock()
			p.dryRun[cmp.Or(form.Get("InstanceId"), form.Get("LaunchTemplateId"), form.Get("Action"))]++
			p.mu.Unlock()
			w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
			w.WriteHeader(http.StatusPreconditionFailed)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
				`<Response><Errors><Error><Code>DryRunOperation</Code><Message>Request would have succeeded, but DryRun flag is set.</Message></Error></Errors><RequestID>%s</RequestID></Response>`,
				newUUID())
			return
		}
		if err == nil && p.serveMetadataDefaults(w, r, form) {
			return
		}
		r.Header.Set(actionHeader, form.Get("Action"))
		if err == nil && form.Get("Action") == "ModifyInstanceMetadataOptions" {
			if err := keepUnspecified(r, target, form); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	p.URL = p.server.url
	return p, nil
}

// DryRuns returns how many dry-run calls named the instance (by InstanceId), the launch
// template (by LaunchTemplateId), or, naming neither, the action.
func (p *EC2DryRun) DryRuns(instanceID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dryRun[instanceID]
}

// reset forgets everything the proxy holds, as moto's reset does its state.
func (p *EC2DryRun) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dryRun, p.defaults, p.defaultChanges, p.imdsSupport = map[string]int{}, map[string]MetadataDefaults{}, map[string]int{}, map[string]string{}
}

// Close stops the proxy.
func (p *EC2DryRun) Close() { p.server.close() }

// metadataFields are ModifyInstanceMetadataOptions' parameters with the DescribeInstances
// element that holds the current value of each.
var metadataFields = []struct{ param, element string }{
	{"HttpTokens", "httpTokens"},
	{"HttpPutResponseHopLimit", "httpPutResponseHopLimit"},
	{"HttpEndpoint", "httpEndpoint"},
	{"HttpProtocolIpv6", "httpProtocolIpv6"},
	{"InstanceMetadataTags", "instanceMetadataTags"},
}

// keepUnspecified adds to the request every metadata option it leaves out, with the
// instance's current value, as read from moto.
func keepUnspecified(r *http.Request, moto *url.URL, form url.Values) error {
	describe := url.Values{"Action": {"DescribeInstances"}, "Version": {form.Get("Version")}, "InstanceId.1": {form.Get("InstanceId")}}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, moto.String()+"/", strings.NewReader(describe.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	// moto takes the account and region from the signature's credential scope.
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reading the current metadata options from moto: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		// Unknown instance and the like: let moto answer the call itself.
		return nil
	}
	var out struct {
		Options []struct {
			Values []struct {
				XMLName xml.Name
				Value   string `xml:",chardata"`
			} `xml:",any"`
		} `xml:"reservationSet>item>instancesSet>item>metadataOptions"`
	}
	if err := xml.Unmarshal(body, &out); err != nil {
		return fmt.Errorf("reading the current metadata options from moto: %w", err)
	}
	if len(out.Options) != 1 {
		return nil
	}
	current := map[string]string{}
	for _, v := range out.Options[0].Values {
		current[v.XMLName.Local] = strings.TrimSpace(v.Value)
	}
	for _, f := range metadataFields {
		if form.Get(f.param) == "" && current[f.element] != "" {
			form.Set(f.param, current[f.element])
		}
	}
	encoded := form.Encode()
	r.Body = io.NopCloser(strings.NewReader(encoded))
	r.ContentLength = int64(len(encoded))
	r.Header.Set("Content-Length", strconv.Itoa(len(encoded)))
	return nil
}
