package lambdaenv

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// TestLazyRetriesAFailedBuild: a build that fails fails only the Get that ran it, with an
// error that wraps the cause and says the next invocation tries again, and is logged;
// the next Get builds again, and once a build has succeeded it is never run again.
func TestLazyRetriesAFailedBuild(t *testing.T) {
	var logs bytes.Buffer
	cause := errors.New("loading the AWS configuration: failed to get shared config profile, p")
	builds := 0
	lazy := NewLazy(slog.New(slog.NewJSONHandler(&logs, nil)), func(context.Context) (string, error) {
		builds++
		if builds == 1 {
			return "", cause
		}
		return "handler", nil
	})

	v, err := lazy.Get(context.Background())
	if !errors.Is(err, cause) || v != "" {
		t.Fatalf("first Get = %q, %v; want the build's error", v, err)
	}
	if !strings.Contains(err.Error(), "the next invocation tries again") || !strings.Contains(err.Error(), cause.Error()) {
		t.Errorf("error %q does not say what failed and that the next invocation tries again", err)
	}
	if !strings.Contains(logs.String(), "failed to get shared config profile") {
		t.Errorf("the failure was not logged: %q", logs.String())
	}
	for range 3 {
		if v, err := lazy.Get(context.Background()); err != nil || v != "handler" {
			t.Fatalf("Get after the failure = %q, %v; want the value of a new build", v, err)
		}
	}
	if builds != 2 {
		t.Errorf("%d builds, want 2: one that failed, then one kept", builds)
	}
}

// TestLazyBuildsOnceForConcurrentGets: Gets at the same time share one build.
func TestLazyBuildsOnceForConcurrentGets(t *testing.T) {
	var mu sync.Mutex
	builds := 0
	lazy := NewLazy(slog.New(slog.NewJSONHandler(&bytes.Buffer{}, nil)), func(context.Context) (*int, error) {
		mu.Lock()
		defer mu.Unlock()
		builds++
		n := builds
		return &n, nil
	})
	const callers = 16
	got := make([]*int, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			v, err := lazy.Get(context.Background())
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	for i, v := range got {
		if v != got[0] {
			t.Fatalf("caller %d got another value than caller 0", i)
		}
	}
	if builds != 1 {
		t.Errorf("%d builds for %d concurrent Gets, want 1", builds, callers)
	}
}
