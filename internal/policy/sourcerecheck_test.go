package policy

import (
	"strings"
	"testing"
	"time"
)

func TestRecheckSource(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	limits := RecheckLimits{MaxAge: time.Hour, MaxClockSkew: time.Minute}
	fix := QueuedSource{Authenticity: Recorded, Kind: SourceLaunchTemplate, Action: SourceFix, CreatedAt: now.Add(-time.Minute), SeenVersion: 3}
	optional := &MetadataOptions{HTTPTokens: TokensOptional}
	live := LiveSource{DefaultVersion: 3, Options: optional}
	tests := []struct {
		name          string
		q             QueuedSource
		l             LiveSource
		refuse, never bool
		note          string
	}{
		{"the decision it was made on: carried out", fix, live, false, false, ""},
		{"foreign: refused", func() QueuedSource { q := fix; q.Foreign = true; return q }(), live, true, false, "another account"},
		{"not recorded: refused", func() QueuedSource { q := fix; q.Authenticity = NotRecorded; return q }(), live, true, false, "not recorded"},
		{"altered: refused", func() QueuedSource { q := fix; q.Authenticity = Altered; return q }(), live, true, false, "differs"},
		{"from the future: refused", func() QueuedSource { q := fix; q.CreatedAt = now.Add(time.Hour); return q }(), live, true, false, "future"},
		{"too old: the next sweep", func() QueuedSource { q := fix; q.CreatedAt = now.Add(-2 * time.Hour); return q }(), live, false, true, "old"},
		{"default version moved on", fix, LiveSource{DefaultVersion: 4, Options: optional}, false, true, "is 4 now"},
		{"template gone", fix, LiveSource{Gone: true}, false, true, "no longer exists"},
		{"fixed by hand already", fix, LiveSource{DefaultVersion: 3, Options: &MetadataOptions{HTTPTokens: TokensRequired}}, false, true, "already"},
		{"rolled back: not again", fix, LiveSource{DefaultVersion: 3, Options: optional, RolledBack: &Rollback{At: now.Add(-time.Hour), Why: "broke"}}, false, true, "rolled back"},
		{"defaults under a declarative policy", QueuedSource{Authenticity: Recorded, Kind: SourceAccountDefaults, Action: SourceFix, CreatedAt: now},
			LiveSource{ManagedBy: ManagedByDeclarativePolicy}, false, true, "declarative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := RecheckSource(tc.q, tc.l, limits, now)
			if r.Refuse != tc.refuse || r.Nothing != tc.never || !strings.Contains(r.Note, tc.note) {
				t.Errorf("RecheckSource = %+v, want refuse %v, nothing %v, saying %q", r, tc.refuse, tc.never, tc.note)
			}
		})
	}
}

func TestSourceGate(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	s := RolloutSettings{MaxPerHour: 5, Waves: []Wave{{Key: "Environment", Values: []string{"dev"}}}, WaveSoak: time.Hour}
	for _, tc := range []struct {
		name string
		wave int
		st   RolloutState
		code ReasonCode
	}{
		{"first wave, nothing pending", 0, RolloutState{}, ""},
		{"paused", 0, RolloutState{Paused: true, PausedBy: "ops"}, ReasonPaused},
		{"breaker open", 0, RolloutState{BreakerOpenedAt: now}, ReasonBreakerOpen},
		{"last wave while the first is being verified", 1, RolloutState{Waves: []WaveState{{Verifying: 1}}}, ReasonWaitingForWave},
		{"last wave once the first has soaked", 1, RolloutState{Waves: []WaveState{{LastSettled: now.Add(-2 * time.Hour)}}}, ""},
	} {
		g := SourceGate(tc.wave, tc.st, s, now)
		if g.Allowed != (tc.code == "") || g.Reason.Code != tc.code {
			t.Errorf("%s: %+v, want %q", tc.name, g, tc.code)
		}
	}
}

func TestHeldBackSource(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	s := DefaultSettings()
	src := Source{Kind: SourceLaunchTemplate, ID: "lt-0123456789abcdef0", Options: &MetadataOptions{HTTPTokens: TokensOptional}}
	members := []SourceMember{{InstanceID: "i-00000001", Verdict: Verdict{Action: ActionRemediate, Reasons: []Reason{{ReasonIMDSv1Unused, "0"}}}}}
	if v := DecideSource(src, members, s, now); v.Action != SourceFix {
		t.Fatalf("without a rollback: %+v, want a fix", v)
	}
	src.RolledBack = &Rollback{At: now.Add(-24 * time.Hour), Why: "a job broke"}
	if v := DecideSource(src, members, s, now); v.Action != SourceTicket || v.Reasons[0].Code != ReasonRolledBack || !strings.Contains(v.Reasons[0].Detail, "a job broke") {
		t.Errorf("rolled back a day ago: %+v, want a rolled-back ticket", v)
	}
	src.RolledBack.At = now.Add(-s.Lookback - time.Hour)
	if v := DecideSource(src, members, s, now); v.Action != SourceFix {
		t.Errorf("rolled back more than a lookback ago: %+v, want a fix again", v)
	}
}

func TestHoldLaterWaves(t *testing.T) {
	waves := []Wave{{Key: "Environment", Values: []string{"dev"}}, {Key: "Environment", Values: []string{"test"}}}
	inst := func(env string) *Instance { return &Instance{Tags: map[string]string{"Environment": env}} }
	remediate := Verdict{Action: ActionRemediate, Reasons: []Reason{{ReasonIMDSv1Unused, "0"}}}
	ticket := Verdict{Action: ActionTicket, Reasons: []Reason{{ReasonIMDSv1UsedMetric, "3"}}}
	instances := []*Instance{inst("prod"), inst("test"), inst("dev"), inst("prod"), nil}
	verdicts := []Verdict{remediate, remediate, remediate, ticket, remediate}
	if held := HoldLaterWaves(instances, verdicts, waves); held != 2 {
		t.Fatalf("held %d, want the prod and test remediations", held)
	}
	for i, want := range []Action{ActionDefer, ActionDefer, ActionRemediate, ActionTicket, ActionRemediate} {
		if verdicts[i].Action != want {
			t.Errorf("verdict %d: %s %+v, want %s", i, verdicts[i].Action, verdicts[i].Reasons, want)
		}
	}
	if r := verdicts[0].Reasons; r[0].Code != ReasonWaitingForWave || !strings.Contains(r[0].Detail, "waits for wave 1 (Environment=dev)") || r[1].Code != ReasonIMDSv1Unused {
		t.Errorf("the held verdict's reasons %+v", r)
	}
	// Without an earlier wave in the batch, nothing is held; without waves, nothing.
	alone := []Verdict{remediate}
	if HoldLaterWaves([]*Instance{inst("prod")}, alone, waves) != 0 || HoldLaterWaves(instances, verdicts, nil) != 0 {
		t.Error("held without an earlier wave in the batch, or without waves")
	}
}

func TestSourceTargetAllowed(t *testing.T) {
	s := DefaultSettings()
	for _, tc := range []struct {
		kind   SourceKind
		target MetadataOptions
		ok     bool
	}{
		{SourceLaunchTemplate, MetadataOptions{HTTPTokens: TokensRequired, HopLimit: s.HopLimit}, true},
		{SourceLaunchTemplate, MetadataOptions{HTTPTokens: TokensRequired, HopLimit: s.ContainerHopLimit}, true},
		{SourceLaunchTemplate, MetadataOptions{HTTPTokens: TokensRequired, HopLimit: 9}, false},
		{SourceLaunchTemplate, MetadataOptions{HTTPTokens: TokensOptional, HopLimit: s.HopLimit}, false},
		{SourceAccountDefaults, MetadataOptions{HTTPTokens: TokensRequired}, true},
	} {
		if ok, why := SourceTargetAllowed(tc.kind, tc.target, s); ok != tc.ok || ok == (why != "") {
			t.Errorf("SourceTargetAllowed(%s, %+v) = %v %q, want %v", tc.kind, tc.target, ok, why, tc.ok)
		}
	}
}

func TestBreakageTarget(t *testing.T) {
	target, ok := BreakageTarget(MetadataOptions{HTTPTokens: TokensRequired, HopLimit: 2, HTTPEndpoint: EndpointEnabled})
	if !ok || target != (MetadataOptions{HTTPTokens: TokensOptional, HopLimit: 2, HTTPEndpoint: EndpointEnabled}) {
		t.Errorf("BreakageTarget = %+v %v, want optional with the hop limit and endpoint kept", target, ok)
	}
	if _, ok := BreakageTarget(MetadataOptions{HTTPTokens: TokensOptional, HopLimit: 2}); ok {
		t.Error("an instance with HttpTokens optional already is put back again")
	}
}
