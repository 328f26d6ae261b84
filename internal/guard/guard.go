// Package guard runs the judgement for a set of instances in one account-region:
// inventory, then only the evidence the rules still need, then the verdict. The CLI and
// the detect Lambda share it, so both decide exactly alike.
package guard

import (
	"context"
	"errors"
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
	// Trail, when set, gives the CloudTrail evidence instead of LookupEvents: the
	// organization trail's query (evidence.TrailResults).
	Trail TrailEvidence
}

// TrailEvidence is a source of CloudTrail evidence other than LookupEvents.
type TrailEvidence interface {
	Deliveries(ctx context.Context, inst policy.Instance, lookback time.Duration, now time.Time) (*policy.CloudTrailUsage, error)
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
// the pace. There are enough that the workers do not set it either where the quota is
// raised (--cloudtrail-rps): 16 round trips of 200 ms in flight make 80 a second. While
// the metric batches are decoded, a worker also waits for the CPU, and more of them
// keep the limiter's pace then too.
const lookupWorkers = 16

// Assess judges the instances of one region: all of them when ids is empty, else the
// given ones (an id EC2 does not know is skipped as not found). It fails only when the
// inventory of a whole-region sweep cannot be read; any other failure defers the
// instances it touches, with the error in the reason.
func Assess(ctx context.Context, c Clients, region string, ids []string, s policy.Settings, now time.Time, progress Progress) ([]Assessment, error) {
	return AssessKnowing(ctx, c, region, ids, s, now, progress, nil)
}

// AssessKnowing is Assess for a caller that knows the ledger's rollbacks of the region,
// by instance id: they are part of the evidence from the start, so that rule 5b settles
// those instances before any metric or CloudTrail is read for them.
func AssessKnowing(ctx context.Context, c Clients, region string, ids []string, s policy.Settings, now time.Time, progress Progress,
	rolledBack map[string]policy.Rollback) ([]Assessment, error) {
	if progress == nil {
		progress = func(int, int) {}
	}
	instances, notFound, err := evidence.Inventory(ctx, c.EC2, region, ids)
	err = evidence.TimeUp(ctx, err)
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
			ev := policy.Evidence{InstanceID: instances[i].InstanceID, Instance: &instances[i]}
			if rb, ok := rolledBack[ev.InstanceID]; ok {
				ev.RolledBack = &rb
			}
			evs = append(evs, ev)
		}
		for _, id := range notFound {
			evs = append(evs, policy.Evidence{InstanceID: id})
		}
	}
	return Judge(ctx, c, region, evs, s, now, progress), nil
}

// Judge completes the evidence (each part only where the rules still need it) and
// decides. Use it when the inventory is already at hand; Assess reads it first.
//
// The metrics are read in concurrent batches (evidence.MetricUsageBatches), and the
// CloudTrail lookups of a batch's instances start as soon as that batch's metrics are
// in, while the other batches are still being read: a sweep then takes about as long as
// its slowest evidence, not as long as all of it one after the other.
func Judge(ctx context.Context, c Clients, region string, evs []policy.Evidence, s policy.Settings, now time.Time, progress Progress) []Assessment {
	if progress == nil {
		progress = func(int, int) {}
	}
	j := &judgement{evs: evs, total: len(evs), progress: progress}
	var needMetrics, needBoot, needTrail []int
	for i := range evs {
		switch policy.Next(evs[i], s, now) {
		case policy.NeedMetrics:
			needMetrics = append(needMetrics, i)
		case policy.NeedBootMetrics:
			needBoot = append(needBoot, i)
		case policy.NeedCloudTrail:
			needTrail = append(needTrail, i)
		default:
			j.done++
		}
	}
	j.report()

	// Every instance is queued for a lookup at most once, so the queue never blocks the
	// metric reads that fill it.
	lookups := make(chan lookup, len(evs))
	var workers sync.WaitGroup
	for range min(lookupWorkers, len(needMetrics)+len(needTrail)) {
		workers.Go(func() {
			for l := range lookups {
				var usage *policy.CloudTrailUsage
				var err error
				if c.Trail != nil {
					usage, err = c.Trail.Deliveries(ctx, l.instance, s.Lookback, now)
				} else {
					usage, err = evidence.CredentialDeliveries(ctx, c.CloudTrail, c.LookupLimiter, l.instance, s.Lookback, now)
				}
				j.finishLookup(l.n, usage, err)
			}
		})
	}
	j.queueLookups(lookups, needTrail)

	// The boot hours (rule 8b) of the candidates that launched before the lookback are
	// read as soon as their batch's metrics are in, beside the other batches, and their
	// lookups queued when they are.
	var boots sync.WaitGroup
	readBoots := func(todo []int) {
		if len(todo) == 0 {
			return
		}
		boots.Go(func() {
			windows := make(map[string]evidence.Window, len(todo))
			byID := make(map[string][]int, len(todo))
			for _, n := range todo {
				start, end, _ := policy.BootWindowOf(*evs[n].Instance, s, now)
				id := evs[n].InstanceID
				windows[id] = evidence.Window{Start: start, End: end}
				byID[id] = append(byID[id], n)
			}
			evidence.BootUsageBatches(ctx, c.CloudWatch, windows, func(b evidence.MetricBatch) {
				j.queueLookups(lookups, j.addBoot(b, byID, s, now))
			})
		})
	}
	readBoots(needBoot)

	if len(needMetrics) > 0 {
		// The instances with an instance profile, which may need a lookup, are read
		// first, so that the lookups start with the first batch. Within each group the
		// order is random, and so are the batches: when the time left runs out before
		// every lookup is done (CloudTrail allows 2 a second), the instances left over are
		// deferred, and the next sweep starts with different ones instead of always the
		// same.
		byID := make(map[string][]int, len(needMetrics))
		var withProfile, others []string
		for _, k := range rand.Perm(len(needMetrics)) {
			n := needMetrics[k]
			id := evs[n].InstanceID
			if _, ok := byID[id]; !ok {
				if inst := evs[n].Instance; inst != nil && inst.InstanceProfileARN != "" {
					withProfile = append(withProfile, id)
				} else {
					others = append(others, id)
				}
			}
			byID[id] = append(byID[id], n)
		}
		ids := append(withProfile, others...)
		evidence.MetricUsageBatches(ctx, c.CloudWatch, ids, s.Lookback, now, func(b evidence.MetricBatch) {
			boot, trail := j.addMetrics(b, byID, s, now)
			j.queueLookups(lookups, trail)
			readBoots(boot)
		})
	}
	boots.Wait()
	close(lookups)
	workers.Wait()

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

// lookup is one instance's CloudTrail lookup: its index in the evidence, and a copy of
// its inventory for the worker.
type lookup struct {
	n        int
	instance policy.Instance
}

// judgement is the evidence of a Judge being completed by the metric reads and the
// lookup workers at once. mu guards evs, done, and the calls of progress, which are
// made one at a time and never go backwards.
type judgement struct {
	mu       sync.Mutex
	evs      []policy.Evidence
	total    int
	done     int // instances whose verdict is final
	progress Progress
}

func (j *judgement) report() { j.progress(j.done, j.total) }

// addMetrics files a batch's metric evidence and returns the instances that now need
// their boot hours read and those that need a CloudTrail lookup; those that need nothing
// more count as done.
func (j *judgement) addMetrics(b evidence.MetricBatch, byID map[string][]int, s policy.Settings, now time.Time) (needBoot, needTrail []int) {
	return j.file(b, byID, s, now, func(ev *policy.Evidence, usage *policy.MetricUsage, err error) {
		ev.Metrics, ev.MetricsErr = usage, err
	})
}

// addBoot files a batch's boot-hours evidence and returns the instances that now need a
// CloudTrail lookup; the others count as done.
func (j *judgement) addBoot(b evidence.MetricBatch, byID map[string][]int, s policy.Settings, now time.Time) []int {
	needBoot, needTrail := j.file(b, byID, s, now, func(ev *policy.Evidence, usage *policy.MetricUsage, err error) {
		ev.Boot, ev.BootErr = usage, err
	})
	// Every instance of the batch now has its boot usage or its error, so none asks for it
	// again. One that did would keep its "not read" defer rather than be read for ever.
	j.mu.Lock()
	j.done += len(needBoot)
	j.mu.Unlock()
	return needTrail
}

// file stores each instance's part of a batch with set and sorts the instances by what
// they need next.
func (j *judgement) file(b evidence.MetricBatch, byID map[string][]int, s policy.Settings, now time.Time,
	set func(ev *policy.Evidence, usage *policy.MetricUsage, err error)) (needBoot, needTrail []int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, id := range b.IDs {
		for _, n := range byID[id] {
			if err := b.Errs[id]; err != nil {
				set(&j.evs[n], nil, err)
			} else {
				u := b.Usage[id]
				set(&j.evs[n], &u, nil)
			}
			switch policy.Next(j.evs[n], s, now) {
			case policy.NeedBootMetrics:
				needBoot = append(needBoot, n)
			case policy.NeedCloudTrail:
				needTrail = append(needTrail, n)
			default:
				j.done++
			}
		}
	}
	j.report()
	return needBoot, needTrail
}

// queueLookups queues the lookups of the instances, in a random order (see Judge).
func (j *judgement) queueLookups(queue chan<- lookup, todo []int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, k := range rand.Perm(len(todo)) {
		n := todo[k]
		queue <- lookup{n: n, instance: *j.evs[n].Instance}
	}
}

// finishLookup files one instance's CloudTrail evidence; its verdict is then final.
func (j *judgement) finishLookup(n int, usage *policy.CloudTrailUsage, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.evs[n].CloudTrail, j.evs[n].CloudTrailErr = usage, err
	j.done++
	j.report()
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

// OutOfTime reports whether an assessment lacks evidence only because the time to read
// it ran out (evidence.ErrOutOfTime): its verdict is a defer, and a unit of work that
// hands the instance to its continuation judges it there in full instead.
func OutOfTime(a Assessment) bool {
	ev := a.Evidence
	for _, err := range []error{ev.InventoryErr, ev.MetricsErr, ev.BootErr, ev.CloudTrailErr} {
		if errors.Is(err, evidence.ErrOutOfTime) {
			return true
		}
	}
	return false
}
