package testsupport

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
)

// RequireMotoEnv names the environment variable that turns a missing moto_server from a
// skip into a failure. CI sets it so that integration tests can never pass by skipping.
const RequireMotoEnv = "IMDSGUARD_REQUIRE_MOTO"

// shared records which tests hold the test binary's one moto_server
// (fakeaws.SharedMoto).
var shared struct {
	mu    sync.Mutex
	users []string // names of the tests currently holding the shared server
}

// Moto returns the test binary's shared moto_server, started on first use and reset
// before it is returned, so every test starts from an empty emulator.
//
// When moto_server is not installed the test is skipped with a loud message, unless
// IMDSGUARD_REQUIRE_MOTO=1, in which case it fails. Use RunWithMoto in TestMain so that
// the process is stopped when the tests are done.
//
// Because of the reset, tests using Moto must not run in parallel with each other; a test
// that tries (t.Parallel) fails at once instead of flaking. A subtest may call Moto again,
// which resets the server under its parent.
func Moto(t testing.TB) *fakeaws.MotoServer {
	t.Helper()
	srv, err := fakeaws.SharedMoto(context.Background())
	if err != nil {
		if errors.Is(err, fakeaws.ErrMotoMissing) && os.Getenv(RequireMotoEnv) != "1" {
			t.Skipf("SKIPPING MOTO INTEGRATION TEST: %v. Install it with `make moto`; "+
				"set %s=1 to make this a failure.", err, RequireMotoEnv)
		}
		t.Fatalf("moto_server: %v", err)
	}
	claimShared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Reset(ctx); err != nil {
		t.Fatalf("%v", err)
	}
	return srv
}

// claimShared records t as a user of the shared server until it ends, failing t when an
// unrelated test (not an ancestor of t) holds it.
func claimShared(t testing.TB) {
	t.Helper()
	name := t.Name()
	shared.mu.Lock()
	for _, u := range shared.users {
		if u != name && !strings.HasPrefix(name, u+"/") {
			shared.mu.Unlock()
			t.Fatalf("testsupport.Moto: %s uses the shared moto while %s does; tests using moto must not run in parallel", name, u)
		}
	}
	shared.users = append(shared.users, name)
	shared.mu.Unlock()
	t.Cleanup(func() {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		for i, u := range shared.users {
			if u == name {
				shared.users = append(shared.users[:i], shared.users[i+1:]...)
				break
			}
		}
	})
}

// RunWithMoto runs the tests and then stops the shared moto_server if one was started:
//
//	func TestMain(m *testing.M) { os.Exit(testsupport.RunWithMoto(m)) }
func RunWithMoto(m *testing.M) int {
	code := m.Run()
	fakeaws.StopSharedMoto()
	return code
}
