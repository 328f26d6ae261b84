package ticket

import (
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/message"
)

func TestEvidenceDigest(t *testing.T) {
	digest := func(v message.Verdict) string { return Compose(v, ComposeOptions{}).EvidenceDigest() }
	base := theftVerdict()
	want := digest(base)
	if len(want) != 64 {
		t.Fatalf("digest %q is not a hex SHA-256", want)
	}

	same := map[string]func(*message.Verdict){
		"decision id":    func(v *message.Verdict) { v.DecisionID = "0192f0a1b2d00-fedcba9876543210" },
		"created at":     func(v *message.Verdict) { v.CreatedAt = v.CreatedAt.Add(time.Hour) },
		"last datapoint": func(v *message.Verdict) { v.Evidence.LastDatapoint = ptr(at("2026-11-22T10:00:00Z")) },
		"last v1 use":    func(v *message.Verdict) { v.Evidence.LastV1Use = ptr(at("2026-11-22T09:30:00Z")) },
		"observed hours": func(v *message.Verdict) { v.Evidence.ObservedHours = ptr(201) },
		"detail wording": func(v *message.Verdict) { v.Reasons[0].Detail += " (again)" },
		"v2 deliveries":  func(v *message.Verdict) { v.Evidence.CloudTrail.V2Deliveries = 7 },
		"v1 deliveries":  func(v *message.Verdict) { v.Evidence.CloudTrail.V1Deliveries += 5 },
		"name":           func(v *message.Verdict) { v.Name = "renamed" },
		"ua order": func(v *message.Verdict) {
			v.Evidence.CloudTrail.UserAgents = []string{uaJava, uaBoto, uaJava}
		},
		"secondary order": func(v *message.Verdict) {
			v.Reasons[1], v.Reasons[2] = v.Reasons[2], v.Reasons[1]
		},
	}
	for name, change := range same {
		v := theftVerdict()
		change(&v)
		if got := digest(v); got != want {
			t.Errorf("%s changed the digest", name)
		}
	}
	if got := Compose(base, ComposeOptions{DryRun: true, ExemptTag: "x"}).EvidenceDigest(); got != want {
		t.Error("compose options changed the digest")
	}

	different := map[string]func(*message.Verdict){
		"new user agent": func(v *message.Verdict) {
			v.Evidence.CloudTrail.UserAgents = append(v.Evidence.CloudTrail.UserAgents, uaCLI)
		},
		"metric now shows v1": func(v *message.Verdict) { v.Evidence.MetadataNoTokenSum = ptr(1.0) },
		"new source ip": func(v *message.Verdict) {
			v.Evidence.CloudTrail.SourceIPs = append(v.Evidence.CloudTrail.SourceIPs, "198.51.100.7")
		},
		"reason code gone": func(v *message.Verdict) { v.Reasons = v.Reasons[:2] },
		"other instance":   func(v *message.Verdict) { v.InstanceID = "i-0fed1234abc567891" },
	}
	for name, change := range different {
		v := theftVerdict()
		change(&v)
		if got := digest(v); got == want {
			t.Errorf("%s did not change the digest", name)
		}
	}

	// The metric ticket: neither a later datapoint nor a higher count over the rolling
	// window is new evidence; IMDSv1 was already known to be in use.
	m := metricVerdict()
	mWant := digest(m)
	m.Evidence.LastDatapoint = ptr(at("2026-11-22T10:00:00Z"))
	m.DecisionID, m.CreatedAt = "0192f0a1b2d01-fedcba9876543210", m.CreatedAt.Add(time.Hour)
	if digest(m) != mWant {
		t.Error("metric ticket: a repeat sweep changed the digest")
	}
	m.Evidence.MetadataNoTokenSum = ptr(43.0)
	if digest(m) != mWant {
		t.Error("metric ticket: a higher MetadataNoToken sum changed the digest")
	}
}
