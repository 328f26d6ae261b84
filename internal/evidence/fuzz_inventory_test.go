package evidence_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/policy"
)

var inventoryIDs = []string{"i-0a1b2c3d4e5f60718", "i-1a2b3c4d", "i-0f9e8d7c6b5a49382", "i-00000000000000001"}

// planInventory reads the ids to ask for (none: a sweep) and the DescribeInstances pages
// of the reply from fuzz bytes, zeros meaning the common case.
func planInventory(data []byte) (ids []string, pages []served) {
	r := &fuzzReader{b: data}
	for range r.next() % 5 {
		ids = append(ids, inventoryIDs[r.next()%len(inventoryIDs)])
	}
	ptr := func(s string) *string { return &s }
	for p := range 1 + r.next()%4 {
		out := &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{}}
		switch r.next() % 16 {
		case 13:
			pages = append(pages, served{err: errors.New("RequestLimitExceeded")})
			continue
		case 14:
			pages = append(pages, served{})
			continue
		case 15:
			out.Reservations = nil
		}
		for range r.next() % 3 {
			res := ec2types.Reservation{OwnerId: []*string{ptr("123456789012"), ptr("210987654321"), ptr(""), nil}[r.next()%4],
				ReservationId: ptr("r-0123456789abcdef0")}
			for range r.next() % 4 {
				var inst ec2types.Instance
				switch k := r.next() % 8; {
				case k < 4:
					inst.InstanceId = ptr(inventoryIDs[k])
				case k == 4:
					inst.InstanceId = ptr("")
				case k == 5:
				case k == 6:
					inst.InstanceId = ptr("i-0A1B2C3D")
				default:
					inst.InstanceId = ptr("i-0a1b2c3d4e5f60718 ")
				}
				states := []ec2types.InstanceStateName{ec2types.InstanceStateNameRunning, ec2types.InstanceStateNameStopped,
					ec2types.InstanceStateNameTerminated, ec2types.InstanceStateNameShuttingDown, ec2types.InstanceStateNamePending, "", "hibernated"}
				if k := r.next() % 8; k < 7 {
					inst.State = &ec2types.InstanceState{Name: states[k]}
				}
				if k := r.next() % 6; k < 5 {
					mo := &ec2types.InstanceMetadataOptionsResponse{
						HttpTokens:              []ec2types.HttpTokensState{"optional", "required", "", "optional", "Required"}[k],
						HttpPutResponseHopLimit: []*int32{aws.Int32(1), aws.Int32(2), nil, aws.Int32(64), aws.Int32(-1)}[r.next()%5],
						HttpEndpoint:            []ec2types.InstanceMetadataEndpointState{"enabled", "disabled", ""}[r.next()%3],
						State:                   []ec2types.InstanceMetadataOptionsState{"applied", "pending", ""}[r.next()%3],
					}
					inst.MetadataOptions = mo
				}
				if r.next()%2 == 1 {
					inst.Tags = []ec2types.Tag{{Key: ptr("Name"), Value: ptr("web")}, {Key: ptr("imdsguard:exempt"), Value: ptr("true")}}
					inst.IamInstanceProfile = &ec2types.IamInstanceProfile{Arn: ptr("arn:aws:iam::123456789012:instance-profile/web")}
					inst.PrivateIpAddress, inst.LaunchTime = ptr("10.0.0.5"), aws.Time(metricNow.Add(-time.Hour))
				}
				res.Instances = append(res.Instances, inst)
			}
			out.Reservations = append(out.Reservations, res)
		}
		switch r.next() % 6 {
		case 3:
			out.NextToken = aws.String("")
		case 4:
			out.NextToken = aws.String("token-a")
		case 5:
			out.NextToken = aws.String(fmt.Sprintf("token-%d", p))
		}
		pages = append(pages, served{describe: out})
	}
	return ids, pages
}

// plannedEC2 answers DescribeInstances with the planned pages, in the order their tokens
// chain them (see pageCursor), and fails any call after the last. It ignores optFns.
type plannedEC2 struct {
	t     *testing.T
	pages []served
	calls []served
	asked []string // the instance-id filter values of the first call
	token *string
	after pageCursor
}

func (f *plannedEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	t := f.t
	if len(f.calls) > len(f.pages)+1 {
		t.Fatalf("%d DescribeInstances calls for %d pages: the page chain does not end", len(f.calls), len(f.pages))
	}
	if aws.ToString(in.NextToken) != aws.ToString(f.token) {
		t.Errorf("call %d sent NextToken %q, want %q", len(f.calls)+1, aws.ToString(in.NextToken), aws.ToString(f.token))
	}
	if len(in.InstanceIds) > 0 || len(in.Filters) > 1 || len(in.Filters) == 1 && aws.ToString(in.Filters[0].Name) != "instance-id" {
		t.Fatalf("input %+v: want at most an instance-id filter", in)
	}
	var asked []string
	if len(in.Filters) == 1 {
		asked = in.Filters[0].Values
	}
	if len(f.calls) == 0 {
		f.asked = asked
	} else if !slices.Equal(asked, f.asked) {
		t.Fatalf("the filter changed between pages: %v, then %v", f.asked, asked)
	}
	var s served
	if index := f.after.page(t, in.NextToken); index < len(f.pages) {
		s = f.pages[index]
		if s.describe != nil {
			f.after.served(index, s.describe.NextToken)
		}
	} else {
		s = served{err: errors.New("no such page")}
	}
	f.calls = append(f.calls, s)
	if s.describe != nil {
		f.token = s.describe.NextToken
	}
	return s.describe, s.err
}

// incomplete says why the DescribeInstances pages served are not a whole answer
// (DESIGN.md section 3, evidence integrity), or "".
func incomplete(calls []served) string {
	tokens := map[string]bool{}
	for _, c := range calls {
		if c.err != nil || c.describe == nil || c.describe.Reservations == nil {
			return "a call failed, or its reply has no reservations"
		}
		for _, r := range c.describe.Reservations {
			if aws.ToString(r.OwnerId) == "" {
				return "a reservation without an owner"
			}
			for _, inst := range r.Instances {
				id := aws.ToString(inst.InstanceId)
				gone := inst.State != nil && (inst.State.Name == "terminated" || inst.State.Name == "shutting-down")
				switch {
				case !slices.Contains(inventoryIDs, id):
					return fmt.Sprintf("the instance id %q", id)
				case inst.State == nil || inst.State.Name == "":
					return id + " without a state"
				case !gone && (inst.MetadataOptions == nil || inst.MetadataOptions.HttpTokens == ""):
					return id + " without metadata options"
				}
			}
		}
		tok := aws.ToString(c.describe.NextToken)
		if tok == "" {
			return ""
		}
		if tokens[tok] {
			return "a repeated NextToken"
		}
		tokens[tok] = true
	}
	return "the page chain did not end"
}

// FuzzInventoryPages answers Inventory's DescribeInstances calls with fuzzed pages: an
// instance without a valid id, a state or (unless it is gone) its metadata options never
// becomes a policy.Instance, a reply without reservations is an error, and ids are "not
// found" only when the whole answer came and lacks them.
func FuzzInventoryPages(f *testing.F) {
	// The bytes: the number of ids and which; the number of pages; per page its kind (13
	// fails, 14 nil, 15 no reservations), reservations (count; per reservation the owner,
	// instances (count; per instance its id, state, metadata options (kind, hop limit,
	// endpoint, state) and extras)), token (3 empty, 4 fixed, 5 fresh).
	for _, seed := range [][]byte{
		{0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0},                                        // a sweep of one running instance
		{1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0},                                     // ask for it by id
		{2, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0},                                  // ask for two, one is not found
		{1, 0, 0, 0, 0, 0},                                                                // not found: an empty, complete reply
		{1, 0, 0, 15, 0, 0},                                                               // no reservations
		{1, 0, 0, 14},                                                                     // a nil reply
		{1, 0, 0, 13},                                                                     // a failed call
		{1, 0, 0, 0, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0},                                     // a reservation without an owner
		{1, 0, 0, 0, 1, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0},                                     // a nil owner
		{1, 0, 0, 0, 1, 0, 1, 5, 0, 0, 0, 0, 0, 0, 0},                                     // an instance without an id
		{1, 0, 0, 0, 1, 0, 1, 4, 0, 0, 0, 0, 0, 0, 0},                                     // an empty id
		{1, 0, 0, 0, 1, 0, 1, 6, 0, 0, 0, 0, 0, 0, 0},                                     // an upper-case id
		{1, 0, 0, 0, 1, 0, 1, 7, 0, 0, 0, 0, 0, 0, 0},                                     // an id with a space
		{1, 0, 0, 0, 1, 0, 1, 0, 7, 0, 0, 0, 0, 0, 0},                                     // no state
		{1, 0, 0, 0, 1, 0, 1, 0, 5, 0, 0, 0, 0, 0, 0},                                     // an empty state
		{1, 0, 0, 0, 1, 0, 1, 0, 0, 5, 0, 0},                                              // running without metadata options
		{1, 0, 0, 0, 1, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0},                                     // running, HttpTokens empty
		{1, 0, 0, 0, 1, 0, 1, 0, 2, 5, 0, 0},                                              // terminated without metadata options
		{1, 0, 0, 0, 1, 0, 1, 0, 3, 5, 0, 0},                                              // shutting-down without them
		{1, 0, 0, 0, 1, 0, 1, 0, 1, 5, 0, 0},                                              // stopped without them
		{1, 0, 0, 0, 1, 0, 1, 0, 0, 4, 4, 2, 2, 1, 0},                                     // odd options, extras
		{1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0},                                     // owned by another account
		{1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, // page 2 has it
		{1, 0, 1, 0, 0, 4, 0, 0, 4},                                                       // a repeated token
		{1, 0, 0, 0, 0, 4},                                                                // a token, then the pages run out
		{0, 1, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, 15},               // a sweep whose page 2 has no reservations
		{4, 0, 1, 2, 3, 0, 0, 2, 0, 3, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 2, 2, 5, 0, 1, 1, 3, 0, 0, 0, 0, 0, 0, 0}, // four ids
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const region = "eu-west-1"
		ids, pages := planInventory(data)
		api := &plannedEC2{t: t, pages: pages}
		instances, notFound, err := evidence.Inventory(context.Background(), api, region, ids)
		if len(ids) > 0 && !slices.Equal(api.asked, slices.Compact(slices.Sorted(slices.Values(ids)))) {
			t.Errorf("asked for %v, want each of %v once", api.asked, ids)
		}
		why := incomplete(api.calls)
		if (err != nil) != (why != "") {
			t.Fatalf("error %v; the reply is incomplete: %q", err, why)
		}
		if err != nil {
			if instances != nil || notFound != nil {
				t.Fatalf("with the error %v: instances %v and not found %v", err, instances, notFound)
			}
			if !strings.Contains(err.Error(), "ec2:DescribeInstances in "+region) {
				t.Errorf("error %q does not name the call and region", err)
			}
			return
		}
		// Every instance served, in order, and nothing else.
		var want []ec2types.Instance
		var owners []string
		for _, c := range api.calls {
			for _, r := range c.describe.Reservations {
				for _, inst := range r.Instances {
					want = append(want, inst)
					owners = append(owners, aws.ToString(r.OwnerId))
				}
			}
		}
		if len(instances) != len(want) {
			t.Fatalf("%d instances for the %d served", len(instances), len(want))
		}
		found := map[string]bool{}
		for i, got := range instances {
			w := want[i]
			found[got.InstanceID] = true
			if got.InstanceID != aws.ToString(w.InstanceId) || got.AccountID != owners[i] || got.Region != region || got.State != string(w.State.Name) {
				t.Fatalf("instance %d: %+v for %s %s in %s", i, got, aws.ToString(w.InstanceId), w.State.Name, owners[i])
			}
			if got.State == "" || !slices.Contains(inventoryIDs, got.InstanceID) {
				t.Fatalf("instance %+v without a valid id or state", got)
			}
			if mo := w.MetadataOptions; mo != nil {
				wantOpts := policy.MetadataOptions{HTTPTokens: string(mo.HttpTokens), HopLimit: aws.ToInt32(mo.HttpPutResponseHopLimit),
					HTTPEndpoint: string(mo.HttpEndpoint), State: string(mo.State)}
				if got.Options != wantOpts {
					t.Fatalf("%s: options %+v, want %+v", got.InstanceID, got.Options, wantOpts)
				}
			} else if got.State != "terminated" && got.State != "shutting-down" || got.Options != (policy.MetadataOptions{}) {
				t.Fatalf("%s %s without metadata options became %+v", got.InstanceID, got.State, got)
			}
		}
		var wantNotFound []string
		for _, id := range ids {
			if !found[id] && !slices.Contains(wantNotFound, id) {
				wantNotFound = append(wantNotFound, id)
			}
		}
		if !slices.Equal(notFound, wantNotFound) {
			t.Fatalf("not found %v, want %v (asked %v)", notFound, wantNotFound, ids)
		}
	})
}
