package fakeaws

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const echoLambdaPkg = "./internal/fakeaws/testdata/echolambda"

// echoAnswer is what testdata/echolambda answers.
type echoAnswer struct {
	RequestID    string          `json:"requestId"`
	Event        json.RawMessage `json:"event"`
	FunctionARN  string          `json:"functionArn"`
	FunctionName string          `json:"functionName"`
	MemoryMB     int             `json:"memoryMB"`
	Region       string          `json:"region"`
	TraceID      string          `json:"traceId"`
	DeadlineMs   int64           `json:"deadlineMs"`
	RemainingMs  int64           `json:"remainingMs"`
	Custom       string          `json:"custom"`
}

func newTestRuntimeAPI(t *testing.T) *RuntimeAPI {
	t.Helper()
	api, err := NewRuntimeAPI()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	return api
}

func startEcho(t *testing.T, ctx context.Context, bin string, api *RuntimeAPI, env map[string]string) *LambdaProcess {
	t.Helper()
	p, err := StartLambda(ctx, bin, api, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop()
		if t.Failed() {
			t.Logf("function logs:\n%s", p.Logs())
		}
	})
	return p
}

// invokeOK invokes and requires a successful answer from the echo function.
func invokeOK(t *testing.T, ctx context.Context, p *LambdaProcess, event string, opts InvokeOptions) (Invocation, echoAnswer) {
	t.Helper()
	inv, err := p.InvokeWithOptions(ctx, []byte(event), opts)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Err != nil {
		t.Fatalf("invoke %s: function error %v (raw %s)", event, inv.Err, inv.Err.Raw)
	}
	var a echoAnswer
	if err := json.Unmarshal(inv.Response, &a); err != nil {
		t.Fatalf("answer %q: %v", inv.Response, err)
	}
	return inv, a
}

func requireFunctionError(t *testing.T, inv Invocation, typ, msgPart string) {
	t.Helper()
	if inv.Err == nil {
		t.Fatalf("invocation %s succeeded with %q; want a %s error", inv.RequestID, inv.Response, typ)
	}
	if inv.Err.Type != typ || !strings.Contains(inv.Err.Message, msgPart) {
		t.Fatalf("error = %s / %q; want %s containing %q", inv.Err.Type, inv.Err.Message, typ, msgPart)
	}
	var raw struct{ ErrorType, ErrorMessage string }
	if err := json.Unmarshal(inv.Err.Raw, &raw); err != nil || raw.ErrorType != typ || raw.ErrorMessage != inv.Err.Message {
		t.Fatalf("raw error payload %s does not match %s: %v", inv.Err.Raw, inv.Err, err)
	}
}

func waitDone(t *testing.T, ctx context.Context, p *LambdaProcess) {
	t.Helper()
	select {
	case <-p.Done():
	case <-ctx.Done():
		t.Fatalf("process still running: %v", ctx.Err())
	}
}

// TestLambdaEchoFunction runs a real aws-lambda-go bootstrap against the harness.
func TestLambdaEchoFunction(t *testing.T) {
	ctx := testContext(t)
	bin, err := BuildLambda(ctx, echoLambdaPkg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("WarmInvocations", func(t *testing.T) {
		t.Parallel()
		api := newTestRuntimeAPI(t)
		p := startEcho(t, ctx, bin, api, map[string]string{"AWS_REGION": "eu-west-1"})

		cold, err := p.ColdStart(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cold <= 0 {
			t.Fatalf("cold start %v; want > 0", cold)
		}
		t.Logf("cold start %v", cold)

		inv1, a1 := invokeOK(t, ctx, p, `{"n":1}`, InvokeOptions{})
		inv2, a2 := invokeOK(t, ctx, p, `{"n":2}`, InvokeOptions{Timeout: time.Minute, ClientContext: `{"custom":{"k":"v"}}`})
		for i, c := range []struct {
			inv   Invocation
			a     echoAnswer
			event string
		}{{inv1, a1, `{"n":1}`}, {inv2, a2, `{"n":2}`}} {
			if c.a.RequestID == "" || c.a.RequestID != c.inv.RequestID {
				t.Errorf("invocation %d: function saw request id %q, harness %q", i+1, c.a.RequestID, c.inv.RequestID)
			}
			if string(c.a.Event) != c.event {
				t.Errorf("invocation %d: echoed %s; want %s", i+1, c.a.Event, c.event)
			}
			// The deadline the function's context carries is the one the harness sent,
			// and it was still ahead when the function ran.
			if c.a.DeadlineMs != c.inv.Deadline.UnixMilli() || c.a.RemainingMs <= 0 {
				t.Errorf("invocation %d: function deadline %d (remaining %dms); harness sent %d",
					i+1, c.a.DeadlineMs, c.a.RemainingMs, c.inv.Deadline.UnixMilli())
			}
			if want := "arn:aws:lambda:eu-west-1:" + LambdaTestAccount + ":function:" + LambdaTestFunctionName; c.a.FunctionARN != want {
				t.Errorf("invocation %d: function ARN %q; want %q", i+1, c.a.FunctionARN, want)
			}
			if c.a.FunctionName != LambdaTestFunctionName || c.a.MemoryMB != 256 || c.a.Region != "eu-west-1" {
				t.Errorf("invocation %d: environment name=%q memory=%d region=%q", i+1, c.a.FunctionName, c.a.MemoryMB, c.a.Region)
			}
			if !strings.HasPrefix(c.a.TraceID, "Root=1-") {
				t.Errorf("invocation %d: trace id %q", i+1, c.a.TraceID)
			}
		}
		if inv1.RequestID == inv2.RequestID {
			t.Errorf("both invocations have request id %s", inv1.RequestID)
		}
		if a1.Custom != "" || a2.Custom != "v" {
			t.Errorf("client context custom k: %q then %q; want \"\" then \"v\"", a1.Custom, a2.Custom)
		}

		failed, err := p.Invoke(ctx, []byte(`{"fail":true}`))
		if err != nil {
			t.Fatal(err)
		}
		requireFunctionError(t, failed, "echoError", "echo: asked to fail")
		if failed.Err.Message != "echo: asked to fail" {
			t.Errorf("error message %q", failed.Err.Message)
		}
		// A function error does not end the execution environment.
		inv4, _ := invokeOK(t, ctx, p, `[4]`, InvokeOptions{})
		select {
		case <-p.Done():
			t.Fatalf("process exited: %v", p.ExitErr())
		default:
		}

		for _, line := range []string{
			"echo: init",
			"echo: request " + inv1.RequestID,
			"echo: request " + inv4.RequestID,
			`"errorType":"echoError"`, // aws-lambda-go logs the error it reports
		} {
			if err := p.WaitForLog(ctx, line); err != nil {
				t.Error(err)
			}
		}

		// The runtime's own address knows only its own in-flight IDs.
		for _, id := range []string{"no-such-request", inv1.RequestID} {
			status, body := rtPost(t, ctx, p.Addr, "invocation/"+id+"/response", nil, "{}")
			requireInvalidRequestID(t, status, body)
		}

		if again, err := p.ColdStart(ctx); err != nil || again != cold {
			t.Errorf("ColdStart again = %v, %v; want %v", again, err, cold)
		}
		if err := p.Stop(); err != nil {
			t.Errorf("Stop of a running process: %v", err)
		}
		if err := p.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}
	})

	t.Run("CrashDuringInvocation", func(t *testing.T) {
		t.Parallel()
		api := newTestRuntimeAPI(t)
		p := startEcho(t, ctx, bin, api, nil)
		inv, err := p.Invoke(ctx, []byte(`{"exit":3}`))
		if err != nil {
			t.Fatal(err)
		}
		requireFunctionError(t, inv, "Runtime.ExitError", "RequestId: "+inv.RequestID+" Error: Runtime exited with error: exit status 3")
		waitDone(t, ctx, p)
		if p.ExitErr() == nil || p.Stop() == nil {
			t.Errorf("ExitErr %v, Stop %v; want the exit status", p.ExitErr(), p.Stop())
		}
	})

	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		api := newTestRuntimeAPI(t)
		p := startEcho(t, ctx, bin, api, nil)
		inv, err := p.InvokeWithOptions(ctx, []byte(`{"hang":true}`), InvokeOptions{Timeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		requireFunctionError(t, inv, "Sandbox.Timedout", "Task timed out after 0.30 seconds")
		// Like Lambda, the harness resets (kills) the environment of a timed-out function.
		waitDone(t, ctx, p)
	})

	t.Run("InitFailure", func(t *testing.T) {
		t.Parallel()
		api := newTestRuntimeAPI(t)
		p := startEcho(t, ctx, bin, api, map[string]string{"ECHO_INIT_EXIT": "2"})
		inv, err := p.Invoke(ctx, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		requireFunctionError(t, inv, "Runtime.ExitError", "exit status 2")
		if _, err := p.ColdStart(ctx); err == nil {
			t.Error("ColdStart of a process that never asked for an event succeeded")
		}
		if err := p.WaitForLog(ctx, "echo: init failed on purpose"); err != nil {
			t.Error(err)
		}
		// The event did not stay queued for another runtime.
		api.mu.Lock()
		n := len(api.queue)
		api.mu.Unlock()
		if n != 0 {
			t.Errorf("%d events still queued", n)
		}
	})

	t.Run("ResponseTooLarge", func(t *testing.T) {
		t.Parallel()
		api := newTestRuntimeAPI(t)
		p := startEcho(t, ctx, bin, api, nil)
		inv, err := p.Invoke(ctx, []byte(`{"big":7000000}`))
		if err != nil {
			t.Fatal(err)
		}
		requireFunctionError(t, inv, "Function.ResponseSizeTooLarge", "(6291556 bytes)")
		// aws-lambda-go treats the 413 as fatal, as it does on Lambda.
		waitDone(t, ctx, p)
		if !strings.Contains(p.Logs(), "413") {
			t.Errorf("logs do not mention the 413:\n%s", p.Logs())
		}
	})

	t.Run("RepeatedColdStarts", func(t *testing.T) {
		t.Parallel()
		api := newTestRuntimeAPI(t)
		for i := range 3 {
			p := startEcho(t, ctx, bin, api, nil)
			d, err := p.ColdStart(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d <= 0 {
				t.Fatalf("start %d: cold start %v", i, d)
			}
			invokeOK(t, ctx, p, fmt.Sprintf(`{"start":%d}`, i), InvokeOptions{})
			if err := p.Stop(); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("MaxConcurrency", func(t *testing.T) {
		t.Parallel()
		api := newTestRuntimeAPI(t)
		p := startEcho(t, ctx, bin, api, map[string]string{"AWS_LAMBDA_MAX_CONCURRENCY": "3"})
		var wg sync.WaitGroup
		ids := make([]string, 6)
		for i := range ids {
			wg.Go(func() {
				inv, err := p.Invoke(ctx, fmt.Appendf(nil, `{"i":%d}`, i))
				if err != nil || inv.Err != nil {
					t.Errorf("invocation %d: %v %v", i, err, inv.Err)
					return
				}
				var a echoAnswer
				if err := json.Unmarshal(inv.Response, &a); err != nil || a.RequestID != inv.RequestID ||
					string(a.Event) != fmt.Sprintf(`{"i":%d}`, i) {
					t.Errorf("invocation %d: answer %s (%v)", i, inv.Response, err)
				}
				ids[i] = inv.RequestID
			})
		}
		wg.Wait()
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Errorf("request id %s used twice", id)
			}
			seen[id] = true
		}
	})
}

func TestLambdaBuildFailureShowsCompilerOutput(t *testing.T) {
	_, err := BuildLambda(testContext(t), "./internal/fakeaws/testdata/no-such-lambda", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no-such-lambda") {
		t.Fatalf("err = %v", err)
	}
}

// TestLambdaRuntimeAPIProtocol drives the harness with a raw HTTP client, checking the
// wire protocol byte for byte where a runtime depends on it.
func TestLambdaRuntimeAPIProtocol(t *testing.T) {
	ctx := testContext(t)
	api := newTestRuntimeAPI(t)

	t.Run("NotFound", func(t *testing.T) {
		for _, c := range []struct{ method, path string }{
			{http.MethodPost, "/2018-06-01/runtime/invocation/next"},
			{http.MethodPut, "/2018-06-01/runtime/invocation/next"},
			{http.MethodGet, "/2018-06-01/runtime/invocation/some-id/response"},
			{http.MethodGet, "/2018-06-01/runtime/init/error"},
			{http.MethodPost, "/2018-06-01/runtime/invocation/some-id/response/"},
			{http.MethodPost, "/2018-06-01/runtime/invocation//response"},
			{http.MethodPost, "/2018-06-01/runtime/invocation/some-id/other"},
			{http.MethodGet, "/2020-01-01/runtime/invocation/next"},
			{http.MethodGet, "/"},
		} {
			status, _ := rtDo(t, ctx, c.method, "http://"+api.Addr+c.path, nil, "")
			if status != http.StatusNotFound {
				t.Errorf("%s %s: HTTP %d; want 404", c.method, c.path, status)
			}
		}
	})

	t.Run("UnknownRequestID", func(t *testing.T) {
		for _, kind := range []string{"response", "error"} {
			status, body := rtPost(t, ctx, api.Addr, "invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/"+kind, nil, `{}`)
			requireInvalidRequestID(t, status, body)
		}
	})

	t.Run("InitError", func(t *testing.T) {
		status, body := rtPost(t, ctx, api.Addr, "init/error",
			http.Header{"Lambda-Runtime-Function-Error-Type": {"Runtime.ConfigError"}},
			`{"errorMessage":"IMDSGUARD_TABLE is not set","errorType":"ConfigError","stackTrace":[]}`)
		requireAccepted(t, status, body)
		fe := api.InitError()
		if fe == nil || fe.Type != "ConfigError" || fe.Message != "IMDSGUARD_TABLE is not set" {
			t.Fatalf("InitError() = %+v", fe)
		}
		status, body = rtPost(t, ctx, api.Addr, "init/error", nil, `{"errorMessage":"again","errorType":"X"}`)
		requireRuntimeError(t, status, body, http.StatusForbidden, "InvalidStateTransition")
	})

	t.Run("NextResponse", func(t *testing.T) {
		event := `{"detail-type":"Scheduled Event","n":1}`
		res := goInvoke(ctx, api, event, InvokeOptions{Timeout: time.Minute, ClientContext: `{"custom":{"k":"v"}}`})
		before := time.Now()
		resp, body := rtNext(t, ctx, api.Addr)
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		deadline, err := strconv.ParseInt(resp.Header.Get("Lambda-Runtime-Deadline-Ms"), 10, 64)
		if err != nil || deadline < before.UnixMilli() || deadline > time.Now().Add(time.Minute).UnixMilli() {
			t.Errorf("deadline header %q (%v); want about a minute ahead", resp.Header.Get("Lambda-Runtime-Deadline-Ms"), err)
		}
		for h, want := range map[string]string{
			"Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:imdsguard-test",
			"Lambda-Runtime-Client-Context":       `{"custom":{"k":"v"}}`,
			"Content-Type":                        "application/json",
		} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("%s = %q; want %q", h, got, want)
			}
		}
		if _, ok := resp.Header["Lambda-Runtime-Cognito-Identity"]; ok {
			t.Error("Lambda-Runtime-Cognito-Identity sent although not set")
		}
		if tr := resp.Header.Get("Lambda-Runtime-Trace-Id"); !strings.HasPrefix(tr, "Root=1-") || !strings.Contains(tr, ";Parent=") {
			t.Errorf("trace id %q", tr)
		}
		if string(body) != event || id == "" {
			t.Fatalf("next: id %q body %s", id, body)
		}

		status, rbody := rtPost(t, ctx, api.Addr, "invocation/"+id+"/response",
			http.Header{"Content-Type": {"application/json"}}, `{"ok":true}`)
		requireAccepted(t, status, rbody)
		r := <-res
		if r.err != nil || r.inv.Err != nil || string(r.inv.Response) != `{"ok":true}` || r.inv.RequestID != id ||
			r.inv.ContentType != "application/json" || r.inv.Deadline.UnixMilli() != deadline {
			t.Fatalf("Invoke = %+v, %v", r.inv, r.err)
		}
		// An answered invocation is no longer in flight.
		status, rbody = rtPost(t, ctx, api.Addr, "invocation/"+id+"/error", nil, `{}`)
		requireInvalidRequestID(t, status, rbody)
	})

	t.Run("ErrorWithHeaderTypeOnly", func(t *testing.T) {
		res := goInvoke(ctx, api, `{}`, InvokeOptions{})
		resp, _ := rtNext(t, ctx, api.Addr)
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		status, body := rtPost(t, ctx, api.Addr, "invocation/"+id+"/error",
			http.Header{"Lambda-Runtime-Function-Error-Type": {"Runtime.Unknown"}}, "not json")
		requireAccepted(t, status, body)
		r := <-res
		if r.err != nil || r.inv.Err == nil || r.inv.Err.Type != "Runtime.Unknown" || string(r.inv.Err.Raw) != "not json" {
			t.Fatalf("Invoke = %+v, %v", r.inv, r.err)
		}
	})

	t.Run("ErrorInResponseTrailers", func(t *testing.T) {
		res := goInvoke(ctx, api, `{}`, InvokeOptions{})
		resp, _ := rtNext(t, ctx, api.Addr)
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		errBody := `{"errorMessage":"read failed","errorType":"readError"}`
		trailer := http.Header{"Lambda-Runtime-Function-Error-Type": nil, "Lambda-Runtime-Function-Error-Body": nil}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost,
			"http://"+api.Addr+"/2018-06-01/runtime/invocation/"+id+"/response",
			&trailerSettingReader{r: strings.NewReader("partial"), trailer: trailer, set: map[string]string{
				"Lambda-Runtime-Function-Error-Type": "readError",
				"Lambda-Runtime-Function-Error-Body": base64.StdEncoding.EncodeToString([]byte(errBody)),
			}})
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1
		req.Trailer = trailer
		hr, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(hr.Body)
		hr.Body.Close()
		requireAccepted(t, hr.StatusCode, b)
		r := <-res
		if r.err != nil || r.inv.Err == nil || r.inv.Err.Type != "readError" || r.inv.Err.Message != "read failed" || r.inv.Response != nil {
			t.Fatalf("Invoke = %+v, %v", r.inv, r.err)
		}
	})

	t.Run("ResponseTooLarge", func(t *testing.T) {
		res := goInvoke(ctx, api, `{}`, InvokeOptions{})
		resp, _ := rtNext(t, ctx, api.Addr)
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		status, body := rtPost(t, ctx, api.Addr, "invocation/"+id+"/response", nil, strings.Repeat("x", 6291557))
		requireRuntimeError(t, status, body, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge")
		r := <-res
		if r.err != nil || r.inv.Err == nil || r.inv.Err.Type != "Function.ResponseSizeTooLarge" {
			t.Fatalf("Invoke = %+v, %v", r.inv, r.err)
		}
	})

	t.Run("LimitIsInclusive", func(t *testing.T) {
		res := goInvoke(ctx, api, `{}`, InvokeOptions{})
		resp, _ := rtNext(t, ctx, api.Addr)
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		status, body := rtPost(t, ctx, api.Addr, "invocation/"+id+"/response", nil, strings.Repeat("x", 6291556))
		requireAccepted(t, status, body)
		if r := <-res; r.err != nil || r.inv.Err != nil || len(r.inv.Response) != 6291556 {
			t.Fatalf("Invoke: %v %v (%d bytes)", r.err, r.inv.Err, len(r.inv.Response))
		}
	})

	t.Run("Timeout", func(t *testing.T) {
		res := goInvoke(ctx, api, `{}`, InvokeOptions{Timeout: 100 * time.Millisecond})
		resp, _ := rtNext(t, ctx, api.Addr)
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		r := <-res // nobody answers: only the harness's timer can end it
		if r.err != nil || r.inv.Err == nil || r.inv.Err.Type != "Sandbox.Timedout" || r.inv.Duration <= 0 {
			t.Fatalf("Invoke = %+v, %v", r.inv, r.err)
		}
		status, body := rtPost(t, ctx, api.Addr, "invocation/"+id+"/response", nil, `{}`)
		requireInvalidRequestID(t, status, body)
	})

	t.Run("CanceledInvocationIsWithdrawn", func(t *testing.T) {
		inv, err := api.Invoke(canceledContext(), []byte(`{"which":"withdrawn"}`))
		if !errors.Is(err, context.Canceled) || inv.RequestID == "" {
			t.Fatalf("Invoke = %+v, %v", inv, err)
		}
		res := goInvoke(ctx, api, `{"which":"kept"}`, InvokeOptions{})
		resp, body := rtNext(t, ctx, api.Addr)
		if string(body) != `{"which":"kept"}` {
			t.Fatalf("next delivered %s", body)
		}
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		status, b := rtPost(t, ctx, api.Addr, "invocation/"+id+"/response", nil, `1`)
		requireAccepted(t, status, b)
		if r := <-res; r.err != nil || string(r.inv.Response) != "1" {
			t.Fatalf("Invoke = %+v, %v", r.inv, r.err)
		}
	})

	t.Run("InvalidEvents", func(t *testing.T) {
		for _, ev := range []string{"{", strings.Repeat(" ", 6<<20+1)} {
			if _, err := api.Invoke(ctx, []byte(ev)); err == nil {
				t.Errorf("Invoke accepted an event of %d bytes starting %.10q", len(ev), ev)
			}
		}
	})

	t.Run("Close", func(t *testing.T) {
		api := newTestRuntimeAPI(t)
		res := goInvoke(ctx, api, `{}`, InvokeOptions{})
		// Wait until the event is queued (a raw next would take it), then close.
		queued(t, ctx, api)
		api.Close()
		if r := <-res; !errors.Is(r.err, ErrRuntimeAPIClosed) {
			t.Fatalf("pending Invoke after Close: %+v, %v", r.inv, r.err)
		}
		if _, err := api.Invoke(ctx, nil); !errors.Is(err, ErrRuntimeAPIClosed) {
			t.Fatalf("Invoke after Close: %v", err)
		}
		api.Close()
	})
}

// queued waits until api has an event waiting for a runtime.
func queued(t *testing.T, ctx context.Context, api *RuntimeAPI) {
	t.Helper()
	for {
		api.mu.Lock()
		n, wake := len(api.queue), api.wake
		api.mu.Unlock()
		if n > 0 {
			return
		}
		select {
		case <-wake:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}

type invokeResult struct {
	inv Invocation
	err error
}

func goInvoke(ctx context.Context, api *RuntimeAPI, event string, opts InvokeOptions) <-chan invokeResult {
	ch := make(chan invokeResult, 1)
	go func() {
		inv, err := api.InvokeWithOptions(ctx, []byte(event), opts)
		ch <- invokeResult{inv, err}
	}()
	return ch
}

func canceledContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func rtDo(t *testing.T, ctx context.Context, method, url string, h http.Header, body string) (int, []byte) {
	t.Helper()
	resp, b := rtDoResp(t, ctx, method, url, h, body)
	return resp.StatusCode, b
}

func rtDoResp(t *testing.T, ctx context.Context, method, url string, h http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func rtNext(t *testing.T, ctx context.Context, addr string) (*http.Response, []byte) {
	t.Helper()
	resp, body := rtDoResp(t, ctx, http.MethodGet, "http://"+addr+"/2018-06-01/runtime/invocation/next", nil, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("next: HTTP %d: %s", resp.StatusCode, body)
	}
	return resp, body
}

func rtPost(t *testing.T, ctx context.Context, addr, path string, h http.Header, body string) (int, []byte) {
	t.Helper()
	return rtDo(t, ctx, http.MethodPost, "http://"+addr+"/2018-06-01/runtime/"+path, h, body)
}

func requireAccepted(t *testing.T, status int, body []byte) {
	t.Helper()
	if status != http.StatusAccepted || !bytes.Equal(bytes.TrimSpace(body), []byte(`{"status":"OK"}`)) {
		t.Fatalf("HTTP %d %s; want 202 {\"status\":\"OK\"}", status, body)
	}
}

func requireInvalidRequestID(t *testing.T, status int, body []byte) {
	t.Helper()
	requireRuntimeError(t, status, body, http.StatusBadRequest, "InvalidRequestID")
	var e map[string]string
	_ = json.Unmarshal(body, &e)
	if e["errorMessage"] != "Invalid request ID" {
		t.Fatalf("errorMessage %q", e["errorMessage"])
	}
}

func requireRuntimeError(t *testing.T, status int, body []byte, wantStatus int, wantType string) {
	t.Helper()
	var e struct {
		ErrorMessage *string `json:"errorMessage"`
		ErrorType    string  `json:"errorType"`
	}
	if status != wantStatus || json.Unmarshal(body, &e) != nil || e.ErrorType != wantType || e.ErrorMessage == nil {
		t.Fatalf("HTTP %d %s; want %d with errorType %s and an errorMessage", status, body, wantStatus, wantType)
	}
}

// trailerSettingReader fills in its request's trailers when its body is exhausted, as
// aws-lambda-go does when a streamed response fails.
type trailerSettingReader struct {
	r       io.Reader
	trailer http.Header
	set     map[string]string
}

func (r *trailerSettingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err == io.EOF {
		for k, v := range r.set {
			r.trailer.Set(k, v)
		}
	}
	return n, err
}
