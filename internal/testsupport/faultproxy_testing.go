package testsupport

import (
	"testing"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
)

// FaultProxyFor starts a FaultProxy in front of upstream for the duration of t: it is
// closed when t ends and, when t has failed, what it injected is logged.
func FaultProxyFor(t testing.TB, upstream string, plan fakeaws.FaultPlan) *fakeaws.FaultProxy {
	t.Helper()
	p := fakeaws.StartFaultProxy(upstream, plan)
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("fault proxy in front of %s:\n%s", upstream, p.Report())
		}
	})
	return p
}
