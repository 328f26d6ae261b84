package policy

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 22, 10, 20, 0, 0, time.UTC)

func ptime(t time.Time) *time.Time { return &t }

// running is an instance that, with healthyMetrics and cleanTrail, is remediated.
func running(mods ...func(*Instance)) *Instance {
	inst := &Instance{
		AccountID: "123456789012", Region: "us-east-1", InstanceID: "i-0123456789abcdef0",
		Name: "web-1", State: StateRunning, LaunchTime: now.Add(-72 * time.Hour),
		Options:            MetadataOptions{HTTPTokens: TokensOptional, HopLimit: 2, HTTPEndpoint: EndpointEnabled, State: "applied"},
		Tags:               map[string]string{"Name": "web-1"},
		InstanceProfileARN: "arn:aws:iam::123456789012:instance-profile/web",
		Addresses:          []string{"10.0.0.5", "54.1.2.3"},
	}
	for _, mod := range mods {
		mod(inst)
	}
	return inst
}

func withState(state string) func(*Instance) { return func(i *Instance) { i.State = state } }
func withTokens(t string) func(*Instance)    { return func(i *Instance) { i.Options.HTTPTokens = t } }
func withEndpoint(e string) func(*Instance)  { return func(i *Instance) { i.Options.HTTPEndpoint = e } }
func withHop(h int32) func(*Instance)        { return func(i *Instance) { i.Options.HopLimit = h } }
func withTag(k, v string) func(*Instance)    { return func(i *Instance) { i.Tags[k] = v } }
func noProfile(i *Instance)                  { i.InstanceProfileARN = "" }
func launched(at time.Time) func(*Instance)  { return func(i *Instance) { i.LaunchTime = at } }

// beforeLookback is a launch 30 days ago, before the default 14-day lookback: rule 8b
// reads its boot hours.
var beforeLookback = now.Add(-30 * 24 * time.Hour)

func healthyMetrics() *MetricUsage {
	return &MetricUsage{Sum: 0, ObservedHours: 336, LastDatapoint: ptime(now.Add(-80 * time.Minute))}
}

func cleanTrail() *CloudTrailUsage { return &CloudTrailUsage{V2Deliveries: 12} }

func TestDecideRules(t *testing.T) {
	s := DefaultSettings()
	tests := []struct {
		name       string
		ev         Evidence
		action     Action
		codes      []ReasonCode // all reason codes, primary first
		targetHop  int32        // checked when action is remediate
		targetEndp string
		need       Need
	}{
		{
			name:   "rule 1: not found",
			ev:     Evidence{InstanceID: "i-0000000000000dead"},
			action: ActionSkip, codes: []ReasonCode{ReasonTerminated},
		},
		{
			name:   "rule 1: terminated",
			ev:     Evidence{Instance: running(withState(StateTerminated)), Metrics: &MetricUsage{Sum: 9}},
			action: ActionSkip, codes: []ReasonCode{ReasonTerminated},
		},
		{
			name:   "rule 1: shutting-down beats exemption and disabled endpoint",
			ev:     Evidence{Instance: running(withState(StateShuttingDown), withTag("imdsguard:exempt", "true"), withEndpoint(EndpointDisable))},
			action: ActionSkip, codes: []ReasonCode{ReasonTerminated},
		},
		{
			name:   "rule 2: already required",
			ev:     Evidence{Instance: running(withTokens(TokensRequired), withTag("imdsguard:exempt", "true"))},
			action: ActionSkip, codes: []ReasonCode{ReasonCompliant},
		},
		{
			name:   "rule 3: exempt true",
			ev:     Evidence{Instance: running(withTag("imdsguard:exempt", "true")), Metrics: healthyMetrics(), CloudTrail: cleanTrail()},
			action: ActionSkip, codes: []ReasonCode{ReasonExempt},
		},
		{
			name:   "rule 3: exempt TRUE in any case",
			ev:     Evidence{Instance: running(withTag("imdsguard:exempt", " True "))},
			action: ActionSkip, codes: []ReasonCode{ReasonExempt},
		},
		{
			name:   "rule 3 before 4: exempt and endpoint disabled",
			ev:     Evidence{Instance: running(withTag("imdsguard:exempt", "true"), withEndpoint(EndpointDisable))},
			action: ActionSkip, codes: []ReasonCode{ReasonExempt},
		},
		{
			name:   "rule 3: date exemption ending today still exempts",
			ev:     Evidence{Instance: running(withTag("imdsguard:exempt", "2026-11-22")), Metrics: healthyMetrics(), CloudTrail: cleanTrail()},
			action: ActionSkip, codes: []ReasonCode{ReasonExempt},
		},
		{
			name:   "rule 3: date exemption in the future",
			ev:     Evidence{Instance: running(withTag("imdsguard:exempt", "2027-01-31"))},
			action: ActionSkip, codes: []ReasonCode{ReasonExempt},
		},
		{
			name:   "rule 3: unreadable value still exempts",
			ev:     Evidence{Instance: running(withTag("imdsguard:exempt", "until-q3"))},
			action: ActionSkip, codes: []ReasonCode{ReasonExempt},
		},
		{
			name:   "rule 3: expired exemption is noted and the rules go on",
			ev:     Evidence{Instance: running(withTag("imdsguard:exempt", "2026-11-21")), Metrics: healthyMetrics(), CloudTrail: cleanTrail()},
			action: ActionRemediate, codes: []ReasonCode{ReasonIMDSv1Unused, ReasonExemptionExpired}, targetHop: 1, targetEndp: EndpointEnabled,
		},
		{
			name:   "rule 3: exemption tag under another key is ignored",
			ev:     Evidence{Instance: running(withTag("exempt", "true")), Metrics: healthyMetrics(), CloudTrail: cleanTrail()},
			action: ActionRemediate, codes: []ReasonCode{ReasonIMDSv1Unused}, targetHop: 1, targetEndp: EndpointEnabled,
		},
		{
			name:   "rule 4: endpoint disabled needs no usage evidence and stays disabled",
			ev:     Evidence{Instance: running(withEndpoint(EndpointDisable), withHop(3))},
			action: ActionRemediate, codes: []ReasonCode{ReasonEndpointDisabled}, targetHop: 1, targetEndp: EndpointDisable,
		},
		{
			name:   "rule 4 before 5: endpoint disabled on a stopped instance",
			ev:     Evidence{Instance: running(withEndpoint(EndpointDisable), withState(StateStopped))},
			action: ActionRemediate, codes: []ReasonCode{ReasonEndpointDisabled}, targetHop: 1, targetEndp: EndpointDisable,
		},
		{
			name:   "rule 4 after expired exemption",
			ev:     Evidence{Instance: running(withEndpoint(EndpointDisable), withTag("imdsguard:exempt", "2020-01-01"))},
			action: ActionRemediate, codes: []ReasonCode{ReasonEndpointDisabled, ReasonExemptionExpired}, targetHop: 1, targetEndp: EndpointDisable,
		},
		{
			name:   "rule 5: stopped",
			ev:     Evidence{Instance: running(withState(StateStopped)), Metrics: healthyMetrics(), CloudTrail: cleanTrail()},
			action: ActionDefer, codes: []ReasonCode{ReasonNotRunning},
		},
		{
			name:   "rule 5: pending",
			ev:     Evidence{Instance: running(withState(StatePending))},
			action: ActionDefer, codes: []ReasonCode{ReasonNotRunning},
		},
		{
			name:   "a metric sum that is not a count never reads as no calls",
			ev:     Evidence{Instance: running(), Metrics: &MetricUsage{Sum: math.NaN(), ObservedHours: 336, LastDatapoint: ptime(now.Add(-time.Hour))}, CloudTrail: cleanTrail()},
			action: ActionDefer, codes: []ReasonCode{ReasonEvidenceError},
		},
		{
			name:   "a negative metric sum never reads as no calls",
			ev:     Evidence{Instance: running(), Metrics: &MetricUsage{Sum: -2, ObservedHours: 336, LastDatapoint: ptime(now.Add(-time.Hour))}, CloudTrail: cleanTrail()},
			action: ActionDefer, codes: []ReasonCode{ReasonEvidenceError},
		},
		{
			name:   "rule 6: v1 used by metric",
			ev:     Evidence{Instance: running(), Metrics: &MetricUsage{Sum: 42, ObservedHours: 336, LastDatapoint: ptime(now.Add(-time.Hour)), LastNonZero: ptime(now.Add(-5 * time.Hour))}},
			action: ActionTicket, codes: []ReasonCode{ReasonIMDSv1UsedMetric},
		},
		{
			name:   "rule 6 before 7: v1 used with too few observed hours",
			ev:     Evidence{Instance: running(), Metrics: &MetricUsage{Sum: 1, ObservedHours: 3, LastDatapoint: ptime(now.Add(-time.Hour)), LastNonZero: ptime(now.Add(-time.Hour))}},
			action: ActionTicket, codes: []ReasonCode{ReasonIMDSv1UsedMetric},
		},
		{
			name:   "rule 6 before 8: v1 used with stale metrics",
			ev:     Evidence{Instance: running(), Metrics: &MetricUsage{Sum: 7, ObservedHours: 200, LastDatapoint: ptime(now.Add(-48 * time.Hour)), LastNonZero: ptime(now.Add(-48 * time.Hour))}},
			action: ActionTicket, codes: []ReasonCode{ReasonIMDSv1UsedMetric},
		},
		{
			name:   "rule 7: too few observed hours",
			ev:     Evidence{Instance: running(), Metrics: &MetricUsage{ObservedHours: 167, LastDatapoint: ptime(now.Add(-time.Hour))}, CloudTrail: cleanTrail()},
			action: ActionDefer, codes: []ReasonCode{ReasonInsufficientMetrics},
		},
		{
			name:   "rule 7: no datapoint at all is not zero",
			ev:     Evidence{Instance: running(), Metrics: &MetricUsage{}, CloudTrail: cleanTrail()},
			action: ActionDefer, codes: []ReasonCode{ReasonInsufficientMetrics},
		},
		{
			name:   "rule 7: exactly the minimum is enough",
			ev:     Evidence{Instance: running(), Metrics: &MetricUsage{ObservedHours: 168, LastDatapoint: ptime(now.Add(-time.Hour))}, CloudTrail: cleanTrail()},
			action: ActionRemediate, codes: []ReasonCode{ReasonIMDSv1Unused}, targetHop: 1, targetEndp: EndpointEnabled,
		},
		{
			name:   "rule 8: stale metrics",
			ev:     Evidence{Instance: running(), Metrics: &MetricUsage{ObservedHours: 300, LastDatapoint: ptime(now.Add(-3*time.Hour - time.Minute))}, CloudTrail: cleanTrail()},
			action: ActionDefer, codes: []ReasonCode{ReasonStaleMetrics},
		},
		{
			name:   "rule 8: exactly at the staleness limit is fresh",
			ev:     Evidence{Instance: running(), Metrics: &MetricUsage{ObservedHours: 300, LastDatapoint: ptime(now.Add(-3 * time.Hour))}, CloudTrail: cleanTrail()},
			action: ActionRemediate, codes: []ReasonCode{ReasonIMDSv1Unused}, targetHop: 1, targetEndp: EndpointEnabled,
		},
		{
			name:   "rule 9: v1 credential delivery",
			ev:     Evidence{Instance: running(), Metrics: healthyMetrics(), CloudTrail: &CloudTrailUsage{V1Deliveries: 1, UserAgents: []string{"aws-cli/1.16.0"}, SourceIPs: []string{"10.0.0.5"}}},
			action: ActionTicket, codes: []ReasonCode{ReasonIMDSv1UsedCloudTrail},
		},
		{
			name: "rule 9: v1 credentials used from elsewhere",
			ev: Evidence{Instance: running(), Metrics: healthyMetrics(), CloudTrail: &CloudTrailUsage{
				V1Deliveries: 2, SourceIPs: []string{"10.0.0.5", "203.0.113.9"}, ForeignSourceIPs: []string{"203.0.113.9"}}},
			action: ActionTicket, codes: []ReasonCode{ReasonIMDSv1UsedCloudTrail, ReasonPossibleCredentialTheft},
		},
		{
			name:   "rule 10: CloudTrail failed",
			ev:     Evidence{Instance: running(), Metrics: healthyMetrics(), CloudTrailErr: errors.New("AccessDeniedException")},
			action: ActionDefer, codes: []ReasonCode{ReasonCloudTrailUnavailable},
		},
		{
			name:   "rule 10: CloudTrail not looked up",
			ev:     Evidence{Instance: running(), Metrics: healthyMetrics()},
			action: ActionDefer, codes: []ReasonCode{ReasonCloudTrailUnavailable}, need: NeedCloudTrail,
		},
		{
			name:   "rule 11: unused, with CloudTrail",
			ev:     Evidence{Instance: running(), Metrics: healthyMetrics(), CloudTrail: cleanTrail()},
			action: ActionRemediate, codes: []ReasonCode{ReasonIMDSv1Unused}, targetHop: 1, targetEndp: EndpointEnabled,
		},
		{
			name:   "rule 11: unused, no instance profile needs no CloudTrail",
			ev:     Evidence{Instance: running(noProfile), Metrics: healthyMetrics()},
			action: ActionRemediate, codes: []ReasonCode{ReasonIMDSv1Unused, ReasonNoInstanceProfile}, targetHop: 1, targetEndp: EndpointEnabled,
		},
		{
			name:   "container host: hop limit raised to the container hop limit",
			ev:     Evidence{Instance: running(withTag("eks:cluster-name", "prod"), withHop(1)), Metrics: healthyMetrics(), CloudTrail: cleanTrail()},
			action: ActionRemediate, codes: []ReasonCode{ReasonIMDSv1Unused, ReasonContainerHost}, targetHop: 2, targetEndp: EndpointEnabled,
		},
		{
			name:   "container host with hop limit 3 keeps 3",
			ev:     Evidence{Instance: running(withTag("kubernetes.io/cluster/prod", "owned"), withHop(3)), Metrics: healthyMetrics(), CloudTrail: cleanTrail()},
			action: ActionRemediate, codes: []ReasonCode{ReasonIMDSv1Unused, ReasonContainerHost}, targetHop: 3, targetEndp: EndpointEnabled,
		},
		{
			name:   "ECS container host without profile",
			ev:     Evidence{Instance: running(withTag("aws:ecs:clusterName", "batch"), noProfile), Metrics: healthyMetrics()},
			action: ActionRemediate, codes: []ReasonCode{ReasonIMDSv1Unused, ReasonContainerHost, ReasonNoInstanceProfile}, targetHop: 2, targetEndp: EndpointEnabled,
		},
		{
			name:   "container host that uses v1 is ticketed with the note",
			ev:     Evidence{Instance: running(withTag("aws:eks:cluster-name", "prod")), Metrics: &MetricUsage{Sum: 3, ObservedHours: 336, LastDatapoint: ptime(now)}},
			action: ActionTicket, codes: []ReasonCode{ReasonIMDSv1UsedMetric, ReasonContainerHost},
		},
		{
			name:   "rule 8b: boot hours not read yet defers and asks for them",
			ev:     Evidence{Instance: running(launched(beforeLookback)), Metrics: healthyMetrics(), CloudTrail: cleanTrail()},
			action: ActionDefer, codes: []ReasonCode{ReasonEvidenceError}, need: NeedBootMetrics,
		},
		{
			name: "rule 8b: IMDSv1 at boot is a ticket, before CloudTrail is asked",
			ev: Evidence{Instance: running(launched(beforeLookback)), Metrics: healthyMetrics(),
				Boot: &MetricUsage{Sum: 4, ObservedHours: 3}},
			action: ActionTicket, codes: []ReasonCode{ReasonIMDSv1UsedAtBoot},
		},
		{
			name: "rule 8b: IMDSv1 at boot is a ticket without an instance profile too",
			ev: Evidence{Instance: running(launched(beforeLookback), noProfile), Metrics: healthyMetrics(),
				Boot: &MetricUsage{Sum: 1, ObservedHours: 1}},
			action: ActionTicket, codes: []ReasonCode{ReasonIMDSv1UsedAtBoot},
		},
		{
			name: "rule 8b: a clean boot goes on to CloudTrail",
			ev: Evidence{Instance: running(launched(beforeLookback)), Metrics: healthyMetrics(),
				Boot: &MetricUsage{Sum: 0, ObservedHours: 3}},
			action: ActionDefer, codes: []ReasonCode{ReasonCloudTrailUnavailable}, need: NeedCloudTrail,
		},
		{
			name: "rule 8b: a clean boot and clean CloudTrail remediate",
			ev: Evidence{Instance: running(launched(beforeLookback)), Metrics: healthyMetrics(),
				Boot: &MetricUsage{Sum: 0, ObservedHours: 3}, CloudTrail: cleanTrail()},
			action: ActionRemediate, codes: []ReasonCode{ReasonIMDSv1Unused}, targetHop: 1, targetEndp: EndpointEnabled,
		},
		{
			name: "rule 8b: boot hours without a datapoint add boot-unobserved and do not block",
			ev: Evidence{Instance: running(launched(beforeLookback)), Metrics: healthyMetrics(),
				Boot: &MetricUsage{}, CloudTrail: cleanTrail()},
			action: ActionRemediate, codes: []ReasonCode{ReasonIMDSv1Unused, ReasonBootUnobserved}, targetHop: 1, targetEndp: EndpointEnabled,
		},
		{
			name: "rule 8b: a failed boot read defers",
			ev: Evidence{Instance: running(launched(beforeLookback)), Metrics: healthyMetrics(),
				BootErr: errors.New("Throttling"), CloudTrail: cleanTrail()},
			action: ActionDefer, codes: []ReasonCode{ReasonEvidenceError},
		},
		{
			name: "rule 8b: a boot sum that is not a count defers",
			ev: Evidence{Instance: running(launched(beforeLookback)), Metrics: healthyMetrics(),
				Boot: &MetricUsage{Sum: math.NaN(), ObservedHours: 2}, CloudTrail: cleanTrail()},
			action: ActionDefer, codes: []ReasonCode{ReasonEvidenceError},
		},
		{
			name: "rule 8b: a boot older than CloudWatch's retention is unobserved, unread",
			ev: Evidence{Instance: running(launched(now.Add(-500 * 24 * time.Hour))), Metrics: healthyMetrics(),
				CloudTrail: cleanTrail()},
			action: ActionRemediate, codes: []ReasonCode{ReasonIMDSv1Unused, ReasonBootUnobserved}, targetHop: 1, targetEndp: EndpointEnabled,
		},
		{
			name:   "rule 8b: no launch time is unobserved, unread",
			ev:     Evidence{Instance: running(launched(time.Time{})), Metrics: healthyMetrics(), CloudTrail: cleanTrail()},
			action: ActionRemediate, codes: []ReasonCode{ReasonIMDSv1Unused, ReasonBootUnobserved}, targetHop: 1, targetEndp: EndpointEnabled,
		},
		{
			name:   "rule 8b: metric use in the lookback is a ticket first (rule 6), the boot is not read",
			ev:     Evidence{Instance: running(launched(beforeLookback)), Metrics: &MetricUsage{Sum: 2, ObservedHours: 300}},
			action: ActionTicket, codes: []ReasonCode{ReasonIMDSv1UsedMetric},
		},
		{
			name: "rule 5b: rolled back within the lookback is a ticket, whatever the metric says",
			ev: Evidence{Instance: running(), Metrics: healthyMetrics(), CloudTrail: cleanTrail(),
				RolledBack: &Rollback{At: now.Add(-48 * time.Hour), Why: "EC2 rejected 3 IMDSv1 calls"}},
			action: ActionTicket, codes: []ReasonCode{ReasonRolledBack},
		},
		{
			name: "rule 5b: a rollback a lookback ago no longer holds the instance back",
			ev: Evidence{Instance: running(), Metrics: healthyMetrics(), CloudTrail: cleanTrail(),
				RolledBack: &Rollback{At: now.Add(-337 * time.Hour), Why: "EC2 rejected 3 IMDSv1 calls"}},
			action: ActionRemediate, codes: []ReasonCode{ReasonIMDSv1Unused}, targetHop: 1, targetEndp: EndpointEnabled,
		},
		{
			name: "rule 5b comes after the exemption and the stop",
			ev: Evidence{Instance: running(withState(StateStopped)),
				RolledBack: &Rollback{At: now.Add(-time.Hour), Why: "x"}},
			action: ActionDefer, codes: []ReasonCode{ReasonNotRunning},
		},
		{
			name:   "inventory error defers",
			ev:     Evidence{InstanceID: "i-0123456789abcdef0", InventoryErr: errors.New("UnauthorizedOperation")},
			action: ActionDefer, codes: []ReasonCode{ReasonEvidenceError},
		},
		{
			name:   "metric error defers even with clean CloudTrail",
			ev:     Evidence{Instance: running(), MetricsErr: errors.New("Throttling: rate exceeded"), CloudTrail: cleanTrail()},
			action: ActionDefer, codes: []ReasonCode{ReasonEvidenceError},
		},
		{
			name:   "metrics not gathered defers and asks for them",
			ev:     Evidence{Instance: running(), CloudTrail: cleanTrail()},
			action: ActionDefer, codes: []ReasonCode{ReasonEvidenceError}, need: NeedMetrics,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Decide(tc.ev, s, now)
			if v.Action != tc.action {
				t.Errorf("action = %s, want %s (reasons %+v)", v.Action, tc.action, v.Reasons)
			}
			var codes []ReasonCode
			for _, r := range v.Reasons {
				codes = append(codes, r.Code)
				if r.Detail == "" {
					t.Errorf("reason %s has no detail", r.Code)
				}
			}
			if strings.Join(toStrings(codes), ",") != strings.Join(toStrings(tc.codes), ",") {
				t.Errorf("reasons = %v, want %v", codes, tc.codes)
			}
			if tc.action == ActionRemediate {
				if v.Target == nil {
					t.Fatalf("remediate verdict without a target")
				}
				want := MetadataOptions{HTTPTokens: TokensRequired, HopLimit: tc.targetHop, HTTPEndpoint: tc.targetEndp}
				if *v.Target != want {
					t.Errorf("target = %+v, want %+v", *v.Target, want)
				}
			} else if v.Target != nil {
				t.Errorf("%s verdict has a target %+v", v.Action, *v.Target)
			}
			if got := Next(tc.ev, s, now); got != tc.need {
				t.Errorf("Next = %d, want %d", got, tc.need)
			}
		})
	}
}

func toStrings(codes []ReasonCode) []string {
	out := make([]string, len(codes))
	for i, c := range codes {
		out[i] = string(c)
	}
	return out
}

// TestDecideNeverRemediatesOnMissingEvidence walks every combination of absent and
// failed evidence for an otherwise remediable instance: none may be remediated.
func TestDecideNeverRemediatesOnMissingEvidence(t *testing.T) {
	s := DefaultSettings()
	metrics := map[string]func(*Evidence){
		"metrics ok":      func(e *Evidence) { e.Metrics = healthyMetrics() },
		"metrics missing": func(e *Evidence) {},
		"metrics failed":  func(e *Evidence) { e.MetricsErr = errors.New("boom") },
	}
	trails := map[string]func(*Evidence){
		"trail ok":      func(e *Evidence) { e.CloudTrail = cleanTrail() },
		"trail missing": func(e *Evidence) {},
		"trail failed":  func(e *Evidence) { e.CloudTrailErr = errors.New("boom") },
	}
	for mName, m := range metrics {
		for tName, tr := range trails {
			ev := Evidence{Instance: running()}
			m(&ev)
			tr(&ev)
			v := Decide(ev, s, now)
			wantRemediate := mName == "metrics ok" && tName == "trail ok"
			if (v.Action == ActionRemediate) != wantRemediate {
				t.Errorf("%s, %s: action %s (%v)", mName, tName, v.Action, v.Reasons)
			}
		}
	}
}

func TestDecideSettingsChangeThresholds(t *testing.T) {
	s := DefaultSettings()
	s.MinObservedHours = 24
	s.MaxMetricStaleness = 12 * time.Hour
	s.HopLimit = 2
	s.ExemptTag = "security/imds-exempt"
	ev := Evidence{
		Instance:   running(withTag("imdsguard:exempt", "true")),
		Metrics:    &MetricUsage{ObservedHours: 30, LastDatapoint: ptime(now.Add(-10 * time.Hour))},
		CloudTrail: cleanTrail(),
	}
	v := Decide(ev, s, now)
	if v.Action != ActionRemediate || v.Target.HopLimit != 2 {
		t.Fatalf("got %s %+v, want remediate with hop limit 2", v.Action, v.Reasons)
	}
	ev.Instance.Tags["security/imds-exempt"] = "true"
	if v := Decide(ev, s, now); v.Primary() != ReasonExempt {
		t.Fatalf("custom exemption tag: got %s", v.Primary())
	}
}

func TestDecideDetails(t *testing.T) {
	s := DefaultSettings()
	v := Decide(Evidence{Instance: running(noProfile), Metrics: healthyMetrics()}, s, now)
	if got, want := v.Reasons[0].Detail, "0 IMDSv1 calls in 336 observed hours"; got != want {
		t.Errorf("detail = %q, want %q", got, want)
	}
	v = Decide(Evidence{Instance: running(withTag("imdsguard:exempt", "soon"))}, s, now)
	if !strings.Contains(v.Reasons[0].Detail, "not understood") {
		t.Errorf("unreadable exemption detail = %q, want it to say the value was not understood", v.Reasons[0].Detail)
	}
	v = Decide(Evidence{Instance: running(), Metrics: healthyMetrics(), CloudTrail: &CloudTrailUsage{
		V1Deliveries: 3, EventNames: []string{"GetObject"}, UserAgents: []string{"aws-sdk-java/1.11.0"}}}, s, now)
	for _, want := range []string{"3", "GetObject", "aws-sdk-java/1.11.0"} {
		if !strings.Contains(v.Reasons[0].Detail, want) {
			t.Errorf("CloudTrail detail %q lacks %q", v.Reasons[0].Detail, want)
		}
	}
	v = Decide(Evidence{InstanceID: "i-0000000000000dead"}, s, now)
	if !strings.Contains(v.Reasons[0].Detail, "i-0000000000000dead") {
		t.Errorf("not-found detail %q does not name the instance", v.Reasons[0].Detail)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		3 * time.Hour: "3h", 6*time.Hour + 39*time.Minute + 10*time.Second: "6h39m", 45 * time.Minute: "45m", 90 * time.Minute: "1h30m",
	} {
		if got := ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
