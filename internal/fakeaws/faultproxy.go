package fakeaws

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FaultKind names a way in which FaultProxy breaks a request or its reply.
type FaultKind string

// The faults FaultProxy injects. The kinds documented as forwarded let the upstream
// serve the request first (so a mutating call is applied although the client sees a
// failure); the others answer without the upstream ever seeing the request.
const (
	FaultNone FaultKind = "" // pass the request through unchanged

	// FaultThrottle answers HTTP 400 with the protocol's throttling error:
	// ThrottlingException (JSON), RequestLimitExceeded (EC2), Throttling (AWSQuery).
	FaultThrottle FaultKind = "throttle"
	// FaultInternalError answers HTTP 500: InternalError (EC2), InternalFailure (others).
	FaultInternalError FaultKind = "internal-error"
	// FaultUnavailable answers HTTP 503: Unavailable (EC2), ServiceUnavailable (others).
	FaultUnavailable FaultKind = "unavailable"
	// FaultReset resets the connection (SO_LINGER 0, so the client gets a TCP RST)
	// instead of answering.
	FaultReset FaultKind = "reset"
	// FaultResetAfterUpstream is forwarded, then resets the connection instead of
	// relaying the reply: the call happened, the client never learns it.
	FaultResetAfterUpstream FaultKind = "reset-after-upstream"
	// FaultDelay waits OpFaults.Delay (DefaultFaultDelay when zero), then forwards.
	FaultDelay FaultKind = "delay"
	// FaultStall never answers: the handler waits until the client gives up or the
	// proxy is closed.
	FaultStall FaultKind = "stall"
	// FaultTruncate is forwarded and relays a prefix of the reply body with a matching
	// Content-Length: a syntactically truncated document delivered "successfully". The
	// cut is at a seeded random point inside the document (never only trailing
	// whitespace, never at 0).
	FaultTruncate FaultKind = "truncate"
	// FaultTruncateEOF is forwarded and announces the full Content-Length, sends a
	// seeded random prefix of the body (possibly none of it), then closes the
	// connection: the client's read ends with an unexpected EOF.
	FaultTruncateEOF FaultKind = "truncate-eof"
	// FaultTruncateReset is FaultTruncateEOF ending with a TCP RST instead of a FIN.
	FaultTruncateReset FaultKind = "truncate-reset"
	// FaultGarble is forwarded and overwrites seeded random bytes of the reply body
	// (1 + len/64 of them, within the document) with C0 control characters, which are
	// invalid anywhere in JSON and XML; the length and headers stay as they were. The
	// body is malformed wherever the client's decoder reads it (a decoder that stops
	// before the damage does not notice it).
	FaultGarble FaultKind = "garble"
	// FaultEmpty200 is forwarded and replaces the reply with a 200 and an empty body
	// (Content-Length 0).
	FaultEmpty200 FaultKind = "empty-200"
	// FaultMissingResult is forwarded and replaces the reply with a well-formed 200 of
	// the operation's response shape minus its result: {} for JSON,
	// <OpResponse><requestId/></OpResponse> for EC2,
	// <OpResponse><OpResult></OpResult><ResponseMetadata/></OpResponse> for AWSQuery.
	FaultMissingResult FaultKind = "missing-result"
	// FaultBareResponse is FaultMissingResult without even the AWSQuery result wrapper:
	// <OpResponse><ResponseMetadata/></OpResponse>. For JSON and EC2 it is the same as
	// FaultMissingResult.
	FaultBareResponse FaultKind = "bare-response"
)

// DefaultFaultDelay is the FaultDelay of an OpFaults whose Delay is zero.
const DefaultFaultDelay = 100 * time.Millisecond

var faultKinds = []FaultKind{
	FaultThrottle, FaultInternalError, FaultUnavailable, FaultReset, FaultResetAfterUpstream,
	FaultDelay, FaultStall, FaultTruncate, FaultTruncateEOF, FaultTruncateReset, FaultGarble, FaultEmpty200,
	FaultMissingResult, FaultBareResponse,
}

// FaultKinds returns every fault kind (not FaultNone).
func FaultKinds() []FaultKind { return slices.Clone(faultKinds) }

func (k FaultKind) valid() bool { return slices.Contains(faultKinds, k) }

func (k FaultKind) String() string {
	if k == FaultNone {
		return "pass"
	}
	return string(k)
}

// FaultPlan says which faults FaultProxy injects into which operations.
type FaultPlan struct {
	// Seed drives every random choice (which fault, where to cut or garble). Each
	// operation draws from its own stream, seeded from Seed and the operation key, so
	// the same seed and the same order of the calls of each operation give the same
	// faults however calls of different operations interleave.
	Seed uint64
	// Ops maps an operation key to its faults. The key is "service:Operation" with the
	// IAM service prefix ("ec2:DescribeInstances", "cloudwatch:GetMetricData",
	// "cloudtrail:LookupEvents"), "service:*" for every operation of a service, or "*"
	// for every operation; the most specific key applies. Operations without a key
	// pass through.
	Ops map[string]OpFaults
	// MaxConsecutive, when positive, lets a request through unchanged after that many
	// consecutive faulted attempts (of any kind, FaultDelay included) of one SDK call:
	// the requests of an operation carrying the same amz-sdk-invocation-id header,
	// which the SDK keeps across the retries of a call (requests without it count per
	// operation). With the SDK's standard retryer (3 attempts), 2 guarantees that the
	// faults the SDK retries never fail a call, also with concurrent callers, and 3
	// lets them fail calls. (Faults the SDK does not retry fail the call at once.)
	MaxConsecutive int
}

// OpFaults are the faults of the operations matching one FaultPlan key. Request n of an
// operation (every attempt of an SDK call is a request; 1-based, counted since the plan
// was set) gets Script[n-1] while the script lasts, then a fault drawn from
// Probabilities. MaxFaults and FirstRequests limit both.
type OpFaults struct {
	// Script lists the faults of the first requests in order; FaultNone passes one.
	Script []FaultKind
	// Probabilities gives each fault kind its probability per request after the
	// script; they must sum to at most 1, and the rest of the time the request passes.
	Probabilities map[FaultKind]float64
	// MaxFaults, when positive, is the most faults injected into the operation.
	MaxFaults int
	// FirstRequests, when positive, limits faults to the first FirstRequests requests.
	FirstRequests int
	// Delay is how long FaultDelay waits before forwarding; DefaultFaultDelay when 0.
	Delay time.Duration
}

var opKeyPattern = regexp.MustCompile(`^(\*|[a-z0-9-]+:(\*|[A-Za-z0-9]+|[A-Z]+ /.*))$`)

// Validate reports the first problem of the plan: an unknown fault kind, a
// probability outside [0, 1] or summing over 1, a negative limit, a malformed key.
func (p FaultPlan) Validate() error {
	if p.MaxConsecutive < 0 {
		return fmt.Errorf("fault plan: MaxConsecutive %d is negative", p.MaxConsecutive)
	}
	for _, key := range slices.Sorted(maps.Keys(p.Ops)) {
		o := p.Ops[key]
		if !opKeyPattern.MatchString(key) {
			return fmt.Errorf("fault plan: key %q is not \"service:Operation\", \"service:*\" or \"*\"", key)
		}
		for i, k := range o.Script {
			if k != FaultNone && !k.valid() {
				return fmt.Errorf("fault plan %s: Script[%d]: unknown fault kind %q", key, i, k)
			}
		}
		sum := 0.0
		for k, v := range o.Probabilities {
			if !k.valid() {
				return fmt.Errorf("fault plan %s: unknown fault kind %q", key, k)
			}
			if v < 0 || v > 1 || math.IsNaN(v) {
				return fmt.Errorf("fault plan %s: probability %v of %s is not in [0, 1]", key, v, k)
			}
			sum += v
		}
		if sum > 1+1e-9 {
			return fmt.Errorf("fault plan %s: probabilities sum to %v, more than 1", key, sum)
		}
		if o.MaxFaults < 0 || o.FirstRequests < 0 || o.Delay < 0 {
			return fmt.Errorf("fault plan %s: MaxFaults, FirstRequests and Delay must not be negative", key)
		}
	}
	return nil
}

// lookup returns the faults for operation key op ("ec2:DescribeInstances").
func (p *FaultPlan) lookup(op string) (OpFaults, bool) {
	if o, ok := p.Ops[op]; ok {
		return o, true
	}
	if svc, _, ok := strings.Cut(op, ":"); ok {
		if o, ok := p.Ops[svc+":*"]; ok {
			return o, true
		}
	}
	o, ok := p.Ops["*"]
	return o, ok
}

// FaultEvent is one request the proxy handled, as FaultProxy.Events reports it.
type FaultEvent struct {
	Seq int    // 1-based, in order of arrival at the proxy
	Op  string // operation key, e.g. "ec2:DescribeInstances"
	N   int    // 1-based number of this request of Op since the plan was set
	// Attempt is the SDK's attempt number of the request (its amz-sdk-request header:
	// 1 for the first try, 2 for the first retry), 0 when the header is missing.
	Attempt int
	Fault   FaultKind // FaultNone when the request passed through unchanged
	Detail  string    // what happened, e.g. "upstream 200, cut at 812 of 2315 bytes"
}

func (e FaultEvent) String() string {
	s := fmt.Sprintf("#%d %s request %d", e.Seq, e.Op, e.N)
	if e.Attempt > 0 {
		s += fmt.Sprintf(" attempt %d", e.Attempt)
	}
	s += ": " + e.Fault.String()
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// FaultProxy is a reverse proxy in front of moto or a stand-in that breaks requests
// and replies as its FaultPlan says, to test how clients cope with a misbehaving AWS.
// Point SDK clients at URL (BaseEndpoint, or the environment from Env for programs).
//
// It identifies each request's operation by the X-Amz-Target header (JSON protocols)
// or the form field Action (EC2 and AWSQuery), and the service by the SigV4 credential
// scope of the Authorization header (the signing name "monitoring" is reported as
// "cloudwatch"). Requests of other protocols are keyed "service:METHOD /path" and get
// JSON-style errors. Unsigned requests have the service "unknown".
//
// It is safe for concurrent use.
type FaultProxy struct {
	URL string

	upstream *url.URL
	server   *loopbackServer
	client   *http.Client
	ctx      context.Context // canceled by Close
	cancel   context.CancelFunc

	life     sync.Mutex
	closed   bool
	inflight sync.WaitGroup
	once     sync.Once

	mu        sync.Mutex
	plan      FaultPlan
	onRequest func(FaultEvent)
	state     map[string]*opState
	seq       int
	events    []FaultEvent
	requests  map[string]int
	faults    map[string]map[FaultKind]int
}

type opState struct {
	rng         *rand.Rand
	requests    int
	faults      int
	consecutive map[string]int // by invocation ID; entries go when a request passes
}

// StartFaultProxy starts a fault proxy on a loopback port forwarding to upstream (a
// base URL such as MotoServer.URL or CloudTrail.URL). Close it when done. It panics
// when upstream is not an absolute URL or the plan is invalid (see Validate).
func StartFaultProxy(upstream string, plan FaultPlan) *FaultProxy {
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme == "" || u.Host == "" {
		panic(fmt.Sprintf("testsupport: fault proxy upstream %q is not an absolute URL", upstream))
	}
	if err := plan.Validate(); err != nil {
		panic("testsupport: " + err.Error())
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &FaultProxy{
		upstream: u,
		client: &http.Client{
			Transport: &http.Transport{
				Proxy:               nil,
				DisableCompression:  true,
				MaxIdleConnsPerHost: 64,
				IdleConnTimeout:     30 * time.Second,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		ctx:      ctx,
		cancel:   cancel,
		plan:     clonePlan(plan),
		state:    map[string]*opState{},
		requests: map[string]int{},
		faults:   map[string]map[FaultKind]int{},
	}
	p.server = startLoopback(p)
	p.URL = p.server.url
	return p
}

func clonePlan(p FaultPlan) FaultPlan {
	ops := make(map[string]OpFaults, len(p.Ops))
	for k, o := range p.Ops {
		o.Script = slices.Clone(o.Script)
		o.Probabilities = maps.Clone(o.Probabilities)
		ops[k] = o
	}
	p.Ops = ops
	return p
}

// Close stops the proxy. Stalled and delayed requests are abandoned (their connections
// reset) and Close returns once every request handler has returned.
// It is safe to call more than once.
func (p *FaultProxy) Close() {
	p.once.Do(func() {
		p.life.Lock()
		p.closed = true
		p.life.Unlock()
		p.cancel()
		p.server.close()
		p.inflight.Wait()
		p.client.CloseIdleConnections()
	})
}

// SetPlan replaces the plan (panicking when it is invalid, see Validate) and restarts
// every operation's request count, fault count and random stream; counters and the event
// log are kept.
func (p *FaultProxy) SetPlan(plan FaultPlan) {
	if err := plan.Validate(); err != nil {
		panic("testsupport: " + err.Error())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.plan, p.state = clonePlan(plan), map[string]*opState{}
}

// OnRequest installs fn to be called with each request's event as soon as the fault is
// chosen, before it is applied (so a test can act while a call stalls); nil removes it.
// fn runs on the request's goroutine, possibly concurrently with itself.
func (p *FaultProxy) OnRequest(fn func(FaultEvent)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onRequest = fn
}

// Env returns environment entries that point the SDK of a child process at the proxy:
// AWS_ENDPOINT_URL=URL without arguments, else AWS_ENDPOINT_URL_<SERVICE>=URL for each
// SDK service ID given ("EC2", "CloudWatch", "CloudTrail", "DynamoDB").
func (p *FaultProxy) Env(serviceIDs ...string) []string {
	if len(serviceIDs) == 0 {
		return []string{"AWS_ENDPOINT_URL=" + p.URL}
	}
	env := make([]string, len(serviceIDs))
	for i, s := range serviceIDs {
		env[i] = "AWS_ENDPOINT_URL_" + strings.ToUpper(strings.ReplaceAll(s, " ", "_")) + "=" + p.URL
	}
	return env
}

// Requests returns how many requests of operation op arrived ("" for all operations).
func (p *FaultProxy) Requests(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if op != "" {
		return p.requests[op]
	}
	n := 0
	for _, v := range p.requests {
		n += v
	}
	return n
}

// Faults returns how many faults of kind were injected into op. op "" counts every
// operation and kind FaultNone every kind.
func (p *FaultProxy) Faults(op string, kind FaultKind) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for o, byKind := range p.faults {
		if op != "" && o != op {
			continue
		}
		for k, v := range byKind {
			if kind == FaultNone || k == kind {
				n += v
			}
		}
	}
	return n
}

// Ops returns the keys of the operations seen so far, sorted.
func (p *FaultProxy) Ops() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(maps.Keys(p.requests))
}

// Events returns every request handled so far, in order of arrival.
func (p *FaultProxy) Events() []FaultEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// Report returns the event log, one line per request, for a failing test to print.
func (p *FaultProxy) Report() string {
	var b strings.Builder
	for _, e := range p.Events() {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// decision is what the plan chose for one request.
type decision struct {
	event FaultEvent // as first logged
	kind  FaultKind
	index int    // of the request's event in p.events
	seed  uint64 // seeds the cut or garble positions
	delay time.Duration
}

func (p *FaultProxy) decide(op, invocation string, attempt int) decision {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state[op]
	if st == nil {
		h := fnv.New64a()
		_, _ = h.Write([]byte(op))
		st = &opState{rng: rand.New(rand.NewPCG(p.plan.Seed, h.Sum64())), consecutive: map[string]int{}}
		p.state[op] = st
	}
	st.requests++
	// Every request draws the same numbers whatever is decided, so that the stream of
	// an operation does not depend on the plan's limits.
	u, seed := st.rng.Float64(), st.rng.Uint64()
	d := decision{seed: seed}
	var detail string
	if o, ok := p.plan.lookup(op); ok {
		if st.requests <= len(o.Script) {
			d.kind = o.Script[st.requests-1]
		} else {
			d.kind = pickFault(o.Probabilities, u)
		}
		switch {
		case d.kind == FaultNone:
		case o.FirstRequests > 0 && st.requests > o.FirstRequests:
			d.kind, detail = FaultNone, fmt.Sprintf("%s suppressed: after FirstRequests %d", d.kind, o.FirstRequests)
		case o.MaxFaults > 0 && st.faults >= o.MaxFaults:
			d.kind, detail = FaultNone, fmt.Sprintf("%s suppressed: MaxFaults %d reached", d.kind, o.MaxFaults)
		case p.plan.MaxConsecutive > 0 && st.consecutive[invocation] >= p.plan.MaxConsecutive:
			d.kind, detail = FaultNone, fmt.Sprintf("%s suppressed: MaxConsecutive %d reached", d.kind, p.plan.MaxConsecutive)
		}
		d.delay = cmp.Or(o.Delay, DefaultFaultDelay)
	}
	if d.kind == FaultNone {
		delete(st.consecutive, invocation)
	} else {
		st.faults++
		st.consecutive[invocation]++
		if p.faults[op] == nil {
			p.faults[op] = map[FaultKind]int{}
		}
		p.faults[op][d.kind]++
	}
	p.requests[op]++
	p.seq++
	d.index = len(p.events)
	d.event = FaultEvent{Seq: p.seq, Op: op, N: st.requests, Attempt: attempt, Fault: d.kind, Detail: detail}
	p.events = append(p.events, d.event)
	return d
}

// pickFault maps u in [0, 1) to a fault, the kinds taking consecutive slices of [0, 1)
// in a fixed order.
func pickFault(probs map[FaultKind]float64, u float64) FaultKind {
	acc := 0.0
	for _, k := range faultKinds {
		acc += probs[k]
		if u < acc {
			return k
		}
	}
	return FaultNone
}

func (p *FaultProxy) note(d decision, format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := &p.events[d.index]
	if e.Detail != "" {
		e.Detail += "; "
	}
	e.Detail += fmt.Sprintf(format, a...)
}

// enter registers a request handler unless the proxy is closing.
func (p *FaultProxy) enter() bool {
	p.life.Lock()
	defer p.life.Unlock()
	if p.closed {
		return false
	}
	p.inflight.Add(1)
	return true
}

const maxProxyBody = 64 << 20

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.enter() {
		resetConn(w)
		return
	}
	defer p.inflight.Done()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxProxyBody+1))
	if err != nil || len(body) > maxProxyBody {
		http.Error(w, "fault proxy: cannot read the request body", http.StatusBadRequest)
		return
	}
	req := identify(r, body)
	d := p.decide(req.key, r.Header.Get("Amz-Sdk-Invocation-Id"), sdkAttempt(r.Header.Get("Amz-Sdk-Request")))
	p.mu.Lock()
	onRequest := p.onRequest
	p.mu.Unlock()
	if onRequest != nil {
		onRequest(d.event)
	}

	switch d.kind {
	case FaultThrottle, FaultInternalError, FaultUnavailable:
		writeFault(w, req, d.kind)
		return
	case FaultReset:
		resetConn(w)
		return
	case FaultStall:
		select {
		case <-r.Context().Done():
			p.note(d, "client gave up")
		case <-p.ctx.Done():
			p.note(d, "proxy closed")
		}
		resetConn(w) // returning would send an empty 200
		return
	case FaultDelay:
		t := time.NewTimer(d.delay)
		defer t.Stop()
		select {
		case <-t.C:
			p.note(d, "waited %v", d.delay)
		case <-r.Context().Done():
			p.note(d, "client gave up during the delay")
			resetConn(w)
			return
		case <-p.ctx.Done():
			p.note(d, "proxy closed during the delay")
			resetConn(w)
			return
		}
	}

	resp, respBody, err := p.forward(r, body)
	if err != nil {
		p.note(d, "upstream error: %v", err)
		if p.ctx.Err() != nil || r.Context().Err() != nil {
			resetConn(w)
			return
		}
		http.Error(w, "fault proxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	p.note(d, "upstream %d, %d bytes", resp.StatusCode, len(respBody))
	h := w.Header()
	for k, vs := range resp.Header {
		if !hopHeader(k) && k != "Content-Length" {
			h[k] = vs
		}
	}
	rng := rand.New(rand.NewPCG(d.seed, 0x5eed))
	switch d.kind {
	case FaultResetAfterUpstream:
		resetConn(w)
		return
	case FaultTruncate:
		doc := len(bytes.TrimRight(respBody, " \t\r\n"))
		cut := 0
		if doc > 1 {
			cut = 1 + rng.IntN(doc-1)
		}
		p.note(d, "cut at %d", cut)
		respBody = respBody[:cut]
	case FaultTruncateEOF, FaultTruncateReset:
		cut := 0
		if len(respBody) > 0 {
			cut = rng.IntN(len(respBody))
		}
		how := "closed"
		if d.kind == FaultTruncateReset {
			how = "reset"
		}
		p.note(d, "connection %s after %d of %d bytes", how, cut, len(respBody))
		writeThenClose(w, resp.StatusCode, len(respBody), respBody[:cut], d.kind == FaultTruncateReset)
		return
	case FaultGarble:
		respBody = slices.Clone(respBody)
		at := garble(respBody, rng)
		p.note(d, "garbled %d bytes at %v", len(at), at[:min(len(at), 5)])
	case FaultEmpty200, FaultMissingResult, FaultBareResponse:
		resp.StatusCode, respBody = http.StatusOK, nil
		clear(h)
		req.setSuccessHeaders(h)
		if d.kind != FaultEmpty200 {
			respBody = req.resultless(d.kind == FaultBareResponse)
		}
	}
	h.Set("Content-Length", fmt.Sprint(len(respBody)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(respBody)
}

// forward sends the request to the upstream and reads the whole reply.
func (p *FaultProxy) forward(r *http.Request, body []byte) (*http.Response, []byte, error) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(p.ctx, cancel)()
	u := *p.upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + r.URL.Path
	u.RawPath = ""
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, vs := range r.Header {
		if !hopHeader(k) && k != "Accept-Encoding" && k != "Content-Length" {
			out.Header[k] = vs
		}
	}
	out.Host = r.Host // the signed host; neither moto nor the stand-ins route by it
	resp, err := p.client.Do(out)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, respBody, nil
}

// sdkAttempt reads the attempt number from an amz-sdk-request header value
// ("attempt=2; max=3"), 0 when there is none.
func sdkAttempt(v string) int {
	for part := range strings.SplitSeq(v, ";") {
		if n, ok := strings.CutPrefix(strings.TrimSpace(part), "attempt="); ok {
			if a, err := strconv.Atoi(n); err == nil && a > 0 {
				return a
			}
		}
	}
	return 0
}

func hopHeader(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// resetConn closes the client connection without answering, with a TCP RST.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// writeThenClose sends the status, the headers already set on w with a Content-Length
// of full, and part of the body, then closes the connection (with a RST if reset).
func writeThenClose(w http.ResponseWriter, status, full int, part []byte, reset bool) {
	h := w.Header().Clone()
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	defer conn.Close()
	h.Set("Content-Length", fmt.Sprint(full))
	bw := bufio.NewWriter(conn)
	_ = buf.Writer.Flush()
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	_ = h.Write(bw)
	_, _ = bw.WriteString("\r\n")
	_, _ = bw.Write(part)
	_ = bw.Flush()
	if tc, ok := conn.(*net.TCPConn); ok && reset {
		_ = tc.SetLinger(0)
	}
}

// garble overwrites 1+len/64 bytes of the document in b (trailing whitespace excluded)
// with C0 control characters other than tab, CR and LF, and returns their positions.
func garble(b []byte, rng *rand.Rand) []int {
	doc := len(bytes.TrimRight(b, " \t\r\n"))
	if doc == 0 {
		return nil
	}
	const bad = "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"
	n := min(1+doc/64, doc)
	seen := make(map[int]bool, n)
	at := make([]int, 0, n)
	for len(at) < n {
		if i := rng.IntN(doc); !seen[i] {
			seen[i] = true
			at = append(at, i)
			b[i] = bad[rng.IntN(len(bad))]
		}
	}
	slices.Sort(at)
	return at
}
