// Package guard runs the judgement for a set of instances in one account-region:
// inventory, then only the evidence the rules still need, then the verdict. The CLI and
// the detect Lambda share it, so both decide exactly alike.
package guard

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// Clients are the AWS clients for one account-region.
type Clients struct {
	EC2        evidence.EC2API
	CloudWatch evidence.CloudWatchAPI
	CloudTrail evidence.CloudTrailAPI
	// LookupLimiter paces CloudTrail LookupEvents for the account-region; see
	// evidence.NewLookupLimiter.
	LookupLimiter *rate.Limiter
}

// Assessment is one instance's evidence and verdict.
type Assessment struct {
	AccountID string
	Region    string
	Evidence  policy.Evidence
	Verdict   policy.Verdict
}

// Progress is told how many instances have a final verdict so far, out of how many.
type Progress func(done, total int)

// lookupWorkers overlap CloudTrail round trips; the limiter, not the worker count, sets
// the pace.
const lookupWorkers = 4

// Assess judges the instances of one region: all of them when ids is empty, else the
// given ones (an id EC2 does not know is skipped as not found). It fails only when the
// inventory of a whole-region sweep cannot be read; any other failure defers the
// instances it touches, with the error in the reason.
func Assess(ctx context.Context, c Clients, region string, ids []string, s policy.Settings, now time.Time, progress Progress) ([]Assessment, error) {
	if progress == nil {
		progress = func(int, int) {}
	}
	instances, notFound, err := evidence.Inventory(ctx, c.EC2, region, ids)
	evs := make([]policy.Evidence, 0, len(instances)+len(notFound))
	switch {
	case err != nil && len(ids) == 0:
		return nil, err
	case err != nil:
		// Each id once, as the inventory itself reports them.
		seen := make(map[string]bool, len(ids))
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				evs = append(evs, policy.Evidence{InstanceID: id, InventoryErr: err})
			}
		}
	default:
		for i := range instances {
			evs = append(evs, policy.Evidence{InstanceID: instances[i].InstanceID, Instance: &instances[i]})
		}
		for _, id := range notFound {
			evs = append(evs, policy.Evidence{InstanceID: id})
		}
	}
	return Judge(ctx, c, region, evs, s, now, progress), nil
}

// Judge completes the evidence (each part only where the rules still need it) and
// decides. Use it when the inventory is already at hand; Assess reads it first.
func Judge(ctx context.Context, c Clients, region string, evs []policy.Evidence, s policy.Settings, now time.Time, progress Progress) []Assessment {
	if progress == nil {
		progress = func(int, int) {}
	}
	total := len(evs)

	needMetrics := pending(evs, s, now, policy.NeedMetrics)
	progress(total-len(needMetrics), total)
	if len(needMetrics) > 0 {
		ids := make([]string, len(needMetrics))
		for i, n := range needMetrics {
			ids[i] = evs[n].InstanceID
		}
		usage, errs := evidence.MetricUsage(ctx, c.CloudWatch, ids, s.Lookback, now)
		for _, n := range needMetrics {
			id := evs[n].InstanceID
			if err := errs[id]; err != nil {
				evs[n].MetricsErr = err
				continue
			}
			u := usage[id]
			evs[n].Metrics = &u
		}
	}

	needTrail := pending(evs, s, now, policy.NeedCloudTrail)
	done := total - len(needTrail)
	progress(done, total)
	lookUpDeliveries(ctx, c, evs, needTrail, s, now, func() {
		done++
		progress(done, total)
	})

	out := make([]Assessment, len(evs))
	for i, ev := range evs {
		out[i] = Assessment{Evidence: ev, Verdict: policy.Decide(ev, s, now), Region: region}
		if ev.Instance != nil {
			out[i].AccountID = ev.Instance.AccountID
		}
	}
	fillAccount(out)
	return out
}

// pending returns the indexes of the evidence that still needs the given part.
func pending(evs []policy.Evidence, s policy.Settings, now time.Time, need policy.Need) []int {
	var out []int
	for i := range evs {
		if policy.Next(evs[i], s, now) == need {
			out = append(out, i)
		}
	}
	return out
}

func lookUpDeliveries(ctx context.Context, c Clients, evs []policy.Evidence, todo []int, s policy.Settings, now time.Time, finished func()) {
	work := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(lookupWorkers, len(todo)) {
		wg.Go(func() {
			for n := range work {
				usage, err := evidence.CredentialDeliveries(ctx, c.CloudTrail, c.LookupLimiter, *evs[n].Instance, s.Lookback, now)
				mu.Lock()
				evs[n].CloudTrail, evs[n].CloudTrailErr = usage, err
				finished()
				mu.Unlock()
			}
		})
	}
	// A random order: when the time left runs out before every lookup is done (CloudTrail
	// allows 2 a second), the instances left over are deferred, and the next sweep starts
	// with different ones instead of always the same.
	for _, i := range rand.Perm(len(todo)) {
		work <- todo[i]
	}
	close(work)
	wg.Wait()
}

// fillAccount gives instances that were not found the account of those that were, so
// every row of a report names its account.
func fillAccount(out []Assessment) {
	var account string
	for _, a := range out {
		if a.AccountID != "" {
			account = a.AccountID
			break
		}
	}
	for i := range out {
		if out[i].AccountID == "" {
			out[i].AccountID = account
		}
	}
}
