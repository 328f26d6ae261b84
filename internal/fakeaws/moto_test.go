package fakeaws

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestStartMotoWithoutBinaryReportsErrMotoMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	m, err := StartMoto(context.Background())
	if !errors.Is(err, ErrMotoMissing) {
		if m != nil {
			m.Stop()
		}
		t.Fatalf("StartMoto with empty PATH: err = %v, want ErrMotoMissing", err)
	}
}

func TestMotoResetEmptiesEmulator(t *testing.T) {
	m := Moto(t)
	ctx := testContext(t)
	client := ec2Client(m.URL)
	if _, err := SeedInstances(ctx, client, InstanceSpec{Count: 2}); err != nil {
		t.Fatal(err)
	}
	if got := countInstances(t, client); got != 2 {
		t.Fatalf("after seeding: %d instances, want 2", got)
	}
	if err := m.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if got := countInstances(t, client); got != 0 {
		t.Fatalf("after Reset: %d instances, want 0", got)
	}
	// Moto resets too: a second call in the same test starts from empty again.
	if _, err := SeedInstances(ctx, client, InstanceSpec{}); err != nil {
		t.Fatal(err)
	}
	Moto(t)
	if got := countInstances(t, client); got != 0 {
		t.Fatalf("after Moto(t): %d instances, want 0", got)
	}
}

func TestMotoStopEndsServer(t *testing.T) {
	Moto(t) // skips (or fails under IMDSGUARD_REQUIRE_MOTO=1) when moto is missing
	m, err := StartMoto(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.URL == Moto(t).URL {
		t.Fatalf("second moto reused the shared port %s", m.URL)
	}
	resp, err := http.Get(m.URL + "/moto-api/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	m.Stop()
	m.Stop() // idempotent
	if resp, err := http.Get(m.URL + "/moto-api/"); err == nil {
		resp.Body.Close()
		t.Fatalf("moto still answers at %s after Stop", m.URL)
	}
	if !strings.Contains(m.Output(), "Running on") {
		t.Errorf("moto output lacks its start-up banner:\n%s", m.Output())
	}
}

func countInstances(t *testing.T, client *ec2.Client) int {
	t.Helper()
	n := 0
	p := ec2.NewDescribeInstancesPaginator(client, &ec2.DescribeInstancesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Reservations {
			n += len(r.Instances)
		}
	}
	return n
}

// describeAll returns every instance moto holds, by ID.
func describeAll(t *testing.T, client *ec2.Client) map[string]ec2types.Instance {
	t.Helper()
	out := map[string]ec2types.Instance{}
	p := ec2.NewDescribeInstancesPaginator(client, &ec2.DescribeInstancesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				out[aws.ToString(inst.InstanceId)] = inst
			}
		}
	}
	return out
}

func TestSeedInstances(t *testing.T) {
	tests := []struct {
		name string
		spec InstanceSpec
		// want
		tokens   ec2types.HttpTokensState
		hop      int32
		endpoint ec2types.InstanceMetadataEndpointState
		state    ec2types.InstanceStateName
		publicIP bool
	}{
		{
			name:   "moto defaults match EC2 defaults",
			spec:   InstanceSpec{Count: 3},
			tokens: "optional", hop: 1, endpoint: "enabled", state: "running", publicIP: true,
		},
		{
			name:   "IMDSv2 required with hop limit 2, name and tags",
			spec:   InstanceSpec{Count: 2, Name: "web", HttpTokens: "required", HopLimit: 2, Tags: map[string]string{"team": "a", "env": "prod"}},
			tokens: "required", hop: 2, endpoint: "enabled", state: "running", publicIP: true,
		},
		{
			name:   "metadata endpoint disabled",
			spec:   InstanceSpec{HttpEndpoint: "disabled"},
			tokens: "optional", hop: 1, endpoint: "disabled", state: "running", publicIP: true,
		},
		{
			name:   "instance profile is created and attached",
			spec:   InstanceSpec{InstanceProfileName: "app-profile", HttpTokens: "optional"},
			tokens: "optional", hop: 1, endpoint: "enabled", state: "running", publicIP: true,
		},
		{
			name:   "stopped",
			spec:   InstanceSpec{Count: 2, State: "stopped", HttpTokens: "required"},
			tokens: "required", hop: 1, endpoint: "enabled", state: "stopped",
		},
		{
			name:   "terminated",
			spec:   InstanceSpec{State: "terminated"},
			tokens: "optional", hop: 1, endpoint: "enabled", state: "terminated",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Moto(t)
			ctx := testContext(t)
			client := ec2Client(m.URL)
			seeded, err := SeedInstances(ctx, client, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			want := max(tc.spec.Count, 1)
			if len(seeded) != want {
				t.Fatalf("seeded %d instances, want %d", len(seeded), want)
			}
			all := describeAll(t, client)
			if len(all) != want {
				t.Fatalf("moto holds %d instances, want %d", len(all), want)
			}
			for _, s := range seeded {
				inst, ok := all[s.ID]
				if !ok {
					t.Fatalf("seeded %s is not in DescribeInstances", s.ID)
				}
				mo := inst.MetadataOptions
				if mo == nil {
					t.Fatalf("%s: no MetadataOptions", s.ID)
				}
				if mo.HttpTokens != tc.tokens || aws.ToInt32(mo.HttpPutResponseHopLimit) != tc.hop ||
					mo.HttpEndpoint != tc.endpoint || mo.State != ec2types.InstanceMetadataOptionsStateApplied {
					t.Errorf("%s: metadata options tokens=%s hop=%d endpoint=%s state=%s, want %s %d %s applied",
						s.ID, mo.HttpTokens, aws.ToInt32(mo.HttpPutResponseHopLimit), mo.HttpEndpoint, mo.State,
						tc.tokens, tc.hop, tc.endpoint)
				}
				if got := inst.State.Name; got != tc.state {
					t.Errorf("%s: state %s, want %s", s.ID, got, tc.state)
				}
				if s.PrivateIP == "" || s.PrivateIP != aws.ToString(inst.PrivateIpAddress) {
					t.Errorf("%s: PrivateIP %q, DescribeInstances says %q", s.ID, s.PrivateIP, aws.ToString(inst.PrivateIpAddress))
				}
				if (s.PublicIP != "") != tc.publicIP || s.PublicIP != aws.ToString(inst.PublicIpAddress) {
					t.Errorf("%s: PublicIP %q, DescribeInstances says %q, want one: %v", s.ID, s.PublicIP, aws.ToString(inst.PublicIpAddress), tc.publicIP)
				}
				tags := map[string]string{}
				for _, tg := range inst.Tags {
					tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
				}
				for k, v := range tc.spec.Tags {
					if tags[k] != v {
						t.Errorf("%s: tag %s=%q, want %q", s.ID, k, tags[k], v)
					}
				}
				if tc.spec.Name != "" && tags["Name"] != tc.spec.Name {
					t.Errorf("%s: Name tag %q, want %q", s.ID, tags["Name"], tc.spec.Name)
				}
				if name := tc.spec.InstanceProfileName; name != "" {
					if inst.IamInstanceProfile == nil || !strings.HasSuffix(aws.ToString(inst.IamInstanceProfile.Arn), ":instance-profile/"+name) {
						t.Errorf("%s: IamInstanceProfile %+v, want profile %s", s.ID, inst.IamInstanceProfile, name)
					}
				}
			}
		})
	}
}

// An existing instance profile is reused rather than re-created.
func TestSeedInstancesReusesInstanceProfile(t *testing.T) {
	m := Moto(t)
	ctx := testContext(t)
	client := ec2Client(m.URL)
	for range 2 {
		if _, err := SeedInstances(ctx, client, InstanceSpec{InstanceProfileName: "shared"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := countInstances(t, client); got != 2 {
		t.Fatalf("%d instances, want 2", got)
	}
}

// moto needs the instance profile to exist: this pins the fact SeedInstances relies on.
func TestMotoRejectsUnknownInstanceProfile(t *testing.T) {
	m := Moto(t)
	_, err := ec2Client(m.URL).RunInstances(testContext(t), &ec2.RunInstancesInput{
		ImageId: aws.String(DefaultAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: aws.String("nope")},
	})
	if err == nil || !strings.Contains(err.Error(), "NoSuchEntity") {
		t.Fatalf("RunInstances with unknown profile: err = %v, want NoSuchEntity", err)
	}
}

// moto pages DescribeInstances by reservation (MaxResults counts reservations, default
// 100), not by instance as EC2 does. Callers must follow NextToken either way.
func TestMotoDescribeInstancesPagesByReservation(t *testing.T) {
	m := Moto(t)
	ctx := testContext(t)
	client := ec2Client(m.URL)
	var want []string
	for range 6 { // six reservations of one instance
		s, err := SeedInstances(ctx, client, InstanceSpec{})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, s[0].ID)
	}
	s, err := SeedInstances(ctx, client, InstanceSpec{Count: 7}) // one reservation of seven
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range s {
		want = append(want, i.ID)
	}

	var pages [][]int // instances per reservation, per page
	var got []string
	p := ec2.NewDescribeInstancesPaginator(client, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		for _, r := range page.Reservations {
			sizes = append(sizes, len(r.Instances))
			for _, inst := range r.Instances {
				got = append(got, aws.ToString(inst.InstanceId))
			}
		}
		pages = append(pages, sizes)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("paginated IDs %v, want %v", got, want)
	}
	wantPages := [][]int{{1, 1, 1, 1, 1}, {1, 7}}
	if len(pages) != len(wantPages) || !slices.Equal(pages[0], wantPages[0]) || !slices.Equal(pages[1], wantPages[1]) {
		t.Fatalf("pages (instances per reservation) = %v, want %v", pages, wantPages)
	}
}
