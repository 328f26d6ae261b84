package evidence_test

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

// motoAccount is the account moto owns every reservation with.
const motoAccount = "123456789012"

const describeOp = "ec2:DescribeInstances"

func ids(seeded []fakeaws.SeededInstance) []string {
	out := make([]string, len(seeded))
	for i, s := range seeded {
		out[i] = s.ID
	}
	return out
}

func instanceIDs(instances []policy.Instance) []string {
	out := make([]string, len(instances))
	for i, inst := range instances {
		out[i] = inst.InstanceID
	}
	return out
}

// unknownIDs returns n well-formed instance ids that moto does not know.
func unknownIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("i-0feed%012x", i)
	}
	return out
}

// brief shows a long id list by its length and ends.
func brief(ids []string) string {
	if len(ids) <= 4 {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("%d ids [%s %s ... %s]", len(ids), ids[0], ids[1], ids[len(ids)-1])
}

// TestInventoryMapsEveryField seeds one instance per shape and checks every field of the
// policy.Instance that the inventory builds from DescribeInstances.
func TestInventoryMapsEveryField(t *testing.T) {
	const region = "eu-west-1" // not the SDK's or moto's default: the region must be the one asked for
	tests := []struct {
		name string
		spec fakeaws.InstanceSpec
		want policy.Instance // InstanceID, LaunchTime and Addresses are filled from moto
	}{
		{
			name: "EC2 defaults, no tags, no profile",
			spec: fakeaws.InstanceSpec{},
			want: policy.Instance{
				State:   "running",
				Options: policy.MetadataOptions{HTTPTokens: "optional", HopLimit: 1, HTTPEndpoint: "enabled", State: "applied"},
				Tags:    map[string]string{},
			},
		},
		{
			name: "IMDSv2 required, hop limit 3, name, tags and instance profile",
			spec: fakeaws.InstanceSpec{
				Name: "web-1", HttpTokens: "required", HopLimit: 3, InstanceProfileName: "app-profile",
				Tags: map[string]string{"team": "payments", "kubernetes.io/cluster/prod": "owned", "imdsguard:exempt": "2031-01-01"},
			},
			want: policy.Instance{
				Name:    "web-1",
				State:   "running",
				Options: policy.MetadataOptions{HTTPTokens: "required", HopLimit: 3, HTTPEndpoint: "enabled", State: "applied"},
				Tags: map[string]string{"Name": "web-1", "team": "payments", "kubernetes.io/cluster/prod": "owned",
					"imdsguard:exempt": "2031-01-01"},
				InstanceProfileARN: "arn:aws:iam::" + motoAccount + ":instance-profile/app-profile",
			},
		},
		{
			name: "metadata endpoint disabled",
			spec: fakeaws.InstanceSpec{Name: "dark", HttpEndpoint: "disabled"},
			want: policy.Instance{
				Name:    "dark",
				State:   "running",
				Options: policy.MetadataOptions{HTTPTokens: "optional", HopLimit: 1, HTTPEndpoint: "disabled", State: "applied"},
				Tags:    map[string]string{"Name": "dark"},
			},
		},
		{
			name: "stopped: no public address",
			spec: fakeaws.InstanceSpec{State: "stopped", HopLimit: 2},
			want: policy.Instance{
				State:   "stopped",
				Options: policy.MetadataOptions{HTTPTokens: "optional", HopLimit: 2, HTTPEndpoint: "enabled", State: "applied"},
				Tags:    map[string]string{},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := testsupport.Moto(t)
			ctx := testContext(t)
			client := ec2Client(m.URL, region, nil)
			seeded, err := fakeaws.SeedInstances(ctx, client, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			s := seeded[0]
			raw, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{s.ID}})
			if err != nil {
				t.Fatal(err)
			}
			launch := aws.ToTime(raw.Reservations[0].Instances[0].LaunchTime)
			image := aws.ToString(raw.Reservations[0].Instances[0].ImageId)

			got, notFound, err := evidence.Inventory(ctx, client, region, nil)
			if err != nil || notFound != nil || len(got) != 1 {
				t.Fatalf("Inventory = %d instances, notFound %v, err %v; want the one seeded", len(got), notFound, err)
			}
			want := tc.want
			want.AccountID, want.Region, want.InstanceID, want.ImageID = motoAccount, region, s.ID, image
			if image == "" {
				t.Fatal("moto describes the instance without its AMI")
			}
			want.Addresses = []string{s.PrivateIP}
			if s.PublicIP != "" {
				want.Addresses = append(want.Addresses, s.PublicIP)
				slices.Sort(want.Addresses)
			}
			if (tc.want.State == "running") != (s.PublicIP != "") {
				t.Fatalf("seeded %+v: a running instance has a public address in moto, a stopped one none", s)
			}
			g := got[0]
			if launch.IsZero() || !g.LaunchTime.Equal(launch) {
				t.Errorf("LaunchTime = %v, DescribeInstances says %v", g.LaunchTime, launch)
			}
			if !maps.Equal(g.Tags, want.Tags) || g.Tags == nil {
				t.Errorf("Tags = %v, want %v", g.Tags, want.Tags)
			}
			g.LaunchTime, want.LaunchTime = launch, launch
			g.Tags, want.Tags = nil, nil
			if !reflect.DeepEqual(g, want) {
				t.Errorf("Inventory\n got %+v\nwant %+v", g, want)
			}
		})
	}
}

// TestInventorySweepFollowsPages: with no ids every instance of the region is listed,
// across DescribeInstances pages. moto pages by reservation; a spy lowers MaxResults to
// EC2's minimum of 5 so that seven reservations take two pages.
func TestInventorySweepFollowsPages(t *testing.T) {
	m := testsupport.Moto(t)
	ctx := testContext(t)
	seedClient := ec2Client(m.URL, "us-east-1", nil)
	var want []string
	for _, spec := range []fakeaws.InstanceSpec{
		{}, {Count: 3}, {HttpTokens: "required"}, {State: "stopped"}, {State: "terminated"}, {Name: "a"}, {Name: "b"},
	} {
		s, err := fakeaws.SeedInstances(ctx, seedClient, spec)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ids(s)...)
	}
	// Another region's instances are not listed.
	if _, err := fakeaws.SeedInstances(ctx, ec2Client(m.URL, "us-west-2", nil), fakeaws.InstanceSpec{}); err != nil {
		t.Fatal(err)
	}

	counter := awsapi.NewCallCounter()
	var spy inputSpy[*ec2.DescribeInstancesInput]
	client := ec2Client(m.URL, "us-east-1", counter, spy.addTo, lowerMaxResults(5))
	got, notFound, err := evidence.Inventory(ctx, client, "us-east-1", nil)
	if err != nil || notFound != nil {
		t.Fatalf("Inventory: notFound %v, err %v", notFound, err)
	}
	gotIDs := instanceIDs(got)
	slices.Sort(gotIDs)
	slices.Sort(want)
	if !slices.Equal(gotIDs, want) {
		t.Errorf("Inventory listed %v, want %v", gotIDs, want)
	}
	if n := counter.Counts()[describeOp]; n != 2 {
		t.Errorf("%d DescribeInstances calls, want 2 pages", n)
	}
	for _, in := range spy.all() {
		if len(in.Filters) != 0 || len(in.InstanceIds) != 0 {
			t.Errorf("a sweep filtered: %+v", in)
		}
	}
}

// TestInventoryIDs: given ids are looked up with instance-id filters of at most 200
// values (a filter, unlike InstanceIds, does not fail the whole call on an unknown id),
// each distinct id once; the ids EC2 does not know come back in notFound, in the order
// given, without an error.
func TestInventoryIDs(t *testing.T) {
	m := testsupport.Moto(t)
	ctx := testContext(t)
	seeded, err := fakeaws.SeedInstances(ctx, ec2Client(m.URL, "us-east-1", nil), fakeaws.InstanceSpec{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	known := ids(seeded)
	// Instances that exist but are not asked for are not listed.
	if _, err := fakeaws.SeedInstances(ctx, ec2Client(m.URL, "us-east-1", nil), fakeaws.InstanceSpec{Count: 2}); err != nil {
		t.Fatal(err)
	}
	unknown := unknownIDs(450)
	// Descending, so that "the order given" differs from sorted order.
	slices.Reverse(unknown)

	tests := []struct {
		name         string
		ids          []string
		wantFound    []string
		wantNotFound []string
		wantCalls    int
	}{
		{
			name:      "known ids only",
			ids:       known[:2],
			wantFound: known[:2], wantCalls: 1,
		},
		{
			name:         "one unknown id is not found, not a failure",
			ids:          []string{known[0], unknown[0], known[1]},
			wantFound:    known[:2],
			wantNotFound: unknown[:1], wantCalls: 1,
		},
		{
			name:         "duplicates are looked up and reported once",
			ids:          []string{known[1], unknown[0], known[1], unknown[1], unknown[0], known[1]},
			wantFound:    known[1:2],
			wantNotFound: unknown[:2], wantCalls: 1,
		},
		{
			name:         "200 distinct ids, each given twice: one filter",
			ids:          append(append(slices.Clone(known), unknown[:197]...), append(slices.Clone(known), unknown[:197]...)...),
			wantFound:    known,
			wantNotFound: unknown[:197], wantCalls: 1,
		},
		{
			name:         "201 ids: two filters",
			ids:          append(slices.Clone(known), unknown[:198]...),
			wantFound:    known,
			wantNotFound: unknown[:198], wantCalls: 2,
		},
		{
			name:         "453 ids: three filters",
			ids:          append(append(unknown[:200:200], known...), unknown[200:]...),
			wantFound:    known,
			wantNotFound: unknown, wantCalls: 3,
		},
		{
			name:         "unknown ids only",
			ids:          unknown[:5],
			wantNotFound: unknown[:5], wantCalls: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			counter := awsapi.NewCallCounter()
			var spy inputSpy[*ec2.DescribeInstancesInput]
			client := ec2Client(m.URL, "us-east-1", counter, spy.addTo)
			got, notFound, err := evidence.Inventory(ctx, client, "us-east-1", tc.ids)
			if err != nil {
				t.Fatal(err)
			}
			gotIDs := instanceIDs(got)
			slices.Sort(gotIDs)
			wantFound := slices.Sorted(slices.Values(tc.wantFound))
			if !slices.Equal(gotIDs, wantFound) {
				t.Errorf("found %s, want %s", brief(gotIDs), brief(wantFound))
			}
			if !slices.Equal(notFound, tc.wantNotFound) {
				t.Errorf("notFound = %s, want %s (the order given, each once)", brief(notFound), brief(tc.wantNotFound))
			}
			if n := counter.Counts()[describeOp]; n != tc.wantCalls {
				t.Errorf("%d DescribeInstances calls, want %d", n, tc.wantCalls)
			}
			// Every distinct id is asked for exactly once, in filters of at most 200.
			var asked []string
			for _, in := range spy.all() {
				if len(in.InstanceIds) != 0 || len(in.Filters) != 1 || aws.ToString(in.Filters[0].Name) != "instance-id" {
					t.Fatalf("DescribeInstances input %+v, want one instance-id filter", in)
				}
				if n := len(in.Filters[0].Values); n == 0 || n > 200 {
					t.Errorf("a filter of %d values, want 1 to 200", n)
				}
				asked = append(asked, in.Filters[0].Values...)
			}
			slices.Sort(asked)
			if want := slices.Compact(slices.Sorted(slices.Values(tc.ids))); !slices.Equal(asked, want) {
				t.Errorf("asked for %d ids, want the %d distinct ids given, each once", len(asked), len(want))
			}
		})
	}
}

// TestInventoryMalformedID: an id that is not an EC2 instance id is an error naming it,
// and no call is made.
func TestInventoryMalformedID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ids  []string
		want string
	}{
		{ids: []string{"i-123"}, want: `"i-123"`},
		{ids: []string{"web-1"}, want: `"web-1"`},
		{ids: []string{"i-0123456789abcdef0", "web-1", "i-123"}, want: `"web-1"`},
		{ids: []string{"i-0123456789ABCDEF0"}, want: `"i-0123456789ABCDEF0"`}, // EC2 ids are lower-case
		{ids: []string{"i-0123456789abcdef"}, want: `"i-0123456789abcdef"`},   // 16 hex digits
		{ids: []string{""}, want: `""`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.ids, ","), func(t *testing.T) {
			counter := awsapi.NewCallCounter()
			// Nothing listens there: a call, had one been made, would fail differently.
			client := ec2Client(closedPort(t), "us-east-1", counter)
			_, _, err := evidence.Inventory(testContext(t), client, "us-east-1", tc.ids)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), describeOp) {
				t.Errorf("err = %v, want an error naming %s and no call", err, tc.want)
			}
			if calls := counter.Counts(); len(calls) != 0 {
				t.Errorf("calls made: %v", calls)
			}
		})
	}
}

// TestInventoryEC2Error: a failed DescribeInstances is an error naming the action and
// the region, wrapping the SDK's error.
func TestInventoryEC2Error(t *testing.T) {
	t.Parallel()
	const region = "ap-southeast-2"
	url := closedPort(t)
	for _, tc := range []struct {
		name string
		ids  []string
	}{
		{"sweep", nil},
		{"ids", []string{"i-0123456789abcdef0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := ec2.NewFromConfig(fakeaws.AWSConfig(region), func(o *ec2.Options) {
				o.BaseEndpoint = aws.String(url)
				o.RetryMaxAttempts = 1
			})
			instances, notFound, err := evidence.Inventory(testContext(t), client, region, tc.ids)
			if err == nil || !strings.Contains(err.Error(), describeOp) || !strings.Contains(err.Error(), region) {
				t.Fatalf("err = %v, want an error naming %s and %s", err, describeOp, region)
			}
			var opErr *smithy.OperationError
			if !errors.As(err, &opErr) || opErr.Operation() != "DescribeInstances" {
				t.Errorf("err = %v does not wrap the SDK's OperationError", err)
			}
			if instances != nil || notFound != nil {
				t.Errorf("on error: instances %v, notFound %v, want none", instances, notFound)
			}
		})
	}
}
