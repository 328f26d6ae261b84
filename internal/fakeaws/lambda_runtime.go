package fakeaws

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file is a stand-in for the Lambda Runtime API (version 2018-06-01) and a launcher
// for `bootstrap` binaries, so that the functions can be run end-to-end without SAM CLI
// or Docker: the real binary, built like SAM builds it, talks to the harness exactly as it
// talks to Lambda.
//
// Every process started by StartLambda gets its own loopback address for
// AWS_LAMBDA_RUNTIME_API, all of them served by one RuntimeAPI. That is how the harness
// knows which process sent a request: the first `next` of each process ends its cold
// start, and an invocation delivered to a process that dies fails with Runtime.ExitError,
// as on Lambda. RuntimeAPI.Addr is one more address, for runtimes started by other means.

const (
	// DefaultInvokeTimeout is the function timeout used when InvokeOptions.Timeout is
	// zero: the longest Lambda allows, so that the harness never times a function out
	// unless a test asks for it with the template's Timeout.
	DefaultInvokeTimeout = 15 * time.Minute

	// LambdaTestAccount is the account ID in the function ARN the harness sends.
	LambdaTestAccount = "123456789012"
	// LambdaTestFunctionName is the function name StartLambda sets when env has none.
	LambdaTestFunctionName = "imdsguard-test"

	lambdaDefaultRegion = "us-east-1"
	lambdaDefaultMemory = "256"
	// Lambda's payload limits for synchronous invocations. The request limit is 6 MiB;
	// Lambda's own error message for responses names 6,291,556 bytes (6 MiB + 100).
	lambdaMaxEventBytes    = 6 << 20
	lambdaMaxResponseBytes = 6<<20 + 100
	// lambdaLogLimit bounds the captured output of one process; beyond it the oldest
	// half is dropped.
	lambdaLogLimit = 16 << 20
	// lambdaWaitDelay bounds how long a process's Wait waits for its output pipes after
	// it exited (a grandchild could hold them open).
	lambdaWaitDelay = 5 * time.Second

	runtimeAPIPrefix = "/2018-06-01/runtime/"

	hdrRequestID       = "Lambda-Runtime-Aws-Request-Id"
	hdrDeadlineMs      = "Lambda-Runtime-Deadline-Ms"
	hdrFunctionARN     = "Lambda-Runtime-Invoked-Function-Arn"
	hdrTraceID         = "Lambda-Runtime-Trace-Id"
	hdrClientContext   = "Lambda-Runtime-Client-Context"
	hdrCognitoIdentity = "Lambda-Runtime-Cognito-Identity"
	hdrErrorType       = "Lambda-Runtime-Function-Error-Type"
	hdrErrorBody       = "Lambda-Runtime-Function-Error-Body"
)

// ErrRuntimeAPIClosed is returned by Invoke once the RuntimeAPI has been closed.
var ErrRuntimeAPIClosed = errors.New("lambda runtime API harness closed")

// FunctionError is the error result of an invocation, as the caller of Lambda's Invoke
// sees it: Raw is the payload (for errors the runtime reported, the body it posted), Type
// and Message its errorType and errorMessage. Errors the platform itself produces use
// Lambda's types: Runtime.ExitError, Sandbox.Timedout, Function.ResponseSizeTooLarge.
type FunctionError struct {
	Type    string
	Message string
	Raw     []byte
}

func (e *FunctionError) Error() string { return e.Type + ": " + e.Message }

// Invocation is the outcome of one invocation.
type Invocation struct {
	RequestID string
	// Deadline is the deadline sent in Lambda-Runtime-Deadline-Ms, at the millisecond
	// precision the function sees; zero if the invocation was never delivered.
	Deadline time.Time
	// Response is the payload the function posted to .../response (nil on error), with
	// the Content-Type it was posted with.
	Response    []byte
	ContentType string
	// Err is set when the function failed: it posted to .../error, crashed, timed out
	// or answered too much.
	Err *FunctionError
	// Duration runs from the delivery of the event by `next` to the result.
	Duration time.Duration
}

// InvokeOptions are the optional parts of an invocation.
type InvokeOptions struct {
	// Timeout is the function timeout: the deadline is the delivery time plus Timeout.
	// When it passes without a result the invocation fails with Sandbox.Timedout and the
	// process that held it is killed, as Lambda resets the execution environment.
	// Zero means DefaultInvokeTimeout.
	Timeout time.Duration
	// FunctionARN defaults to arn:aws:lambda:<AWS_REGION>:LambdaTestAccount:function:<name>
	// built from the environment of the receiving process.
	FunctionARN string
	// TraceID defaults to a fresh X-Ray trace header (Root=1-...;Parent=...;Sampled=0).
	TraceID string
	// ClientContext and CognitoIdentity are JSON documents; their headers are sent only
	// when they are set, as on Lambda.
	ClientContext   string
	CognitoIdentity string
}

// RuntimeAPI is a faithful stand-in for the Lambda Runtime API:
//
//   - GET  /2018-06-01/runtime/invocation/next blocks until an event is queued, then
//     answers 200 with the event and the Lambda-Runtime-* headers;
//   - POST /2018-06-01/runtime/invocation/{id}/response and .../{id}/error answer 202
//     with {"status":"OK"} and complete the invocation; an ID that is not in flight on
//     the caller's address (unknown, already answered, or timed out) gets 400
//     {"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"};
//   - POST /2018-06-01/runtime/init/error answers 202 and records the init failure
//     (403 InvalidStateTransition after the runtime's first next);
//   - anything else is 404.
//
// A response larger than Lambda's limit is answered 413 and fails the invocation with
// Function.ResponseSizeTooLarge. Error trailers on a response (how aws-lambda-go reports
// a failing io.Reader response) turn it into an error, as on Lambda.
type RuntimeAPI struct {
	// Addr (host:port) serves runtimes started outside StartLambda; StartLambda gives
	// each process an address of its own.
	Addr string

	mu       sync.Mutex
	closed   bool
	closedCh chan struct{}
	wake     chan struct{} // closed and replaced whenever an event is queued
	queue    []*rtInvocation
	inflight map[string]*rtInvocation
	owners   []*rtOwner
	initErr  *FunctionError
}

// rtOwner is one address of the harness and the runtime behind it.
type rtOwner struct {
	api  *RuntimeAPI
	proc *LambdaProcess // nil for RuntimeAPI.Addr
	srv  *loopbackServer
	addr string

	// Guarded by api.mu.
	firstNextAt time.Time
	firstNext   chan struct{} // closed at the first next
	exited      bool
	initErr     *FunctionError
}

type rtInvocation struct {
	id    string
	event []byte
	opts  InvokeOptions

	// Guarded by RuntimeAPI.mu.
	owner       *rtOwner
	deliveredAt time.Time
	deadline    time.Time
	timer       *time.Timer
	finished    bool
	result      Invocation
	err         error // harness failure, returned by Invoke as its error
	done        chan struct{}
}

// NewRuntimeAPI starts the harness on a loopback port. Close it when done.
func NewRuntimeAPI() (*RuntimeAPI, error) {
	r := &RuntimeAPI{
		closedCh: make(chan struct{}),
		wake:     make(chan struct{}),
		inflight: make(map[string]*rtInvocation),
	}
	o, err := r.newOwner(nil)
	if err != nil {
		return nil, err
	}
	r.Addr = o.addr
	return r, nil
}

// newOwner serves a new loopback address for a runtime.
func (r *RuntimeAPI) newOwner(p *LambdaProcess) (*rtOwner, error) {
	o := &rtOwner{api: r, proc: p, firstNext: make(chan struct{})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("lambda runtime API: listen on 127.0.0.1:0: %w", err)
	}
	o.addr = l.Addr().String()
	o.srv = &loopbackServer{
		url: "http://" + o.addr,
		srv: &http.Server{Handler: http.HandlerFunc(o.serveHTTP), ReadHeaderTimeout: 10 * time.Second},
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		l.Close()
		return nil, ErrRuntimeAPIClosed
	}
	r.owners = append(r.owners, o)
	r.mu.Unlock()
	go func() { _ = o.srv.srv.Serve(l) }()
	return o, nil
}

// Close stops serving every address. Invocations still waiting fail with
// ErrRuntimeAPIClosed. Processes are not stopped: Stop them (a runtime whose `next`
// fails exits by itself). Close is safe to call more than once.
func (r *RuntimeAPI) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.closedCh)
	for _, inv := range r.queue {
		r.finishLocked(inv, Invocation{RequestID: inv.id}, ErrRuntimeAPIClosed)
	}
	r.queue = nil
	for _, inv := range r.inflight {
		r.finishLocked(inv, inv.partialResult(), ErrRuntimeAPIClosed)
	}
	owners := r.owners
	r.mu.Unlock()
	for _, o := range owners {
		o.srv.close()
	}
}

// InitError returns the most recent init failure a runtime reported to
// /runtime/init/error, or nil.
func (r *RuntimeAPI) InitError() *FunctionError {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.initErr
}

// Invoke queues event for the next runtime that asks for one and waits for its result,
// like a synchronous Lambda Invoke. A function failure is reported in Invocation.Err;
// the error is for the harness (invalid event, ctx done, harness closed). When ctx ends
// before the event is delivered it is withdrawn; after that, the runtime may still
// answer, and the answer is discarded.
func (r *RuntimeAPI) Invoke(ctx context.Context, event []byte) (Invocation, error) {
	return r.invoke(ctx, event, InvokeOptions{}, nil)
}

// InvokeWithOptions is Invoke with a timeout, ARN, trace ID or client context.
func (r *RuntimeAPI) InvokeWithOptions(ctx context.Context, event []byte, opts InvokeOptions) (Invocation, error) {
	return r.invoke(ctx, event, opts, nil)
}

func (r *RuntimeAPI) invoke(ctx context.Context, event []byte, opts InvokeOptions, p *LambdaProcess) (Invocation, error) {
	if len(event) == 0 {
		event = []byte("{}") // what Lambda delivers for an Invoke without payload
	}
	switch {
	case len(event) > lambdaMaxEventBytes:
		return Invocation{}, fmt.Errorf("RequestEntityTooLargeException: Request must be smaller than %d bytes for the InvokeFunction operation", lambdaMaxEventBytes)
	case !json.Valid(event):
		return Invocation{}, errors.New("InvalidRequestContentException: Could not parse request body into json")
	case opts.Timeout < 0:
		return Invocation{}, fmt.Errorf("invalid function timeout %v", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultInvokeTimeout
	}
	inv := &rtInvocation{id: newUUID(), event: bytes.Clone(event), opts: opts, done: make(chan struct{})}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return Invocation{}, ErrRuntimeAPIClosed
	}
	r.queue = append(r.queue, inv)
	close(r.wake)
	r.wake = make(chan struct{})
	r.mu.Unlock()

	var exited <-chan struct{}
	if p != nil {
		exited = p.done
	}
	for {
		select {
		case <-inv.done:
			return inv.result, inv.err
		case <-exited:
			// p died. If the event was delivered to p, processExited has already failed
			// it; if it is still queued, fail it as Lambda fails an invoke whose
			// execution environment does not come up.
			exited = nil
			r.mu.Lock()
			if r.withdrawLocked(inv) {
				r.finishLocked(inv, Invocation{Err: p.failureForLocked(inv.id)}, nil)
			}
			r.mu.Unlock()
		case <-ctx.Done():
			r.mu.Lock()
			finished := inv.finished
			if !finished {
				r.withdrawLocked(inv)
			}
			res := inv.partialResult()
			r.mu.Unlock()
			if finished {
				return inv.result, inv.err
			}
			return res, fmt.Errorf("invocation %s: %w", inv.id, ctx.Err())
		}
	}
}

// withdrawLocked removes inv from the queue, reporting whether it was still queued.
func (r *RuntimeAPI) withdrawLocked(inv *rtInvocation) bool {
	for i, q := range r.queue {
		if q == inv {
			r.queue = append(r.queue[:i], r.queue[i+1:]...)
			return true
		}
	}
	return false
}

func (inv *rtInvocation) partialResult() Invocation {
	return Invocation{RequestID: inv.id, Deadline: inv.deadline}
}

// finishLocked completes inv once, reporting whether this call did.
func (r *RuntimeAPI) finishLocked(inv *rtInvocation, res Invocation, err error) bool {
	if inv.finished {
		return false
	}
	inv.finished = true
	delete(r.inflight, inv.id)
	if inv.timer != nil {
		inv.timer.Stop()
	}
	res.RequestID, res.Deadline = inv.id, inv.deadline
	if !inv.deliveredAt.IsZero() {
		res.Duration = time.Since(inv.deliveredAt)
	}
	inv.result, inv.err = res, err
	close(inv.done)
	return true
}

// timedOut is Lambda's timeout: the invocation fails and the environment is reset.
func (r *RuntimeAPI) timedOut(inv *rtInvocation) {
	fe := platformError("Sandbox.Timedout", fmt.Sprintf("RequestId: %s Error: Task timed out after %.2f seconds", inv.id, inv.opts.Timeout.Seconds()))
	r.mu.Lock()
	ok := r.finishLocked(inv, Invocation{Err: fe}, nil)
	owner := inv.owner
	r.mu.Unlock()
	if ok && owner != nil && owner.proc != nil {
		owner.proc.kill()
	}
}

// processExited fails the invocations delivered to o's process and not answered.
func (r *RuntimeAPI) processExited(o *rtOwner) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o.exited = true
	for _, inv := range r.inflight {
		if inv.owner == o {
			r.finishLocked(inv, Invocation{Err: o.proc.failureForLocked(inv.id)}, nil)
		}
	}
}

func platformError(typ, msg string) *FunctionError {
	raw, _ := json.Marshal(map[string]string{"errorType": typ, "errorMessage": msg})
	return &FunctionError{Type: typ, Message: msg, Raw: raw}
}

// parseFunctionError reads an error body as posted by a runtime. The body's errorType
// wins over the Lambda-Runtime-Function-Error-Type header, as the body is what the
// caller of Invoke receives.
func parseFunctionError(body []byte, headerType string) *FunctionError {
	fe := &FunctionError{Type: headerType, Raw: body}
	var m struct {
		Type    string `json:"errorType"`
		Message string `json:"errorMessage"`
	}
	if json.Unmarshal(body, &m) == nil {
		if m.Type != "" {
			fe.Type = m.Type
		}
		fe.Message = m.Message
	}
	if fe.Type == "" {
		fe.Type = "Unhandled"
	}
	return fe
}

// serveHTTP routes the Runtime API. Wrong methods get 404 like unknown paths.
func (o *rtOwner) serveHTTP(w http.ResponseWriter, req *http.Request) {
	at := time.Now() // first thing: the end of a cold start
	rest, ok := strings.CutPrefix(req.URL.Path, runtimeAPIPrefix)
	if !ok {
		http.NotFound(w, req)
		return
	}
	parts := strings.Split(rest, "/")
	switch {
	case rest == "invocation/next" && req.Method == http.MethodGet:
		o.next(w, req, at)
	case rest == "init/error" && req.Method == http.MethodPost:
		o.initError(w, req)
	case len(parts) == 3 && parts[0] == "invocation" && parts[1] != "" &&
		(parts[2] == "response" || parts[2] == "error") && req.Method == http.MethodPost:
		o.result(w, req, parts[1], parts[2] == "error")
	default:
		http.NotFound(w, req)
	}
}

func (o *rtOwner) next(w http.ResponseWriter, req *http.Request, at time.Time) {
	r := o.api
	r.mu.Lock()
	if o.firstNextAt.IsZero() {
		o.firstNextAt = at
		close(o.firstNext)
	}
	r.mu.Unlock()
	for {
		r.mu.Lock()
		if r.closed || o.exited {
			r.mu.Unlock()
			writeRuntimeError(w, http.StatusInternalServerError, "InternalServerError", "Internal Server Error")
			return
		}
		if req.Context().Err() != nil { // the runtime hung up
			r.mu.Unlock()
			return
		}
		if len(r.queue) > 0 {
			inv := r.queue[0]
			r.queue = r.queue[1:]
			r.deliverLocked(inv, o)
			r.mu.Unlock()
			o.writeEvent(w, inv)
			return
		}
		wake := r.wake
		r.mu.Unlock()
		select {
		case <-wake:
		case <-req.Context().Done():
			return
		case <-r.closedCh:
		}
	}
}

func (r *RuntimeAPI) deliverLocked(inv *rtInvocation, o *rtOwner) {
	inv.owner = o
	inv.deliveredAt = time.Now()
	inv.deadline = time.UnixMilli(inv.deliveredAt.Add(inv.opts.Timeout).UnixMilli())
	if inv.opts.FunctionARN == "" {
		inv.opts.FunctionARN = o.functionARN()
	}
	if inv.opts.TraceID == "" {
		inv.opts.TraceID = newTraceID(inv.deliveredAt)
	}
	r.inflight[inv.id] = inv
	inv.timer = time.AfterFunc(time.Until(inv.deadline), func() { r.timedOut(inv) })
}

func (o *rtOwner) writeEvent(w http.ResponseWriter, inv *rtInvocation) {
	h := w.Header()
	h.Set(hdrRequestID, inv.id)
	h.Set(hdrDeadlineMs, strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set(hdrFunctionARN, inv.opts.FunctionARN)
	h.Set(hdrTraceID, inv.opts.TraceID)
	if inv.opts.ClientContext != "" {
		h.Set(hdrClientContext, inv.opts.ClientContext)
	}
	if inv.opts.CognitoIdentity != "" {
		h.Set(hdrCognitoIdentity, inv.opts.CognitoIdentity)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(inv.event)))
	w.WriteHeader(http.StatusOK)
	// A failed write means the runtime is gone; when it is a process of ours its exit
	// fails the invocation, otherwise the invocation's timeout or the caller's ctx does.
	_, _ = w.Write(inv.event)
}

func (o *rtOwner) functionARN() string {
	region, name := lambdaDefaultRegion, LambdaTestFunctionName
	if o.proc != nil {
		region, name = o.proc.region, o.proc.functionName
	}
	return "arn:aws:lambda:" + region + ":" + LambdaTestAccount + ":function:" + name
}

// result serves POST .../{id}/response and .../{id}/error.
func (o *rtOwner) result(w http.ResponseWriter, req *http.Request, id string, isError bool) {
	r := o.api
	r.mu.Lock()
	inv := r.inflight[id]
	r.mu.Unlock()
	if inv == nil || inv.owner != o {
		writeRuntimeError(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID")
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, lambdaMaxResponseBytes+1))
	if err != nil {
		writeRuntimeError(w, http.StatusBadRequest, "TruncatedHTTPRequest", "HTTP request detected as truncated")
		return
	}
	var res Invocation
	status := http.StatusAccepted
	switch {
	case len(body) > lambdaMaxResponseBytes:
		res.Err = platformError("Function.ResponseSizeTooLarge",
			fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", lambdaMaxResponseBytes))
		status = http.StatusRequestEntityTooLarge
	case isError:
		res.Err = parseFunctionError(body, req.Header.Get(hdrErrorType))
	case req.Trailer.Get(hdrErrorType) != "":
		// The runtime failed while streaming its response and said so in trailers.
		raw, _ := base64.StdEncoding.DecodeString(req.Trailer.Get(hdrErrorBody))
		res.Err = parseFunctionError(raw, req.Trailer.Get(hdrErrorType))
	default:
		res.Response, res.ContentType = body, req.Header.Get("Content-Type")
	}
	r.mu.Lock()
	ok := r.finishLocked(inv, res, nil)
	r.mu.Unlock()
	switch {
	case !ok: // answered concurrently, or timed out meanwhile
		writeRuntimeError(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID")
	case status == http.StatusRequestEntityTooLarge:
		writeRuntimeError(w, status, "RequestEntityTooLarge",
			fmt.Sprintf("Exceeded maximum allowed payload size (%d bytes).", lambdaMaxResponseBytes))
	default:
		writeRuntimeJSON(w, http.StatusAccepted, map[string]string{"status": "OK"})
	}
}

func (o *rtOwner) initError(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, lambdaMaxResponseBytes))
	fe := parseFunctionError(body, req.Header.Get(hdrErrorType))
	r := o.api
	r.mu.Lock()
	from := ""
	switch {
	case o.initErr != nil:
		from = "InitError"
	case !o.firstNextAt.IsZero():
		from = "Ready"
	default:
		o.initErr, r.initErr = fe, fe
	}
	r.mu.Unlock()
	if from != "" {
		writeRuntimeError(w, http.StatusForbidden, "InvalidStateTransition",
			fmt.Sprintf("State transition from %s to InitError failed for runtime. Error: State transition is not allowed", from))
		return
	}
	writeRuntimeJSON(w, http.StatusAccepted, map[string]string{"status": "OK"})
}

func writeRuntimeError(w http.ResponseWriter, status int, typ, msg string) {
	writeRuntimeJSON(w, status, map[string]string{"errorMessage": msg, "errorType": typ})
}

func writeRuntimeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// newTraceID returns an X-Ray trace header of the shape Lambda sends.
func newTraceID(t time.Time) string {
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", t.Unix(), randomHex(12), randomHex(8))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
