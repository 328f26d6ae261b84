package policy

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var limits = RecheckLimits{MaxAge: time.Hour, MaxClockSkew: time.Minute}

// unusedVerdict is what detect queues for running(): remediate, IMDSv1 unused, made ten
// minutes ago on the options running() has, with metric evidence up to 80 minutes ago.
func unusedVerdict(mods ...func(*QueuedVerdict)) QueuedVerdict {
	q := QueuedVerdict{
		Authenticity: Recorded,
		Action:       ActionRemediate,
		Reasons:      []Reason{{Code: ReasonIMDSv1Unused, Detail: "0 IMDSv1 calls in 336 observed hours"}},
		CreatedAt:    now.Add(-10 * time.Minute),
		Seen:         &MetadataOptions{HTTPTokens: TokensOptional, HopLimit: 2, HTTPEndpoint: EndpointEnabled},
		UsageFrom:    now.Add(-80 * time.Minute),
	}
	for _, mod := range mods {
		mod(&q)
	}
	return q
}

func describedAs(inst *Instance) *Evidence {
	id := "i-0123456789abcdef0"
	if inst != nil {
		id = inst.InstanceID
	}
	return &Evidence{InstanceID: id, Instance: inst}
}

func quiet() *MetricUsage {
	return &MetricUsage{ObservedHours: 14, LastDatapoint: ptime(now.Add(-5 * time.Minute))}
}

func TestRecheckQueued(t *testing.T) {
	s := DefaultSettings()
	tests := []struct {
		name   string
		in     RecheckInput
		step   RecheckStep
		action Action     // RecheckCarryOut
		code   ReasonCode // RecheckCarryOut: the primary reason
		hop    int32      // RecheckCarryOut of a remediation: the target hop limit
		note   string     // a part of Note, when it must say something
	}{
		// Refusals come before any look at the instance.
		{name: "not recorded by detect", in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) { q.Authenticity = NotRecorded })},
			step: RecheckRefuse, note: "not recorded by detect"},
		{name: "the zero authenticity is not recorded", in: RecheckInput{Queued: QueuedVerdict{Action: ActionRemediate, CreatedAt: now}},
			step: RecheckRefuse, note: "not recorded"},
		{name: "altered", in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) { q.Authenticity = Altered })},
			step: RecheckRefuse, note: "differs"},
		{name: "foreign, even when recorded", in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) { q.Foreign = true })},
			step: RecheckRefuse, note: "another account or region"},
		{name: "created ten years from now", in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) { q.CreatedAt = now.AddDate(10, 0, 0) })},
			step: RecheckRefuse, note: "in the future"},
		{name: "created just beyond the clock skew", in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) { q.CreatedAt = now.Add(time.Minute + time.Second) })},
			step: RecheckRefuse, note: "in the future"},
		{name: "created within the clock skew is looked at", in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) { q.CreatedAt = now.Add(30 * time.Second) })},
			step: RecheckDescribe},
		{name: "no creation time", in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) { q.CreatedAt = time.Time{} })},
			step: RecheckRefuse, note: "no creation time"},

		// The live instance first.
		{name: "not described yet", in: RecheckInput{Queued: unusedVerdict()}, step: RecheckDescribe},
		{name: "describing failed defers", in: RecheckInput{Queued: unusedVerdict(), Live: &Evidence{InstanceID: "i-0123456789abcdef0", InventoryErr: errors.New("throttled")}},
			step: RecheckCarryOut, action: ActionDefer, code: ReasonEvidenceError},
		{name: "gone", in: RecheckInput{Queued: unusedVerdict(), Live: describedAs(nil)},
			step: RecheckCarryOut, action: ActionSkip, code: ReasonTerminated, note: "changed the verdict"},
		{name: "compliant by now", in: RecheckInput{Queued: unusedVerdict(), Live: describedAs(running(withTokens(TokensRequired)))},
			step: RecheckCarryOut, action: ActionSkip, code: ReasonCompliant},
		{name: "exempt by now", in: RecheckInput{Queued: unusedVerdict(), Live: describedAs(running(withTag("imdsguard:exempt", "true")))},
			step: RecheckCarryOut, action: ActionSkip, code: ReasonExempt},
		{name: "stopped by now", in: RecheckInput{Queued: unusedVerdict(), Live: describedAs(running(withState(StateStopped)))},
			step: RecheckCarryOut, action: ActionDefer, code: ReasonNotRunning},
		{name: "endpoint disabled by now: remediated, target from the live instance", in: RecheckInput{Queued: unusedVerdict(),
			Live: describedAs(running(withEndpoint(EndpointDisable), withHop(5)))},
			step: RecheckCarryOut, action: ActionRemediate, code: ReasonEndpointDisabled, hop: 1},

		// The verdict against the live instance.
		{name: "a close-out for an instance no longer compliant does nothing",
			in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) {
				q.Action, q.Reasons = ActionSkip, []Reason{{Code: ReasonCompliant}}
			}), Live: describedAs(running())},
			step: RecheckNothing, note: "close the ticket"},
		{name: "a close-out for a compliant instance closes", in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) {
			q.Action, q.Reasons = ActionSkip, []Reason{{Code: ReasonCompliant}}
		}), Live: describedAs(running(withTokens(TokensRequired)))},
			step: RecheckCarryOut, action: ActionSkip, code: ReasonCompliant},
		{name: "older than the maximum age", in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) { q.CreatedAt = now.Add(-61 * time.Minute) }),
			Live: describedAs(running())}, step: RecheckRejudge, note: "old"},
		{name: "options changed", in: RecheckInput{Queued: unusedVerdict(), Live: describedAs(running(withHop(3)))},
			step: RecheckRejudge, note: "options changed"},
		{name: "no options seen", in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) { q.Seen = nil }), Live: describedAs(running())},
			step: RecheckRejudge},
		{name: "a fresh ticket verdict is carried out as queued", in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) {
			q.Action, q.Reasons = ActionTicket, []Reason{{Code: ReasonIMDSv1UsedMetric}}
		}), Live: describedAs(running())},
			step: RecheckCarryOut, action: ActionTicket, code: ReasonIMDSv1UsedMetric},
		{name: "a fresh defer verdict is carried out as queued", in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) {
			q.Action, q.Reasons = ActionDefer, []Reason{{Code: ReasonStaleMetrics}}
		}), Live: describedAs(running())},
			step: RecheckCarryOut, action: ActionDefer, code: ReasonStaleMetrics},

		// A remediation needs "unused" evidence and no IMDSv1 call since.
		{name: "a queued endpoint-disabled remediation whose endpoint is enabled again", in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) {
			q.Reasons = []Reason{{Code: ReasonEndpointDisabled}}
			q.Seen.HTTPEndpoint = EndpointEnabled
		}), Live: describedAs(running())}, step: RecheckRejudge},
		{name: "a remediation without metric evidence", in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) { q.UsageFrom = time.Time{} }),
			Live: describedAs(running())}, step: RecheckRejudge},
		{name: "recent usage not read yet", in: RecheckInput{Queued: unusedVerdict(), Live: describedAs(running())}, step: RecheckReadRecentUsage},
		{name: "recent usage could not be read", in: RecheckInput{Queued: unusedVerdict(), Live: describedAs(running()), RecentErr: errors.New("incomplete reply")},
			step: RecheckCarryOut, action: ActionDefer, code: ReasonEvidenceError},
		{name: "an IMDSv1 call since the evidence", in: RecheckInput{Queued: unusedVerdict(), Live: describedAs(running()),
			Recent: &MetricUsage{Sum: 3, ObservedHours: 14, LastNonZero: ptime(now.Add(-20 * time.Minute))}},
			step: RecheckCarryOut, action: ActionTicket, code: ReasonIMDSv1UsedMetric, note: "after the verdict"},
		{name: "a recent sum that is not a count", in: RecheckInput{Queued: unusedVerdict(), Live: describedAs(running()), Recent: &MetricUsage{Sum: math.NaN()}},
			step: RecheckCarryOut, action: ActionDefer, code: ReasonEvidenceError},
		{name: "a negative recent sum", in: RecheckInput{Queued: unusedVerdict(), Live: describedAs(running()), Recent: &MetricUsage{Sum: -1}},
			step: RecheckCarryOut, action: ActionDefer, code: ReasonEvidenceError},
		{name: "no call since: remediated, hop limit from the settings", in: RecheckInput{Queued: unusedVerdict(), Live: describedAs(running()), Recent: quiet()},
			step: RecheckCarryOut, action: ActionRemediate, code: ReasonIMDSv1Unused, hop: 1},
		{name: "no datapoint since is not a call: remediated", in: RecheckInput{Queued: unusedVerdict(), Live: describedAs(running()), Recent: &MetricUsage{}},
			step: RecheckCarryOut, action: ActionRemediate, code: ReasonIMDSv1Unused, hop: 1},
		{name: "container host: at least the container hop limit, never lower than now",
			in: RecheckInput{Queued: unusedVerdict(func(q *QueuedVerdict) { q.Seen.HopLimit = 3 }),
				Live: describedAs(running(withHop(3), withTag("eks:cluster-name", "prod"))), Recent: quiet()},
			step: RecheckCarryOut, action: ActionRemediate, code: ReasonIMDSv1Unused, hop: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := RecheckQueued(tc.in, s, limits, now)
			if got.Step != tc.step {
				t.Fatalf("step %d, want %d (note %q)", got.Step, tc.step, got.Note)
			}
			if tc.note != "" && !strings.Contains(got.Note+" "+detailOf(got.Verdict), tc.note) {
				t.Errorf("note %q (detail %q) does not say %q", got.Note, detailOf(got.Verdict), tc.note)
			}
			if got.Step != RecheckCarryOut {
				if got.Verdict.Action != "" {
					t.Errorf("step %d carries a verdict %+v", got.Step, got.Verdict)
				}
				return
			}
			if got.Verdict.Action != tc.action || got.Verdict.Primary() != tc.code {
				t.Fatalf("verdict %s (%s), want %s (%s)", got.Verdict.Action, got.Verdict.Primary(), tc.action, tc.code)
			}
			switch {
			case tc.action != ActionRemediate && got.Verdict.Target != nil:
				t.Errorf("a %s verdict has a target %+v", tc.action, *got.Verdict.Target)
			case tc.action == ActionRemediate && got.Verdict.Target == nil:
				t.Fatal("a remediation without a target")
			case tc.action == ActionRemediate:
				target := *got.Verdict.Target
				live := tc.in.Live.Instance.Options
				if target.HTTPTokens != TokensRequired || target.HopLimit != tc.hop || target.HTTPEndpoint != live.HTTPEndpoint {
					t.Errorf("target %+v, want required, hop %d, endpoint %s as it is", target, tc.hop, live.HTTPEndpoint)
				}
			}
		})
	}
}

// TestRecheckNeverRemediatesWithoutTheRecentRead: whatever the queued verdict says, a
// remediation for unused IMDSv1 is carried out only after the recent usage was read.
func TestRecheckNeverRemediatesWithoutTheRecentRead(t *testing.T) {
	s := DefaultSettings()
	for _, age := range []time.Duration{0, time.Minute, 59 * time.Minute} {
		q := unusedVerdict(func(q *QueuedVerdict) { q.CreatedAt = now.Add(-age) })
		got := RecheckQueued(RecheckInput{Queued: q, Live: describedAs(running())}, s, limits, now)
		if got.Step == RecheckCarryOut && got.Verdict.Action == ActionRemediate {
			t.Fatalf("age %s: remediated without reading the usage since the evidence", age)
		}
	}
}

// TestRecheckTargetFollowsTheSettings: the target comes from the settings and the live
// instance only (the queued verdict carries none).
func TestRecheckTargetFollowsTheSettings(t *testing.T) {
	s := DefaultSettings()
	s.HopLimit = 2
	in := RecheckInput{Queued: unusedVerdict(), Live: describedAs(running(withHop(2))), Recent: quiet()}
	got := RecheckQueued(in, s, limits, now)
	if got.Step != RecheckCarryOut || got.Verdict.Target == nil || got.Verdict.Target.HopLimit != 2 {
		t.Fatalf("got %+v, want a remediation at hop limit 2", got)
	}
}

func detailOf(v Verdict) string {
	if len(v.Reasons) == 0 {
		return ""
	}
	return v.Reasons[0].Detail
}

// TestRecheckReasonsFollowTheLiveInstance: whether the instance is a container host is
// the live instance's, in the reasons as in the target.
func TestRecheckReasonsFollowTheLiveInstance(t *testing.T) {
	s := DefaultSettings()
	queuedAsContainer := unusedVerdict(func(q *QueuedVerdict) {
		q.Reasons = append(q.Reasons, Reason{Code: ReasonContainerHost, Detail: "tag eks:cluster-name marks a container host"})
	})
	tests := []struct {
		name      string
		queued    QueuedVerdict
		live      *Instance
		container bool
	}{
		{"the container tag was removed since", queuedAsContainer, running(), false},
		{"a container host still", queuedAsContainer, running(withTag("eks:cluster-name", "prod")), true},
		{"a container host since", unusedVerdict(), running(withTag("aws:ecs:clusterName", "web")), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := RecheckQueued(RecheckInput{Queued: tc.queued, Live: describedAs(tc.live), Recent: quiet()}, s, limits, now)
			if got.Step != RecheckCarryOut || got.Verdict.Action != ActionRemediate {
				t.Fatalf("got %+v, want a remediation", got)
			}
			n := 0
			for _, r := range got.Verdict.Reasons {
				if r.Code == ReasonContainerHost {
					n++
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tc.container]; n != want || got.Verdict.Primary() != ReasonIMDSv1Unused {
				t.Errorf("reasons %+v: %d container-host reasons, want %d, primary imdsv1-unused", got.Verdict.Reasons, n, want)
			}
		})
	}
}
