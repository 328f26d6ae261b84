package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
)

// buildCLI builds cmd/imdsguard as `make build` does, with extra -ldflags, into a
// temporary directory, and returns the binary's path.
func buildCLI(t *testing.T, ldflags string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := fakeaws.BuildBinary(ctx, "./cmd/imdsguard", filepath.Join(t.TempDir(), "imdsguard"), "-ldflags", ldflags)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// stallingAWS is an AWS endpoint whose every request hangs until the test releases it or
// the client gives up. It reports the Action of each request (EC2 and STS speak the
// query protocol) as the request arrives.
type stallingAWS struct {
	*httptest.Server
	arrived chan string
	release chan struct{}
}

func newStallingAWS(t *testing.T) *stallingAWS {
	s := &stallingAWS{arrived: make(chan string, 64), release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		select {
		case s.arrived <- form.Get("Action"):
		default:
		}
		select {
		case <-s.release:
		case <-r.Context().Done():
		}
		http.Error(w, "released", http.StatusServiceUnavailable)
	}))
	t.Cleanup(func() {
		close(s.release)
		s.Close()
	})
	return s
}

// TestPlanInterrupted runs the real binary, signals it while DescribeInstances is in
// flight, and wants exit 130, nothing on stdout, the previous --output untouched and no
// temporary file left, and one line on stderr.
func TestPlanInterrupted(t *testing.T) {
	bin := buildCLI(t, "")
	for _, tc := range []struct {
		name     string
		signal   os.Signal
		toOutput bool
	}{
		{"SIGINT with --output", os.Interrupt, true},
		{"SIGTERM to stdout", syscall.SIGTERM, false},
		{"SIGINT to stdout", os.Interrupt, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			aws := newStallingAWS(t)
			dir := t.TempDir()
			out := filepath.Join(dir, "plan.json")
			previous := []byte(`{"schema": "imdsguard.plan/v1", "a": "good plan from before"}` + "\n")
			if err := os.WriteFile(out, previous, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"plan", "--region", "eu-west-1", "--format", "json"}
			if tc.toOutput {
				args = append(args, "--output", out)
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = os.Environ()
			for k, v := range demo.AWSEnv(aws.URL, aws.URL, t.TempDir()) {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer func() {
				if cmd.ProcessState == nil {
					_ = cmd.Process.Kill()
					<-exited
				}
			}()

			// Signal only once the plan's first AWS call is being served.
			deadline := time.NewTimer(2 * time.Minute)
			defer deadline.Stop()
		waitForCall:
			for {
				select {
				case action := <-aws.arrived:
					if action == "DescribeInstances" {
						break waitForCall
					}
				case err := <-exited:
					t.Fatalf("imdsguard exited (%v) before calling DescribeInstances; stderr:\n%s", err, &stderr)
				case <-deadline.C:
					t.Fatalf("imdsguard never called DescribeInstances; stderr:\n%s", &stderr)
				}
			}
			if err := cmd.Process.Signal(tc.signal); err != nil {
				t.Fatal(err)
			}
			var err error
			select {
			case err = <-exited:
			case <-deadline.C:
				t.Fatalf("imdsguard did not exit after %v; stderr:\n%s", tc.signal, &stderr)
			}

			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != ExitInterrupted {
				t.Errorf("exit: %v, want code %d", err, ExitInterrupted)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", &stdout)
			}
			if got := stderr.String(); got != "imdsguard: interrupted: no plan was written\n" {
				t.Errorf("stderr = %q, want the one line saying so", got)
			}
			if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, previous) {
				t.Errorf("--output changed: %q, %v", got, err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Name() != "plan.json" {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("files in the --output folder: %s, want plan.json only", strings.Join(names, ", "))
			}
		})
	}
}

// TestVersionLinkTime: a version set with -ldflags -X is what `version` prints.
func TestVersionLinkTime(t *testing.T) {
	bin := buildCLI(t, "-X github.com/imdsguard/imdsguard/internal/cli.version=v9.8.7-test")
	out, err := exec.Command(bin, "version").Output()
	if err != nil || string(out) != "imdsguard v9.8.7-test\n" {
		t.Errorf("version: %q, %v", out, err)
	}
	// Without it, the build info: -trimpath and no VCS stamping here, so the main
	// module's version or "devel".
	plain := buildCLI(t, "")
	out, err = exec.Command(plain, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "imdsguard ") || strings.TrimSpace(string(out)) == "imdsguard" {
		t.Errorf("version without -X: %q, %v", out, err)
	}
}

// TestMainInterrupted is TestPlanInterrupted in process (under the race detector): the
// context ends while DescribeInstances is in flight.
func TestMainInterrupted(t *testing.T) {
	aws := newStallingAWS(t)
	for k, v := range demo.AWSEnv(aws.URL, aws.URL, t.TempDir()) {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for action := range aws.arrived {
			if action == "DescribeInstances" {
				cancel()
				return
			}
		}
	}()
	var stdout, stderr bytes.Buffer
	code := Main(ctx, []string{"plan", "--region", "eu-west-1", "--format", "json"}, Env{
		Stdout: &stdout, Stderr: &stderr, LookupEnv: os.LookupEnv, Now: time.Now,
	})
	if code != ExitInterrupted || stdout.Len() != 0 || stderr.String() != "imdsguard: interrupted: no plan was written\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, &stdout, &stderr)
	}
}
