// Package demo seeds a realistic sample fleet into the AWS emulators: one kind of
// instance per verdict rule and per rule conflict, each with the metric series and
// CloudTrail records that lead the guard to its verdict. `imdsguard demo` shows it, and
// the integration tests check every verdict on it.
package demo

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// Kind is one kind of instance in the sample fleet. The verdict the guard must reach for
// each is the tests' to know (package testsupport/fleetwant).
type Kind struct {
	Name string
	Spec fakeaws.InstanceSpec
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
	// Group names the Auto Scaling group the kind's instances run in (GroupKinds); empty
	// for an instance launched on its own. Its Spec is then unused: the group's launch
	// template says how the instances launch.
	Group string
}

// GroupKinds are the instances of the sample fleet that Auto Scaling groups run, each
// group from a launch template of its own with HttpTokens optional (DESIGN.md section
// 10): web-asg, whose instances never use IMDSv1, so its template gets a fixed default
// version; and batch-asg, one kind of whose instances still uses IMDSv1, so its template
// is ticketed, naming them, and left as it is.
func GroupKinds() []Kind {
	return []Kind{
		{Name: "asg-web", Group: "web-asg", Series: zeros, Hours: 336},
		{Name: "asg-batch", Group: "batch-asg", Series: zeros, Hours: 336},
		{Name: "asg-batch-v1", Group: "batch-asg", Hours: 336,
			Series: func(h int) (float64, bool) {
				if h%24 == 5 {
					return 4, true
				}
				return 0, true
			}},
	}
}

const profile = "app-role"

func zeros(int) (float64, bool) { return 0, true }

// Kinds lists every kind of instance in the sample fleet. today is the UTC date the
// fleet is seeded on, for the date exemptions.
func Kinds(today time.Time) []Kind {
	day := func(offset int) string { return today.AddDate(0, 0, offset).Format(time.DateOnly) }
	withTags := func(tags map[string]string) fakeaws.InstanceSpec {
		return fakeaws.InstanceSpec{Tags: tags, InstanceProfileName: profile, HopLimit: 2}
	}
	base := fakeaws.InstanceSpec{InstanceProfileName: profile, HopLimit: 2}
	return []Kind{
		{Name: "gone", Spec: fakeaws.InstanceSpec{State: policy.StateTerminated}, Series: zeros, Hours: 336},
		{Name: "already-v2", Spec: fakeaws.InstanceSpec{HttpTokens: policy.TokensRequired}, Series: zeros, Hours: 336},
		{Name: "exempt", Spec: withTags(map[string]string{"imdsguard:exempt": "true"}), Series: zeros, Hours: 336},
		{Name: "exempt-until-today", Spec: withTags(map[string]string{"imdsguard:exempt": day(0)}), Series: zeros, Hours: 336, Deliveries: []string{"2.0"}},
		{Name: "exempt-endpoint-off", Spec: fakeaws.InstanceSpec{HttpEndpoint: policy.EndpointDisable, Tags: map[string]string{"imdsguard:exempt": "true"}}},
		{Name: "endpoint-off", Spec: fakeaws.InstanceSpec{HttpEndpoint: policy.EndpointDisable, HopLimit: 3}},
		{Name: "stopped", Spec: fakeaws.InstanceSpec{State: policy.StateStopped, InstanceProfileName: profile}, Series: zeros, Hours: 336, SeriesEnd: 30},
		{Name: "legacy-v1", Spec: base, Hours: 336, Deliveries: []string{"1.0"},
			Series: func(h int) (float64, bool) {
				if h%24 == 3 {
					return 17, true
				}
				return 0, true
			}},
		{Name: "weekly-cron-v1", Spec: base, Hours: 336, Deliveries: []string{"2.0"},
			// A weekly job that still uses IMDSv1: easy to miss in a short window.
			Series: func(h int) (float64, bool) {
				if h%168 == 100 {
					return 2, true
				}
				return 0, true
			}},
		{Name: "new-and-v1", Spec: base, Hours: 20,
			Series: func(h int) (float64, bool) { return float64(h % 2), true }},
		{Name: "new", Spec: base, Series: zeros, Hours: 48, Deliveries: []string{"2.0"}},
		{Name: "gappy", Spec: base, Hours: 336, Deliveries: []string{"2.0"},
			// Only every third hour was observed: 112 hours, not 336 zeros.
			Series: func(h int) (float64, bool) { return 0, h%3 == 0 }},
		{Name: "no-metrics", Spec: base, Deliveries: []string{"2.0"}},
		{Name: "stale", Spec: base, Series: zeros, Hours: 300, SeriesEnd: 6, Deliveries: []string{"2.0"}},
		{Name: "sdk-v1", Spec: base, Series: zeros, Hours: 336, Deliveries: []string{"2.0", "1.0", "2.0"}},
		{Name: "stolen-creds", Spec: base, Series: zeros, Hours: 336, Deliveries: []string{"1.0"}, FromElsewhere: true},
		{Name: "trail-denied", Spec: base, Series: zeros, Hours: 336, TrailDenied: true},
		{Name: "trail-malformed", Spec: base, Series: zeros, Hours: 336, Deliveries: []string{"2.0"}, MalformedTrail: true},
		{Name: "web", Spec: base, Series: zeros, Hours: 336, Deliveries: []string{"2.0", "2.0"}},
		{Name: "static-site", Spec: fakeaws.InstanceSpec{HopLimit: 1}, Series: zeros, Hours: 200},
		{Name: "exemption-lapsed", Spec: withTags(map[string]string{"imdsguard:exempt": day(-1)}), Series: zeros, Hours: 336, Deliveries: []string{"2.0"}},
		{Name: "eks-node", Spec: fakeaws.InstanceSpec{HopLimit: 1, InstanceProfileName: profile, Tags: map[string]string{"eks:cluster-name": "prod"}},
			Series: zeros, Hours: 336, Deliveries: []string{"2.0"}},
		{Name: "k8s-node-hop3", Spec: fakeaws.InstanceSpec{HopLimit: 3, InstanceProfileName: profile, Tags: map[string]string{"kubernetes.io/cluster/prod": "owned"}},
			Series: zeros, Hours: 336, Deliveries: []string{"2.0"}},
	}
}

// KindsNamed is Kinds restricted to the named kinds, which may name GroupKinds too; no
// names means every kind of Kinds.
func KindsNamed(today time.Time, names ...string) []Kind {
	kinds := Kinds(today)
	if len(names) == 0 {
		return kinds
	}
	return slices.DeleteFunc(append(kinds, GroupKinds()...), func(k Kind) bool { return !slices.Contains(names, k.Name) })
}

// Seeded is an instance of the fleet, with the kind it was made as.
type Seeded struct {
	fakeaws.SeededInstance
	Name string
	Kind Kind
}

// Clients are the emulated services the fleet is written to.
type Clients struct {
	EC2        *ec2.Client
	CloudWatch *cloudwatch.Client
	CloudTrail *fakeaws.CloudTrail
}

// Seed writes copies instances of every kind in kinds, named "<kind>-<n>", with their
// metrics and CloudTrail records relative to now.
func Seed(ctx context.Context, c Clients, kinds []Kind, copies int, now time.Time) ([]Seeded, error) {
	hour := now.UTC().Truncate(time.Hour)
	var out []Seeded
	denied := map[string]bool{}
	grouped, err := seedGroups(ctx, c, kinds, copies, hour, now)
	if err != nil {
		return nil, err
	}
	out = append(out, grouped...)
	for _, k := range kinds {
		if k.Group != "" {
			continue
		}
		for n := 1; n <= copies; n++ {
			spec := k.Spec
			spec.Name = fmt.Sprintf("%s-%d", k.Name, n)
			spec.Tags = cloneTags(spec.Tags)
			seeded, err := fakeaws.SeedInstances(ctx, c.EC2, spec)
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
	c.CloudTrail.SetFault(func(r fakeaws.LookupRequest) *fakeaws.APIError {
		if r.AttributeKey == "Username" && denied[r.AttributeValue] {
			return &fakeaws.APIError{Code: "AccessDeniedException", Status: 400,
				Message: "User: arn:aws:sts::123456789012:assumed-role/auditor/x is not authorized to perform: cloudtrail:LookupEvents"}
		}
		return nil
	})
	return out, nil
}

// seedGroups makes the Auto Scaling groups the kinds name, each sized for copies
// instances of every kind in it, and gives each kind its share of the group's instances,
// with their evidence.
func seedGroups(ctx context.Context, c Clients, kinds []Kind, copies int, hour, now time.Time) ([]Seeded, error) {
	var groups []string
	members := map[string][]Kind{}
	for _, k := range kinds {
		if k.Group == "" {
			continue
		}
		if members[k.Group] == nil {
			groups = append(groups, k.Group)
		}
		members[k.Group] = append(members[k.Group], k)
	}
	var out []Seeded
	for _, name := range groups {
		g, err := fakeaws.SeedGroup(ctx, c.EC2, fakeaws.GroupSpec{Name: name, Template: strings.TrimSuffix(name, "-asg") + "-lt",
			HopLimit: 2, Size: int32(copies * len(members[name]))})
		if err != nil {
			return nil, err
		}
		for i, inst := range g.Instances {
			k := members[name][i/copies]
			instName := fmt.Sprintf("%s-%d", k.Name, i%copies+1)
			if _, err := c.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{inst.ID},
				Tags: []ec2types.Tag{{Key: aws.String("Name"), Value: aws.String(instName)}}}); err != nil {
				return nil, fmt.Errorf("naming %s: %w", inst.ID, err)
			}
			if err := seedEvidence(ctx, c, k, inst, hour, now); err != nil {
				return nil, fmt.Errorf("seeding evidence of %s (%s): %w", k.Name, inst.ID, err)
			}
			out = append(out, Seeded{SeededInstance: inst, Name: instName, Kind: k})
		}
	}
	return out, nil
}

func seedEvidence(ctx context.Context, c Clients, k Kind, inst fakeaws.SeededInstance, hour, now time.Time) error {
	if k.Series != nil {
		end := hour.Add(time.Duration(1-k.SeriesEnd) * time.Hour)
		if err := fakeaws.PutMetadataNoToken(ctx, c.CloudWatch, inst.ID, fakeaws.HourlyPoints(end, k.Hours, k.Series)); err != nil {
			return err
		}
	}
	for i, delivery := range k.Deliveries {
		source := inst.PrivateIP
		if delivery == "1.0" && k.FromElsewhere {
			source = "198.51.100.23"
		}
		c.CloudTrail.AddEvent(fakeaws.RoleDeliveryEvent(fakeaws.RoleDelivery{
			InstanceID: inst.ID, RoleName: profile, Delivery: delivery,
			EventName: []string{"GetObject", "DescribeInstances", "PutLogEvents"}[i%3],
			UserAgent: userAgent(delivery), SourceIP: source,
			Time: now.Add(-time.Duration(2+i*7) * time.Hour),
		}))
	}
	if k.MalformedTrail {
		c.CloudTrail.AddEvent(fakeaws.Event{
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
