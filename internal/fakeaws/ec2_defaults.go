package fakeaws

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// moto 5.2 answers GetInstanceMetadataDefaults and ModifyInstanceMetadataDefaults with
// HTTP 500. The EC2 proxy answers both itself, as EC2 does (EC2 query protocol), keeping
// one account-level setting per region: what ModifyInstanceMetadataDefaults set, with
// "no-preference" (hop limit -1) clearing a field.

// MetadataDefaults are a region's account-level instance metadata defaults. An empty
// field is "no preference"; HopLimit 0 is none.
type MetadataDefaults struct {
	HTTPTokens, HTTPEndpoint, InstanceMetadataTags, HTTPTokensEnforced string
	HopLimit                                                           int32
	// ManagedBy is "account" (the default) or "declarative-policy"; ManagedMessage is
	// what EC2 says about a declarative policy.
	ManagedBy, ManagedMessage string
}

// SetMetadataDefaults sets a region's defaults, as an account or a declarative policy
// would have.
func (p *EC2DryRun) SetMetadataDefaults(region string, d MetadataDefaults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.defaults[region] = d
}

// MetadataDefaultsOf returns a region's defaults and how many times a
// ModifyInstanceMetadataDefaults changed them.
func (p *EC2DryRun) MetadataDefaultsOf(region string) (MetadataDefaults, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.defaults[region], p.defaultChanges[region]
}

var credentialRegion = regexp.MustCompile(`Credential=[^/]+/[0-9]{8}/([a-z0-9-]+)/ec2/aws4_request`)

// serveMetadataDefaults answers the two operations; false for any other request.
func (p *EC2DryRun) serveMetadataDefaults(w http.ResponseWriter, r *http.Request, form url.Values) bool {
	action := form.Get("Action")
	if action != "GetInstanceMetadataDefaults" && action != "ModifyInstanceMetadataDefaults" {
		return false
	}
	m := credentialRegion.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		writeEC2Error(w, http.StatusBadRequest, "AuthFailure", "the request is not signed for a region")
		return true
	}
	region := m[1]
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.defaults[region]
	if action == "GetInstanceMetadataDefaults" {
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
			`<GetInstanceMetadataDefaultsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>%s</requestId><accountLevel>%s</accountLevel></GetInstanceMetadataDefaultsResponse>`,
			newUUID(), defaultsXML(d))
		return true
	}
	if d.ManagedBy == "declarative-policy" {
		writeEC2Error(w, http.StatusBadRequest, "UnauthorizedOperation", "the instance metadata defaults are managed by a declarative policy: "+d.ManagedMessage)
		return true
	}
	next := d
	set := func(param string, dst *string, allowed ...string) bool {
		v := form.Get(param)
		if v == "" {
			return true
		}
		if v == "no-preference" {
			*dst = ""
			return true
		}
		for _, a := range allowed {
			if v == a {
				*dst = v
				return true
			}
		}
		writeEC2Error(w, http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("invalid value %q for %s", v, param))
		return false
	}
	if !set("HttpTokens", &next.HTTPTokens, "optional", "required") || !set("HttpEndpoint", &next.HTTPEndpoint, "enabled", "disabled") ||
		!set("InstanceMetadataTags", &next.InstanceMetadataTags, "enabled", "disabled") || !set("HttpTokensEnforced", &next.HTTPTokensEnforced, "enabled", "disabled") {
		return true
	}
	if v := form.Get("HttpPutResponseHopLimit"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err == nil && n == -1:
			next.HopLimit = 0
		case err == nil && n >= 1 && n <= 64:
			next.HopLimit = int32(n)
		default:
			writeEC2Error(w, http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("invalid value %q for HttpPutResponseHopLimit", v))
			return true
		}
	}
	if strings.EqualFold(form.Get("DryRun"), "true") {
		writeEC2Error(w, http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
		return true
	}
	p.defaults[region] = next
	p.defaultChanges[region]++
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<ModifyInstanceMetadataDefaultsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>%s</requestId><return>true</return></ModifyInstanceMetadataDefaultsResponse>`,
		newUUID())
	return true
}

func defaultsXML(d MetadataDefaults) string {
	var b strings.Builder
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(&b, "<%s>%s</%s>", name, xmlEscape(value), name)
		}
	}
	field("httpTokens", d.HTTPTokens)
	if d.HopLimit > 0 {
		field("httpPutResponseHopLimit", strconv.Itoa(int(d.HopLimit)))
	}
	field("httpEndpoint", d.HTTPEndpoint)
	field("instanceMetadataTags", d.InstanceMetadataTags)
	field("httpTokensEnforced", d.HTTPTokensEnforced)
	managed := d.ManagedBy
	if managed == "" {
		managed = "account"
	}
	field("managedBy", managed)
	field("managedExceptionMessage", d.ManagedMessage)
	return b.String()
}

func writeEC2Error(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>`,
		xmlEscape(code), xmlEscape(message), newUUID())
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	xmlText(&b, s)
	return b.String()
}
