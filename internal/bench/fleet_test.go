package bench

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// instanceProfile is the instance profile (and role) of the instances that have one.
const instanceProfile = "app-role"

// maxRunBatch is the most instances one RunInstances call launches (SeedInstances'
// batch, and EC2's limit).
const maxRunBatch = 1000

// group is one kind of instance in the benchmark fleet, with its share of every 100
// instances. variant gives the evidence of the i-th instance of the group.
type group struct {
	name    string
	per100  int
	spec    fakeaws.InstanceSpec
	variant func(i int) variant
}

// variant is the evidence seeded for one instance and the action the guard must reach.
type variant struct {
	series     *series
	deliveries []delivery // newest first
	want       policy.Action
}

// series is an hourly MetadataNoToken series of hours points, the newest endsAgo hours
// before the current hour (0: in the current hour).
type series struct {
	hours   int
	endsAgo int
	value   func(hour int) (float64, bool)
}

// delivery is one CloudTrail record made with the instance role's credentials.
type delivery struct {
	version string // ec2RoleDelivery: "1.0" over IMDSv1, "2.0" over IMDSv2
	foreign bool   // made from an address that is not the instance's
}

func zeros(int) (float64, bool) { return 0, true }

var (
	// full is 336 hours of zeros ending in the current hour: provably no IMDSv1 use.
	full = &series{hours: 336, value: zeros}
	// holey misses every tenth hour, still well above min_observed_hours.
	holey = &series{hours: 336, value: func(h int) (float64, bool) { return 0, h%10 != 0 }}
	// usesV1 counts a few IMDSv1 calls once a day (a cron job with an old SDK).
	usesV1 = &series{hours: 336, value: func(h int) (float64, bool) {
		if h%24 == 9 {
			return 3, true
		}
		return 0, true
	}}
	// gappy has one hour in three: 112 observed hours, below min_observed_hours.
	gappy = &series{hours: 336, value: func(h int) (float64, bool) { return 0, h%3 == 0 }}
	// short is an instance launched two days ago.
	short = &series{hours: 48, value: zeros}
	// stale stopped reporting six hours ago.
	stale = &series{hours: 300, endsAgo: 6, value: zeros}
	// stoppedSeries ends when the instance was stopped, 30 hours ago.
	stoppedSeries = &series{hours: 306, endsAgo: 30, value: zeros}
)

func v2s(n int) []delivery {
	out := make([]delivery, n)
	for i := range out {
		out[i] = delivery{version: "2.0"}
	}
	return out
}

// mix is the benchmark fleet, per 100 instances: mostly optional instances without
// evidence of IMDSv1 use, a fifth with an instance profile (so CloudTrail is read for
// most of them), and the instances every real account has that the rules settle from
// the inventory alone.
var mix = []group{
	{name: "web", per100: 55,
		spec: fakeaws.InstanceSpec{HttpTokens: policy.TokensOptional, HopLimit: 2},
		variant: func(i int) variant {
			switch i % 20 {
			case 13:
				return variant{series: holey, want: policy.ActionRemediate}
			case 14, 15:
				return variant{series: usesV1, want: policy.ActionTicket}
			case 16:
				return variant{series: gappy, want: policy.ActionDefer}
			case 17:
				return variant{series: short, want: policy.ActionDefer}
			case 18:
				return variant{series: stale, want: policy.ActionDefer}
			default:
				return variant{series: full, want: policy.ActionRemediate}
			}
		}},
	{name: "app", per100: 20,
		spec: fakeaws.InstanceSpec{HttpTokens: policy.TokensOptional, HopLimit: 2, InstanceProfileName: instanceProfile},
		variant: func(i int) variant {
			switch i % 20 {
			case 0: // the metric settles it; CloudTrail is not read
				return variant{series: usesV1, deliveries: []delivery{{version: "1.0"}, {version: "2.0"}}, want: policy.ActionTicket}
			case 1:
				return variant{series: short, deliveries: v2s(2), want: policy.ActionDefer}
			}
			// The rest reach the CloudTrail rules (9-11).
			switch (i%20 - 2) % 18 {
			case 9, 10: // the role was not used in the window
				return variant{series: full, want: policy.ActionRemediate}
			case 11: // busy: two pages of IMDSv2 deliveries
				return variant{series: holey, deliveries: v2s(75), want: policy.ActionRemediate}
			case 12, 13, 14: // an old SDK on the instance
				return variant{series: full, deliveries: []delivery{{version: "2.0"}, {version: "1.0"}, {version: "2.0"}}, want: policy.ActionTicket}
			case 15: // IMDSv1 credentials used from elsewhere
				return variant{series: full, deliveries: []delivery{{version: "1.0", foreign: true}}, want: policy.ActionTicket}
			case 16: // the IMDSv1 delivery is on the second page
				return variant{series: full, deliveries: append(v2s(60), delivery{version: "1.0"}), want: policy.ActionTicket}
			default:
				return variant{series: full, deliveries: v2s(3), want: policy.ActionRemediate}
			}
		}},
	{name: "hardened", per100: 10,
		spec: fakeaws.InstanceSpec{HttpTokens: policy.TokensRequired, HopLimit: 1, InstanceProfileName: instanceProfile},
		variant: func(int) variant {
			return variant{series: full, deliveries: v2s(2), want: policy.ActionSkip}
		}},
	{name: "stopped", per100: 5,
		spec:    fakeaws.InstanceSpec{HttpTokens: policy.TokensOptional, HopLimit: 2, InstanceProfileName: instanceProfile, State: policy.StateStopped},
		variant: func(int) variant { return variant{series: stoppedSeries, want: policy.ActionDefer} }},
	{name: "legacy-exempt", per100: 3,
		spec: fakeaws.InstanceSpec{HttpTokens: policy.TokensOptional, HopLimit: 2, InstanceProfileName: instanceProfile,
			Tags: map[string]string{"imdsguard:exempt": "true"}},
		variant: func(int) variant {
			return variant{series: usesV1, deliveries: []delivery{{version: "1.0"}}, want: policy.ActionSkip}
		}},
	{name: "endpoint-off", per100: 3,
		spec:    fakeaws.InstanceSpec{HttpTokens: policy.TokensOptional, HopLimit: 1, HttpEndpoint: policy.EndpointDisable},
		variant: func(int) variant { return variant{want: policy.ActionRemediate} }},
	{name: "eks-node", per100: 2,
		spec: fakeaws.InstanceSpec{HttpTokens: policy.TokensOptional, HopLimit: 2, InstanceProfileName: instanceProfile,
			Tags: map[string]string{"eks:cluster-name": "prod"}},
		variant: func(int) variant { return variant{series: full, deliveries: v2s(2), want: policy.ActionRemediate} }},
	{name: "gone", per100: 2,
		spec:    fakeaws.InstanceSpec{State: policy.StateTerminated},
		variant: func(int) variant { return variant{want: policy.ActionSkip} }},
}

// seededInstance is one instance of the fleet with the evidence seeded for it.
type seededInstance struct {
	fakeaws.SeededInstance
	group string
	variant
}

// fleet is a seeded benchmark fleet.
type fleet struct {
	n               int
	instances       map[string]*seededInstance
	reservationSize int // instances per RunInstances call
	reservations    int // RunInstances calls, each one moto reservation
	events          int // CloudTrail records
	points          int // MetadataNoToken datapoints
	seedTime        time.Duration
	cloudWatch      *fakeaws.CloudWatch
	cloudTrail      *fakeaws.CloudTrail

	mu      sync.Mutex
	lookups []fakeaws.LookupRequest // every LookupEvents request, in arrival order
	metrics []url.Values            // the form of every GetMetricData request, in arrival order
}

// observeMetrics records a GetMetricData request and lets the stand-in serve it.
func (f *fleet) observeMetrics(r fakeaws.CloudWatchRequest) *fakeaws.APIError {
	if r.Action == "GetMetricData" {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.metrics = append(f.metrics, maps.Clone(r.Form))
	}
	return nil
}

// metricRequestsSince returns the GetMetricData requests after the first n.
func (f *fleet) metricRequestsSince(n int) []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.metrics[n:])
}

func (f *fleet) metricRequestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.metrics)
}

// observeLookup records a LookupEvents request and lets the stand-in serve it.
func (f *fleet) observeLookup(r fakeaws.LookupRequest) *fakeaws.APIError {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups = append(f.lookups, r)
	return nil
}

// lookupsSince returns the LookupEvents requests after the first n.
func (f *fleet) lookupsSince(n int) []fakeaws.LookupRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lookups[n:])
}

func (f *fleet) lookupCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.lookups)
}

func (f *fleet) close() {
	f.cloudWatch.Close()
	f.cloudTrail.Close()
}

// counts splits n instances over the groups by their share of 100, so that the counts
// add up to n for any n.
func counts(n int) []int {
	out := make([]int, len(mix))
	cum := 0
	for i, g := range mix {
		before := n * cum / 100
		cum += g.per100
		out[i] = n*cum/100 - before
	}
	return out
}

// seedFleet launches n instances in moto through SeedInstances, in RunInstances calls
// of at most reservationSize (1 to 1000) instances, and seeds their metrics into a new
// CloudWatch stand-in, in process, and their credential deliveries into a new
// CloudTrail stand-in. now is the seeding time: the metric series end in its hour and
// the CloudTrail records precede it.
func seedFleet(ctx context.Context, ec2Client *ec2.Client, n, reservationSize int, now time.Time) (*fleet, error) {
	if total := sumShares(); total != 100 {
		return nil, fmt.Errorf("the fleet mix adds up to %d per 100", total)
	}
	if reservationSize < 1 || reservationSize > maxRunBatch {
		return nil, fmt.Errorf("reservation size %d is not 1 to %d", reservationSize, maxRunBatch)
	}
	start := time.Now()
	f := &fleet{n: n, reservationSize: reservationSize, instances: make(map[string]*seededInstance, n)}
	var all []*seededInstance
	for i, count := range counts(n) {
		g := mix[i]
		if count == 0 {
			continue
		}
		// No Name tag: moto renders an instance's tags by scanning every tag in the
		// region, so tagging all 10,000 instances makes one DescribeInstances walk take
		// many minutes of emulator time. Only the instances the rules read tags of have any.
		var seeded []fakeaws.SeededInstance
		for left := count; left > 0; left -= reservationSize {
			spec := g.spec
			spec.Count = min(left, reservationSize)
			batch, err := fakeaws.SeedInstances(ctx, ec2Client, spec)
			if err != nil {
				return nil, fmt.Errorf("seeding %d %s instances: %w", spec.Count, g.name, err)
			}
			if len(batch) != spec.Count {
				return nil, fmt.Errorf("seeding %s: asked for %d instances, moto launched %d", g.name, spec.Count, len(batch))
			}
			f.reservations++
			seeded = append(seeded, batch...)
		}
		for j, s := range seeded {
			inst := &seededInstance{SeededInstance: s, group: g.name, variant: g.variant(j)}
			f.instances[s.ID] = inst
			all = append(all, inst)
		}
	}
	if len(f.instances) != n {
		return nil, fmt.Errorf("seeded %d distinct instances, want %d", len(f.instances), n)
	}

	f.cloudWatch = fakeaws.NewCloudWatch()
	f.cloudWatch.SetFault(f.observeMetrics) // observes only: never fails a request
	f.cloudTrail = fakeaws.NewCloudTrail()
	f.cloudTrail.SetFault(f.observeLookup) // observes only: never fails a request
	hour := now.UTC().Truncate(time.Hour)
	var events []fakeaws.Event
	for _, inst := range all {
		if s := inst.series; s != nil {
			// HourlyPoints puts the newest point one hour before end: end one hour after
			// the current hour's start puts it in the current hour.
			end := hour.Add(time.Duration(1-s.endsAgo) * time.Hour)
			pts := fakeaws.HourlyPoints(end, s.hours, s.value)
			f.cloudWatch.PutPoints(fakeaws.MetadataNoTokenNamespace, fakeaws.MetadataNoTokenMetric,
				map[string]string{fakeaws.MetadataNoTokenDimension: inst.ID}, pts)
			f.points += len(pts)
		}
		events = append(events, deliveryEvents(inst, now)...)
	}
	// The stand-in keeps its events sorted by time: adding them oldest first appends.
	slices.SortStableFunc(events, func(a, b fakeaws.Event) int { return a.EventTime.Compare(b.EventTime) })
	for _, ev := range events {
		f.cloudTrail.AddEvent(ev)
	}
	f.events = len(events)
	f.seedTime = time.Since(start)
	return f, nil
}

func sumShares() int {
	total := 0
	for _, g := range mix {
		total += g.per100
	}
	return total
}

// deliveryEvents are the CloudTrail records of an instance's deliveries, newest first,
// spread over the 14 days before now.
func deliveryEvents(inst *seededInstance, now time.Time) []fakeaws.Event {
	if len(inst.deliveries) == 0 {
		return nil
	}
	spacing := min(7*time.Hour, 300*time.Hour/time.Duration(len(inst.deliveries)))
	out := make([]fakeaws.Event, len(inst.deliveries))
	for k, d := range inst.deliveries {
		source := inst.PrivateIP
		if d.foreign {
			source = "198.51.100.23"
		}
		out[k] = fakeaws.RoleDeliveryEvent(fakeaws.RoleDelivery{
			InstanceID: inst.ID,
			RoleName:   instanceProfile,
			Delivery:   d.version,
			EventName:  []string{"GetObject", "DescribeInstances", "PutLogEvents"}[k%3],
			UserAgent:  userAgent(d.version),
			SourceIP:   source,
			Time:       now.Add(-time.Hour - time.Duration(k)*spacing),
		})
	}
	return out
}

func userAgent(delivery string) string {
	if delivery == "1.0" {
		return "aws-sdk-java/1.11.500 Linux/4.14 OpenJDK_64-Bit_Server_VM/25.252"
	}
	return "aws-sdk-go-v2/1.30.0 os/linux lang/go#1.22"
}

// lookupPages is how many LookupEvents pages (50 events each) reading all of an
// instance's records takes: at least one, even when there are none.
func lookupPages(events int) int {
	return max(1, (events+49)/50)
}

// ec2Client is an EC2 client for seeding moto, with throw-away credentials.
func ec2Client(motoURL string) *ec2.Client {
	return ec2.NewFromConfig(fakeaws.AWSConfig("us-east-1"), func(o *ec2.Options) {
		o.BaseEndpoint = aws.String(motoURL)
	})
}
