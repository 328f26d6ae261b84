package fakeaws

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// requireMotoEnv is testsupport.RequireMotoEnv; this package's own tests cannot import
// testsupport, which imports it.
const requireMotoEnv = "IMDSGUARD_REQUIRE_MOTO"

// Moto is testsupport.Moto for this package's tests: the shared moto_server, reset; a
// skip without moto_server unless IMDSGUARD_REQUIRE_MOTO=1 makes it a failure.
func Moto(t testing.TB) *MotoServer {
	t.Helper()
	srv, err := SharedMoto(context.Background())
	if err != nil {
		if errors.Is(err, ErrMotoMissing) && os.Getenv(requireMotoEnv) != "1" {
			t.Skipf("SKIPPING MOTO INTEGRATION TEST: %v; set %s=1 to make this a failure.", err, requireMotoEnv)
		}
		t.Fatalf("moto_server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	return srv
}

// RunWithMoto runs the tests, then stops the shared moto_server.
func RunWithMoto(m *testing.M) int {
	code := m.Run()
	StopSharedMoto()
	return code
}

// FaultProxyFor is testsupport.FaultProxyFor for this package's tests.
func FaultProxyFor(t testing.TB, upstream string, plan FaultPlan) *FaultProxy {
	t.Helper()
	p := StartFaultProxy(upstream, plan)
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("fault proxy in front of %s:\n%s", upstream, p.Report())
		}
	})
	return p
}
