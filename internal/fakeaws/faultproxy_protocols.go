package fakeaws

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

type protocol int

const (
	protoJSON     protocol = iota // AWS JSON 1.0 / 1.1, X-Amz-Target
	protoEC2Query                 // EC2 query: form request, <Response><Errors> errors
	protoAWSQuery                 // AWSQuery: form request, <ErrorResponse> errors
	protoOther                    // REST protocols: keyed by method and path
)

// signingToIAM maps the SigV4 signing names that differ from the IAM service prefix.
var signingToIAM = map[string]string{"monitoring": "cloudwatch", "email": "ses"}

var opNamePattern = regexp.MustCompile(`^[A-Za-z0-9]+$`)

// proxiedRequest is what the proxy knows of a request: its operation and protocol.
type proxiedRequest struct {
	service     string // IAM prefix, e.g. "cloudwatch"
	signingName string // e.g. "monitoring"
	op          string // e.g. "GetMetricData"
	key         string // service + ":" + op
	proto       protocol
	contentType string // of a JSON request, repeated in replies
	version     string // the query API version
}

// identify works out the operation of r, whose body was read into body.
func identify(r *http.Request, body []byte) proxiedRequest {
	req := proxiedRequest{signingName: credentialScopeService(r.Header.Get("Authorization"))}
	req.service = cmp.Or(signingToIAM[req.signingName], req.signingName, "unknown")
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		req.proto = protoJSON
		req.op = target[strings.LastIndexByte(target, '.')+1:]
		req.contentType = r.Header.Get("Content-Type")
		if !strings.HasPrefix(req.contentType, "application/x-amz-json-") {
			req.contentType = "application/x-amz-json-1.1"
		}
	} else if form := queryForm(r, body); form.Get("Action") != "" {
		req.proto = protoAWSQuery
		if req.service == "ec2" {
			req.proto = protoEC2Query
		}
		req.op, req.version = form.Get("Action"), form.Get("Version")
	} else {
		req.proto = protoOther
		req.op = r.Method + " " + r.URL.Path
	}
	if req.proto != protoOther && !opNamePattern.MatchString(req.op) {
		req.op = "Unknown"
	}
	req.key = req.service + ":" + req.op
	return req
}

// credentialScopeService returns the service of a SigV4 (or SigV4a) Authorization
// header's credential scope: AKID/date/region/service/aws4_request.
func credentialScopeService(auth string) string {
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) < 4 || parts[len(parts)-1] != "aws4_request" {
		return ""
	}
	return parts[len(parts)-2]
}

// queryForm returns the request's form: the body of a form POST (gunzipped when the
// SDK compressed it), else the URL query.
func queryForm(r *http.Request, body []byte) url.Values {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		b := body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				return url.Values{}
			}
			if b, err = io.ReadAll(io.LimitReader(zr, maxProxyBody)); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				return url.Values{}
			}
		}
		form, _ := url.ParseQuery(string(b))
		return form
	}
	return r.URL.Query()
}

// xmlns is the namespace of the request's XML replies.
func (req *proxiedRequest) xmlns() string {
	switch {
	case req.proto == protoEC2Query:
		return "http://ec2.amazonaws.com/doc/" + cmp.Or(req.version, "2016-11-15") + "/"
	case req.signingName == "monitoring":
		return cloudWatchXMLNS
	}
	return "https://" + req.signingName + ".amazonaws.com/doc/" + req.version + "/"
}

func (req *proxiedRequest) setSuccessHeaders(h http.Header) {
	rid := newUUID()
	switch req.proto {
	case protoJSON, protoOther:
		h.Set("Content-Type", cmp.Or(req.contentType, "application/json"))
		h.Set("X-Amzn-Requestid", rid)
	case protoEC2Query:
		h.Set("Content-Type", "text/xml;charset=UTF-8")
		h.Set("X-Amzn-Requestid", rid)
	case protoAWSQuery:
		h.Set("Content-Type", "text/xml")
		h.Set("X-Amzn-Requestid", rid)
	}
}

// resultless returns a well-formed reply of the operation without its result; bare
// drops the AWSQuery <OpResult> wrapper too.
func (req *proxiedRequest) resultless(bare bool) []byte {
	rid := newUUID()
	switch req.proto {
	case protoEC2Query:
		return []byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<` + req.op + `Response xmlns="` + req.xmlns() + `"><requestId>` +
			rid + `</requestId></` + req.op + `Response>`)
	case protoAWSQuery:
		result := `<` + req.op + `Result></` + req.op + `Result>`
		if bare {
			result = ""
		}
		return []byte(`<` + req.op + `Response xmlns="` + req.xmlns() + `">` + result +
			`<ResponseMetadata><RequestId>` + rid + `</RequestId></ResponseMetadata></` + req.op + `Response>`)
	}
	return []byte(`{}`)
}

// writeFault answers with the protocol's error for kind (throttling or a server error).
func writeFault(w http.ResponseWriter, req proxiedRequest, kind FaultKind) {
	status, code, msg := http.StatusBadRequest, "ThrottlingException", "Rate exceeded"
	switch {
	case kind == FaultThrottle && req.proto == protoEC2Query:
		code, msg = "RequestLimitExceeded", "Request limit exceeded."
	case kind == FaultThrottle && req.proto == protoAWSQuery:
		code = "Throttling"
	case kind == FaultInternalError:
		status, code, msg = http.StatusInternalServerError, "InternalFailure", "The request processing has failed because of an unknown error, exception or failure."
		if req.proto == protoEC2Query {
			code, msg = "InternalError", "An internal error has occurred."
		}
	case kind == FaultUnavailable:
		status, code, msg = http.StatusServiceUnavailable, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."
		if req.proto == protoEC2Query {
			code, msg = "Unavailable", "The server is overloaded and can't handle the request."
		}
	}
	rid := newUUID()
	var b bytes.Buffer
	h := w.Header()
	switch req.proto {
	case protoEC2Query:
		h.Set("Content-Type", "text/xml;charset=UTF-8")
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<Response><Errors><Error><Code>` + code +
			`</Code><Message>` + msg + `</Message></Error></Errors><RequestID>` + rid + `</RequestID></Response>`)
	case protoAWSQuery:
		h.Set("Content-Type", "text/xml")
		typ := "Sender"
		if status >= 500 {
			typ = "Receiver"
		}
		b.WriteString(`<ErrorResponse xmlns="` + req.xmlns() + `"><Error><Type>` + typ + `</Type><Code>` + code +
			`</Code><Message>` + msg + `</Message></Error><RequestId>` + rid + `</RequestId></ErrorResponse>`)
	default:
		h.Set("Content-Type", cmp.Or(req.contentType, "application/json"))
		h.Set("X-Amzn-Errortype", code)
		fmt.Fprintf(&b, `{"__type":%q,"message":%q}`, code, msg)
	}
	h.Set("X-Amzn-Requestid", rid)
	h.Set("Content-Length", fmt.Sprint(b.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}
