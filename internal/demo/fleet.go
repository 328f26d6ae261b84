// Package demo seeds a realistic sample fleet into the AWS emulators: one kind of
// instance per verdict rule and per rule conflict, each with the metric series and
// CloudTrail records that lead the guard to its verdict. `imdsguard demo` shows it, and
// the integration tests check every verdict on it.
package demo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

// Kind is one kind of instance in the sample fleet, with the verdict the guard must
// reach for it under the default settings.
type Kind struct {
	Name string
	Spec testsupport.InstanceSpec
	// Series gives the MetadataNoToken datapoint of each hour, oldest first, ending
	// SeriesEnd hours before the current hour; nil writes no datapoint.
	Series    func(hour int) (float64, bool)
	Hours     int
	SeriesEnd int
	// Deliveries are ec2RoleDelivery values of CloudTrail records made with the
	// instance's role credentials.
	Deliveries []string
	// FromElsewhere makes the IMDSv1 deliveries come from an address not the instance's.
	FromElsewhere bool
	// TrailDenied makes CloudTrail answer AccessDenied for the instance; MalformedTrail
	// adds a record whose JSON is broken.
	TrailDenied    bool
	MalformedTrail bool

	Want Want
}

// Want is the expected verdict.
type Want struct {
	Action policy.Action
	Codes  []policy.ReasonCode
	// Target is checked for remediate verdicts.
	Target *policy.MetadataOptions
}

const profile = "app-role"

func zeros(int) (float64, bool) { return 0, true }

func target(hop int32, endpoint string) *policy.MetadataOptions {
	return &policy.MetadataOptions{HTTPTokens: policy.TokensRequired, HopLimit: hop, HTTPEndpoint: endpoint}
}

func want(action policy.Action, codes ...policy.ReasonCode) Want {
	return Want{Action: action, Codes: codes}
}

func wantRemediate(t *policy.MetadataOptions, codes ...policy.ReasonCode) Want {
	return Want{Action: policy.ActionRemediate, Codes: codes, Target: t}
}

// Kinds lists every kind of instance in the sample fleet. today is the UTC date the
// fleet is seeded on, for the date exemptions.
func Kinds(today time.Time) []Kind {
	day := func(offset int) string { return today.AddDate(0, 0, offset).Format(time.DateOnly) }
	withTags := func(tags map[string]string) testsupport.InstanceSpec {
		return testsupport.InstanceSpec{Tags: tags, InstanceProfileName: profile, HopLimit: 2}
	}
	base := testsupport.InstanceSpec{InstanceProfileName: profile, HopLimit: 2}
	return []Kind{
		{Name: "gone", Spec: testsupport.InstanceSpec{State: policy.StateTerminated}, Series: zeros, Hours: 336,
			Want: want(policy.ActionSkip, policy.ReasonTerminated)},
		{Name: "already-v2", Spec: testsupport.InstanceSpec{HttpTokens: policy.TokensRequired}, Series: zeros, Hours: 336,
			Want: want(policy.ActionSkip, policy.ReasonCompliant)},
		{Name: "exempt", Spec: withTags(map[string]string{"imdsguard:exempt": "true"}), Series: zeros, Hours: 336,
			Want: want(policy.ActionSkip, policy.ReasonExempt)},
		{Name: "exempt-until-today", Spec: withTags(map[string]string{"imdsguard:exempt": day(0)}), Series: zeros, Hours: 336, Deliveries: []string{"2.0"},
			Want: want(policy.ActionSkip, policy.ReasonExempt)},
		{Name: "exempt-endpoint-off", Spec: testsupport.InstanceSpec{HttpEndpoint: policy.EndpointDisable, Tags: map[string]string{"imdsguard:exempt": "true"}},
			Want: want(policy.ActionSkip, policy.ReasonExempt)},
		{Name: "endpoint-off", Spec: testsupport.InstanceSpec{HttpEndpoint: policy.EndpointDisable, HopLimit: 3},
			Want: wantRemediate(target(1, policy.EndpointDisable), policy.ReasonEndpointDisabled)},
		{Name: "stopped", Spec: testsupport.InstanceSpec{State: policy.StateStopped, InstanceProfileName: profile}, Series: zeros, Hours: 336, SeriesEnd: 30,
			Want: want(policy.ActionDefer, policy.ReasonNotRunning)},
		{Name: "legacy-v1", Spec: base, Hours: 336, Deliveries: []string{"1.0"},
			Series: func(h int) (float64, bool) {
				if h%24 == 3 {
					return 17, true
				}
				return 0, true
			},
			Want: want(policy.ActionTicket, policy.ReasonIMDSv1UsedMetric)},
		{Name: "weekly-cron-v1", Spec: base, Hours: 336, Deliveries: []string{"2.0"},
			// A weekly job that still uses IMDSv1: easy to miss in a short window.
			Series: func(h int) (float64, bool) {
				if h%168 == 100 {
					return 2, true
				}
				return 0, true
			},
			Want: want(policy.ActionTicket, policy.ReasonIMDSv1UsedMetric)},
		{Name: "new-and-v1", Spec: base, Hours: 20,
			Series: func(h int) (float64, bool) { return float64(h % 2), true },
			Want:   want(policy.ActionTicket, policy.ReasonIMDSv1UsedMetric)},
		{Name: "new", Spec: base, Series: zeros, Hours: 48, Deliveries: []string{"2.0"},
			Want: want(policy.ActionDefer, policy.ReasonInsufficientMetrics)},
		{Name: "gappy", Spec: base, Hours: 336, Deliveries: []string{"2.0"},
			// Only every third hour was observed: 112 hours, not 336 zeros.
			Series: func(h int) (float64, bool) { return 0, h%3 == 0 },
			Want:   want(policy.ActionDefer, policy.ReasonInsufficientMetrics)},
		{Name: "no-metrics", Spec: base, Deliveries: []string{"2.0"},
			Want: want(policy.ActionDefer, policy.ReasonInsufficientMetrics)},
		{Name: "stale", Spec: base, Series: zeros, Hours: 300, SeriesEnd: 6, Deliveries: []string{"2.0"},
			Want: want(policy.ActionDefer, policy.ReasonStaleMetrics)},
		{Name: "sdk-v1", Spec: base, Series: zeros, Hours: 336, Deliveries: []string{"2.0", "1.0", "2.0"},
			Want: want(policy.ActionTicket, policy.ReasonIMDSv1UsedCloudTrail)},
		{Name: "stolen-creds", Spec: base, Series: zeros, Hours: 336, Deliveries: []string{"1.0"}, FromElsewhere: true,
			Want: want(policy.ActionTicket, policy.ReasonIMDSv1UsedCloudTrail, policy.ReasonPossibleCredentialTheft)},
		{Name: "trail-denied", Spec: base, Series: zeros, Hours: 336, TrailDenied: true,
			Want: want(policy.ActionDefer, policy.ReasonCloudTrailUnavailable)},
		{Name: "trail-malformed", Spec: base, Series: zeros, Hours: 336, Deliveries: []string{"2.0"}, MalformedTrail: true,
			Want: want(policy.ActionDefer, policy.ReasonCloudTrailUnavailable)},
		{Name: "web", Spec: base, Series: zeros, Hours: 336, Deliveries: []string{"2.0", "2.0"},
			Want: wantRemediate(target(1, policy.EndpointEnabled), policy.ReasonIMDSv1Unused)},
		{Name: "static-site", Spec: testsupport.InstanceSpec{HopLimit: 1}, Series: zeros, Hours: 200,
			Want: wantRemediate(target(1, policy.EndpointEnabled), policy.ReasonIMDSv1Unused, policy.ReasonNoInstanceProfile)},
		{Name: "exemption-lapsed", Spec: withTags(map[string]string{"imdsguard:exempt": day(-1)}), Series: zeros, Hours: 336, Deliveries: []string{"2.0"},
			Want: wantRemediate(target(1, policy.EndpointEnabled), policy.ReasonIMDSv1Unused, policy.ReasonExemptionExpired)},
		{Name: "eks-node", Spec: testsupport.InstanceSpec{HopLimit: 1, InstanceProfileName: profile, Tags: map[string]string{"eks:cluster-name": "prod"}},
			Series: zeros, Hours: 336, Deliveries: []string{"2.0"},
			Want: wantRemediate(target(2, policy.EndpointEnabled), policy.ReasonIMDSv1Unused, policy.ReasonContainerHost)},
		{Name: "k8s-node-hop3", Spec: testsupport.InstanceSpec{HopLimit: 3, InstanceProfileName: profile, Tags: map[string]string{"kubernetes.io/cluster/prod": "owned"}},
			Series: zeros, Hours: 336, Deliveries: []string{"2.0"},
			Want: wantRemediate(target(3, policy.EndpointEnabled), policy.ReasonIMDSv1Unused, policy.ReasonContainerHost)},
	}
}

// KindsNamed is Kinds restricted to the named kinds; no names means every kind.
func KindsNamed(today time.Time, names ...string) []Kind {
	kinds := Kinds(today)
	if len(names) == 0 {
		return kinds
	}
	return slices.DeleteFunc(kinds, func(k Kind) bool { return !slices.Contains(names, k.Name) })
}

// Seeded is an instance of the fleet, with the kind it was made as.
type Seeded struct {
	testsupport.SeededInstance
	Name string
	Kind Kind
}

// Clients are the emulated services the fleet is written to.
type Clients struct {
	EC2        *ec2.Client
	CloudWatch *cloudwatch.Client
	CloudTrail *testsupport.CloudTrail
}

// Seed writes copies instances of every kind in kinds, named "<kind>-<n>", with their
// metrics and CloudTrail records relative to now.
func Seed(ctx context.Context, c Clients, kinds []Kind, copies int, now time.Time) ([]Seeded, error) {
	hour := now.UTC().Truncate(time.Hour)
	var out []Seeded
	denied := map[string]bool{}
	for _, k := range kinds {
		for n := 1; n <= copies; n++ {
			spec := k.Spec
			spec.Name = fmt.Sprintf("%s-%d", k.Name, n)
			spec.Tags = cloneTags(spec.Tags)
			seeded, err := testsupport.SeedInstances(ctx, c.EC2, spec)
			if err != nil {
				return nil, fmt.Errorf("seeding %s: %w", spec.Name, err)
			}
			for _, inst := range seeded {
				if err := seedEvidence(ctx, c, k, inst, hour, now); err != nil {
					return nil, fmt.Errorf("seeding evidence of %s (%s): %w", spec.Name, inst.ID, err)
				}
				if k.TrailDenied {
					denied[inst.ID] = true
				}
				out = append(out, Seeded{SeededInstance: inst, Name: spec.Name, Kind: k})
			}
		}
	}
	c.CloudTrail.SetFault(func(r testsupport.LookupRequest) *testsupport.APIError {
		if r.AttributeKey == "Username" && denied[r.AttributeValue] {
			return &testsupport.APIError{Code: "AccessDeniedException", Status: 400,
				Message: "User: arn:aws:sts::123456789012:assumed-role/auditor/x is not authorized to perform: cloudtrail:LookupEvents"}
		}
		return nil
	})
	return out, nil
}

func seedEvidence(ctx context.Context, c Clients, k Kind, inst testsupport.SeededInstance, hour, now time.Time) error {
	if k.Series != nil {
		end := hour.Add(time.Duration(1-k.SeriesEnd) * time.Hour)
		if err := testsupport.PutMetadataNoToken(ctx, c.CloudWatch, inst.ID, testsupport.HourlyPoints(end, k.Hours, k.Series)); err != nil {
			return err
		}
	}
	for i, delivery := range k.Deliveries {
		source := inst.PrivateIP
		if delivery == "1.0" && k.FromElsewhere {
			source = "198.51.100.23"
		}
		c.CloudTrail.AddEvent(testsupport.RoleDeliveryEvent(testsupport.RoleDelivery{
			InstanceID: inst.ID, RoleName: profile, Delivery: delivery,
			EventName: []string{"GetObject", "DescribeInstances", "PutLogEvents"}[i%3],
			UserAgent: userAgent(delivery), SourceIP: source,
			Time: now.Add(-time.Duration(2+i*7) * time.Hour),
		}))
	}
	if k.MalformedTrail {
		c.CloudTrail.AddEvent(testsupport.Event{
			EventName: "GetObject", EventTime: now.Add(-time.Hour), Username: inst.ID,
			CloudTrailEvent: `{"eventVersion":"1.08","userIdentity":{"sessionContext":`,
		})
	}
	return nil
}

func userAgent(delivery string) string {
	if delivery == "1.0" {
		return "aws-sdk-java/1.11.500 Linux/4.14 OpenJDK_64-Bit_Server_VM/25.252"
	}
	return "aws-sdk-go-v2/1.30.0 os/linux lang/go#1.22"
}

func cloneTags(tags map[string]string) map[string]string {
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		out[k] = v
	}
	return out
}
