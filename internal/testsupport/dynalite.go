package testsupport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// dynaliteDir is where `make dynalite` installs dynalite, from tools/dynalite's lockfile.
const dynaliteDir = "tools/dynalite/node_modules/.bin"

// dynaliteStartTimeout bounds the wait for a started dynalite to answer; it answers in
// about half a second.
const dynaliteStartTimeout = 30 * time.Second

// Dynalite starts a dynalite (a DynamoDB emulator on Node.js whose conditional writes
// are atomic under concurrency, which moto's are not) on a free loopback port for the
// test, stopped when the test ends, and returns its URL. It is for the tests that need
// DynamoDB's atomicity: the ledger's conditional counter under concurrent writers.
//
// dynalite comes from `make dynalite` (the Makefile's test target runs it), or from the
// PATH. When it is missing the test is skipped with a loud message, unless
// IMDSGUARD_REQUIRE_MOTO=1, which makes every missing emulator a failure.
func Dynalite(t testing.TB) string {
	t.Helper()
	bin, err := dynaliteBinary()
	if err != nil {
		if os.Getenv(RequireMotoEnv) != "1" {
			t.Skipf("SKIPPING DYNALITE INTEGRATION TEST: %v. Install it with `make dynalite`; set %s=1 to make this a failure.", err, RequireMotoEnv)
		}
		t.Fatalf("dynalite: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dynalite: finding a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--host", "127.0.0.1", "--port", fmt.Sprint(port), "--createTableMs", "0", "--deleteTableMs", "0")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("dynalite: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), dynaliteStartTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr); err == nil {
			conn.Close()
			return "http://" + addr
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("dynalite exited during start-up (%v):\n%s", err, out.String())
		case <-ctx.Done():
			t.Fatalf("dynalite not listening on %s after %s:\n%s", addr, dynaliteStartTimeout, out.String())
		case <-tick.C:
		}
	}
}

// dynaliteBinary finds dynalite: the project's own install first, then the PATH.
func dynaliteBinary() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			bin := filepath.Join(dir, dynaliteDir, "dynalite")
			if _, err := os.Stat(bin); err == nil {
				return bin, nil
			}
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if bin, err := exec.LookPath("dynalite"); err == nil {
		return bin, nil
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", errors.New("dynalite needs Node.js, and node is not on the PATH")
	}
	return "", errors.New("dynalite is not installed (neither in " + dynaliteDir + " nor on the PATH)")
}

// lockedBuffer collects a process's output for a failure message.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() < 64<<10 {
		w.b.Write(p)
	}
	return len(p), nil
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
