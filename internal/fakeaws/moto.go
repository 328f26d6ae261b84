package fakeaws

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/imdsguard/imdsguard/internal/awsapi"
)

// ErrMotoMissing is returned by StartMoto when moto_server is not on PATH
// (install it with `pip install "moto[server]"`).
var ErrMotoMissing = errors.New("moto_server not found on PATH")

const (
	motoBinary = "moto_server"
	// motoStartTimeout bounds the wait for readiness when ctx has no earlier deadline.
	// A cold moto_server answers in about a second; the margin is for loaded CI machines.
	motoStartTimeout = 60 * time.Second
	// motoStopGrace is how long Stop waits after SIGTERM before it sends SIGKILL.
	motoStopGrace = 5 * time.Second
	// motoPortAttempts: the free port is found by binding and closing, so another
	// process may take it before moto binds; such a start fails fast and is retried.
	motoPortAttempts = 3
)

// MotoServer is a running moto_server process on a loopback port. Every service moto
// emulates is served at URL, through the EC2 stand-in (EC2DryRun), so that EC2 answers as
// it does in AWS where moto does not: dry runs, the instance metadata defaults, the AMIs'
// ImdsSupport. DirectURL is moto itself.
type MotoServer struct {
	URL, DirectURL string

	front *EC2DryRun

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been waited for
	err    error         // the Wait error; read only after exited is closed
	out    *tailWriter
	once   sync.Once
}

// StartMoto starts `moto_server -H 127.0.0.1 -p <free port>` in its own process group
// and returns once it answers GET /moto-api/. ctx bounds only the start-up wait; the
// process runs until Stop.
func StartMoto(ctx context.Context) (*MotoServer, error) {
	bin, err := exec.LookPath(motoBinary)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMotoMissing, err)
	}
	var lastErr error
	for range motoPortAttempts {
		port, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		m, err := startMotoOn(ctx, bin, port)
		if err == nil {
			return m, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func startMotoOn(ctx context.Context, bin string, port int) (*MotoServer, error) {
	// exec.Command, not CommandContext: the server must outlive the start-up context.
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	// Unbuffered output so that a failed start shows moto's own error message.
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	out := &tailWriter{max: 40}
	cmd.Stdout, cmd.Stderr = out, out
	// moto_server is often a pyenv or venv wrapper around python: a process group lets
	// Stop reach the real server process too.
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	m := &MotoServer{
		DirectURL: fmt.Sprintf("http://127.0.0.1:%d", port),
		cmd:       cmd,
		exited:    make(chan struct{}),
		out:       out,
	}
	go func() {
		m.err = cmd.Wait()
		close(m.exited)
	}()
	if err := m.waitReady(ctx); err != nil {
		m.Stop()
		return nil, err
	}
	front, err := NewEC2DryRun(m.DirectURL)
	if err != nil {
		m.Stop()
		return nil, err
	}
	m.front, m.URL = front, front.URL
	return m, nil
}

// EC2 is the EC2 stand-in in front of moto: its metadata defaults and AMI ImdsSupport
// can be set, and its dry runs counted.
func (m *MotoServer) EC2() *EC2DryRun { return m.front }

// waitReady polls GET /moto-api/ on a ticker until it answers 200, the process exits,
// or the deadline passes.
func (m *MotoServer) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, motoStartTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if m.ping(ctx, client) {
			return nil
		}
		select {
		case <-m.exited:
			return fmt.Errorf("moto_server exited during start-up (%v); output:\n%s", m.err, m.out.String())
		case <-ctx.Done():
			return fmt.Errorf("moto_server not ready at %s: %w; output:\n%s", m.DirectURL, ctx.Err(), m.out.String())
		case <-tick.C:
		}
	}
}

func (m *MotoServer) ping(ctx context.Context, client *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.DirectURL+"/moto-api/", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Reset drops all state in every emulated service (POST /moto-api/reset), and in the EC2
// stand-in.
func (m *MotoServer) Reset(ctx context.Context) error {
	if m.front != nil {
		m.front.reset()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.DirectURL+"/moto-api/reset", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("moto reset: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("moto reset: HTTP %d: %s", resp.StatusCode, body)
	}
	return nil
}

// Stop terminates the process group (SIGTERM, then SIGKILL after a grace period) and
// waits for the process. It is safe to call more than once.
func (m *MotoServer) Stop() {
	m.once.Do(func() {
		if m.front != nil {
			m.front.Close()
		}
		signalGroup(m.cmd, false)
		select {
		case <-m.exited:
		case <-time.After(motoStopGrace):
			signalGroup(m.cmd, true)
			<-m.exited
		}
	})
}

// Output returns the last lines moto_server printed (its request log), for diagnostics.
func (m *MotoServer) Output() string { return m.out.String() }

// freeLoopbackPort asks the kernel for a free port on 127.0.0.1 and releases it.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailWriter keeps the last max lines written to it. moto logs every request, so its
// output must be drained continuously or the server would block on a full pipe.
type tailWriter struct {
	mu      sync.Mutex
	max     int
	lines   []string
	partial string
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := bufio.NewScanner(strings.NewReader(w.partial + string(p)))
	w.partial = ""
	complete := len(p) > 0 && p[len(p)-1] == '\n'
	var got []string
	for s.Scan() {
		got = append(got, s.Text())
	}
	if !complete && len(got) > 0 {
		w.partial = got[len(got)-1]
		got = got[:len(got)-1]
	}
	w.lines = append(w.lines, got...)
	if len(w.lines) > w.max {
		w.lines = append([]string(nil), w.lines[len(w.lines)-w.max:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(append(append([]string(nil), w.lines...), w.partial), "\n")
}

// AWSConfig returns an SDK configuration for talking to moto or to the stand-ins:
// static credentials ("testing"/"testing", which moto accepts), the region, and the
// SDK's standard retryer. Nothing is read from the environment or ~/.aws, so a
// developer's real credentials can never be used by a test.
//
// The configuration carries no endpoint: point each client at its double with
//
//	ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(url) })
//
// (or set cfg.BaseEndpoint when every client talks to the same moto).
//
// The retryer is the standard one (same retryable and throttling codes, 3 attempts) with
// two changes for local servers: backoff is capped at 200ms so throttling tests stay fast,
// and the client-side retry token bucket is off so that a test injecting many faults does
// not exhaust it and see a QuotaExceeded error no real service would cause.
func AWSConfig(region string) aws.Config {
	return aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxBackoff = 200 * time.Millisecond
				o.RateLimiter = ratelimit.None
				awsapi.RetryMalformedReplies(o)
			})
		},
	}
}
