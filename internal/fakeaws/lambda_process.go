package fakeaws

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// LambdaProcess is a bootstrap binary running against a RuntimeAPI.
type LambdaProcess struct {
	// Started is the time taken immediately before the process was started.
	Started time.Time
	// Addr is the AWS_LAMBDA_RUNTIME_API address the process was given.
	Addr string

	api          *RuntimeAPI
	owner        *rtOwner
	cmd          *exec.Cmd
	logs         *lambdaLog
	region       string
	functionName string

	done      chan struct{} // closed once the process has been waited for
	exitErr   error         // read only after done is closed
	stopOnce  sync.Once
	stopErr   error
	stopWatch func() bool // stops the ctx watcher
}

// StartLambda runs the bootstrap binary as Lambda runs it: working directory and
// LAMBDA_TASK_ROOT the binary's directory, and a clean environment holding only env plus,
// unless env sets them, AWS_LAMBDA_FUNCTION_NAME (LambdaTestFunctionName),
// AWS_LAMBDA_FUNCTION_MEMORY_SIZE (256), AWS_LAMBDA_FUNCTION_VERSION ($LATEST),
// AWS_LAMBDA_LOG_GROUP_NAME, AWS_LAMBDA_LOG_STREAM_NAME, AWS_LAMBDA_INITIALIZATION_TYPE,
// AWS_REGION and AWS_DEFAULT_REGION (us-east-1), _HANDLER=bootstrap, TZ=:UTC, LANG,
// PATH (the caller's), and the static credentials "testing"/"testing" when env has no
// access key, so that a developer's real credentials never reach a test function.
// AWS_LAMBDA_RUNTIME_API is always set, to an address of api reserved for this process.
//
// The process's stdout and stderr (its logs) are captured: see Logs and WaitForLog. It
// runs until Stop, until it exits by itself, until the harness times one of its
// invocations out, or until ctx is done, whichever comes first.
func StartLambda(ctx context.Context, bootstrap string, api *RuntimeAPI, env map[string]string) (*LambdaProcess, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path, err := filepath.Abs(bootstrap)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("lambda bootstrap: %w", err)
	} else if fi.IsDir() {
		return nil, fmt.Errorf("lambda bootstrap %s is a directory", path)
	}
	p := &LambdaProcess{api: api, logs: newLambdaLog(), done: make(chan struct{})}
	o, err := api.newOwner(p)
	if err != nil {
		return nil, err
	}
	p.owner, p.Addr = o, o.addr

	vars := lambdaEnv(env, filepath.Dir(path), o.addr)
	p.region, p.functionName = vars["AWS_REGION"], vars["AWS_LAMBDA_FUNCTION_NAME"]
	cmd := exec.Command(path) // not CommandContext: the process group is killed instead
	cmd.Dir = filepath.Dir(path)
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		cmd.Env = append(cmd.Env, k+"="+vars[k])
	}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	cmd.WaitDelay = lambdaWaitDelay
	setProcessGroup(cmd)
	p.cmd = cmd

	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		o.srv.close()
		api.processExited(o)
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	p.stopWatch = context.AfterFunc(ctx, p.kill)
	go func() {
		err := cmd.Wait()
		p.exitErr = err
		api.processExited(o)
		p.stopWatch()
		close(p.done)
		o.srv.close()
	}()
	return p, nil
}

// lambdaEnv builds the environment of a function process.
func lambdaEnv(env map[string]string, taskRoot, runtimeAPI string) map[string]string {
	vars := make(map[string]string, len(env)+16)
	for k, v := range env {
		vars[k] = v
	}
	def := func(k, v string) {
		if _, ok := vars[k]; !ok {
			vars[k] = v
		}
	}
	def("AWS_LAMBDA_FUNCTION_NAME", LambdaTestFunctionName)
	def("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", lambdaDefaultMemory)
	def("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
	def("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/"+vars["AWS_LAMBDA_FUNCTION_NAME"])
	def("AWS_LAMBDA_LOG_STREAM_NAME", time.Now().UTC().Format("2006/01/02")+"/["+vars["AWS_LAMBDA_FUNCTION_VERSION"]+"]"+randomHex(16))
	def("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
	if r, ok := vars["AWS_REGION"]; ok {
		def("AWS_DEFAULT_REGION", r)
	} else if r, ok := vars["AWS_DEFAULT_REGION"]; ok {
		vars["AWS_REGION"] = r
	} else {
		vars["AWS_REGION"], vars["AWS_DEFAULT_REGION"] = lambdaDefaultRegion, lambdaDefaultRegion
	}
	_, hasKey := vars["AWS_ACCESS_KEY_ID"]
	_, hasSecret := vars["AWS_SECRET_ACCESS_KEY"]
	if !hasKey && !hasSecret {
		vars["AWS_ACCESS_KEY_ID"], vars["AWS_SECRET_ACCESS_KEY"], vars["AWS_SESSION_TOKEN"] = "testing", "testing", "testing"
	}
	def("_HANDLER", "bootstrap")
	def("LAMBDA_TASK_ROOT", taskRoot)
	def("TZ", ":UTC")
	def("LANG", "en_US.UTF-8")
	def("PATH", os.Getenv("PATH"))
	vars["AWS_LAMBDA_RUNTIME_API"] = runtimeAPI
	return vars
}

// Invoke is RuntimeAPI.Invoke that also gives up when this process exits before the
// event was delivered: the result is then the init failure the process reported, or
// Runtime.ExitError, as on Lambda when an execution environment fails to start.
func (p *LambdaProcess) Invoke(ctx context.Context, event []byte) (Invocation, error) {
	return p.api.invoke(ctx, event, InvokeOptions{}, p)
}

// InvokeWithOptions is Invoke with options.
func (p *LambdaProcess) InvokeWithOptions(ctx context.Context, event []byte, opts InvokeOptions) (Invocation, error) {
	return p.api.invoke(ctx, event, opts, p)
}

// failureForLocked is the error of an invocation lost because the process exited: the
// init error it reported, else Runtime.ExitError. The caller holds api.mu, and either is
// the exit goroutine or has seen done closed, so exitErr is set.
func (p *LambdaProcess) failureForLocked(id string) *FunctionError {
	if p.owner.initErr != nil {
		return p.owner.initErr
	}
	reason := "Runtime exited without providing a reason"
	if p.exitErr != nil {
		reason = "Runtime exited with error: " + p.exitErr.Error()
	}
	return platformError("Runtime.ExitError", "RequestId: "+id+" Error: "+reason)
}

// ColdStart waits (bounded by ctx) for the process's first `next` and returns the time
// from Started to its arrival at the harness: Lambda's cold start as DESIGN section 6
// measures it. It fails if the process exits first.
func (p *LambdaProcess) ColdStart(ctx context.Context) (time.Duration, error) {
	select {
	case <-p.owner.firstNext:
	case <-p.done:
		select {
		case <-p.owner.firstNext: // asked, then exited
		default:
			return 0, fmt.Errorf("lambda process exited before its first next (%v); logs:\n%s", p.exitErr, p.Logs())
		}
	case <-ctx.Done():
		return 0, fmt.Errorf("waiting for the first next: %w; logs:\n%s", ctx.Err(), p.Logs())
	}
	p.api.mu.Lock()
	defer p.api.mu.Unlock()
	return p.owner.firstNextAt.Sub(p.Started), nil
}

// InitError returns what this process posted to /runtime/init/error, or nil.
func (p *LambdaProcess) InitError() *FunctionError {
	p.api.mu.Lock()
	defer p.api.mu.Unlock()
	return p.owner.initErr
}

// Logs returns everything the process wrote to stdout and stderr so far. Output reaches
// the harness through a pipe, so a line written just before a response may not be in
// Logs yet when Invoke returns: use WaitForLog for that, or read Logs after Stop.
func (p *LambdaProcess) Logs() string { return p.logs.String() }

// WaitForLog waits until the logs contain substr. It fails when ctx is done or when the
// process has exited without writing it.
func (p *LambdaProcess) WaitForLog(ctx context.Context, substr string) error {
	for {
		changed, found := p.logs.contains(substr)
		if found {
			return nil
		}
		select {
		case <-changed:
		case <-p.done:
			// Wait has returned, so all output has been copied.
			if _, found := p.logs.contains(substr); found {
				return nil
			}
			return fmt.Errorf("lambda process exited (%v) without logging %q; logs:\n%s", p.exitErr, substr, p.Logs())
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q in the logs: %w; logs:\n%s", substr, ctx.Err(), p.Logs())
		}
	}
}

// Done is closed when the process has exited and been waited for.
func (p *LambdaProcess) Done() <-chan struct{} { return p.done }

// ExitErr is how the process ended (nil for exit status 0); nil while it runs.
func (p *LambdaProcess) ExitErr() error {
	select {
	case <-p.done:
		return p.exitErr
	default:
		return nil
	}
}

// Stop kills the process group (Lambda sends SIGKILL to a runtime without extensions)
// and waits for it. It returns nil when the process was still running, else how it had
// ended (ExitErr). It is safe to call more than once.
func (p *LambdaProcess) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			p.stopErr = p.exitErr
			return
		default:
		}
		p.kill()
		<-p.done
	})
	return p.stopErr
}

func (p *LambdaProcess) kill() {
	select {
	case <-p.done:
	default:
		signalGroup(p.cmd, true)
	}
}

// lambdaLog captures a process's output; waiters learn of new output through changed.
type lambdaLog struct {
	mu      sync.Mutex
	buf     []byte
	dropped bool
	changed chan struct{}
}

func newLambdaLog() *lambdaLog { return &lambdaLog{changed: make(chan struct{})} }

func (l *lambdaLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	if len(l.buf) > lambdaLogLimit {
		l.buf = append([]byte(nil), l.buf[len(l.buf)-lambdaLogLimit/2:]...)
		l.dropped = true
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return len(b), nil
}

func (l *lambdaLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped {
		return "[... earlier output dropped ...]\n" + string(l.buf)
	}
	return string(l.buf)
}

// contains reports whether substr has been written, and a channel closed on new output.
func (l *lambdaLog) contains(substr string) (<-chan struct{}, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed, bytes.Contains(l.buf, []byte(substr))
}
