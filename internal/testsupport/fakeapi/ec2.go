package fakeapi

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// EC2 is an in-process EC2 holding a map of instances. DescribeInstances answers from it
// (InstanceIds, or the instance-id filter evidence.Inventory uses);
// ModifyInstanceMetadataOptions changes it as EC2 does: only the fields the input sets,
// keeping the others (moto resets them).
type EC2 struct {
	// Describe and Modify record the calls and hold the replies set for the next ones.
	Describe Op[ec2.DescribeInstancesInput, ec2.DescribeInstancesOutput]
	Modify   Op[ec2.ModifyInstanceMetadataOptionsInput, ec2.ModifyInstanceMetadataOptionsOutput]

	// PendingDescribes is how many DescribeInstances replies show a metadata change as
	// "pending" before it is "applied". When it is positive the change's own reply says
	// "pending" too; at zero it says "applied".
	PendingDescribes int
	// ApplyInstead, when set, turns each change into the one it returns before it is
	// applied: someone else's change landing instead of the one asked for.
	ApplyInstead func(ec2.ModifyInstanceMetadataOptionsInput) ec2.ModifyInstanceMetadataOptionsInput
	// DryRunSucceeds answers a permitted dry run with success, as moto does, instead of
	// the DryRunOperation error real EC2 answers with.
	DryRunSucceeds bool

	Journal *Journal

	owner     string
	mu        sync.Mutex
	instances map[string]*ec2Instance
}

type ec2Instance struct {
	inst ec2types.Instance
	// pending counts the describes left that show the metadata options "pending".
	pending int
}

// NewEC2 returns an EC2 whose reservations belong to the account owner.
func NewEC2(owner string, journal *Journal) *EC2 {
	return &EC2{owner: owner, Journal: journal, instances: map[string]*ec2Instance{}}
}

// NewInstance is a running instance launched at launched, with IMDSv1 allowed
// (HttpTokens optional), hop limit 1, the endpoint enabled and its options applied.
func NewInstance(id string, launched time.Time) ec2types.Instance {
	return ec2types.Instance{
		InstanceId:       aws.String(id),
		InstanceType:     ec2types.InstanceTypeT3Micro,
		LaunchTime:       aws.Time(launched),
		State:            &ec2types.InstanceState{Name: ec2types.InstanceStateNameRunning, Code: aws.Int32(16)},
		PrivateIpAddress: aws.String("10.0.0.10"),
		MetadataOptions: &ec2types.InstanceMetadataOptionsResponse{
			HttpTokens:              ec2types.HttpTokensStateOptional,
			HttpPutResponseHopLimit: aws.Int32(1),
			HttpEndpoint:            ec2types.InstanceMetadataEndpointStateEnabled,
			HttpProtocolIpv6:        ec2types.InstanceMetadataProtocolStateDisabled,
			InstanceMetadataTags:    ec2types.InstanceMetadataTagsStateDisabled,
			State:                   ec2types.InstanceMetadataOptionsStateApplied,
		},
	}
}

// Put adds the instance, or replaces the one with its id.
func (e *EC2) Put(inst ec2types.Instance) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.instances[aws.ToString(inst.InstanceId)] = &ec2Instance{inst: cloneInstance(inst)}
}

// Remove drops the instance: EC2 no longer knows it.
func (e *EC2) Remove(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.instances, id)
}

// Update changes the instance in place, as something other than the code under test
// would (a person, an Auto Scaling group); no call is recorded.
func (e *EC2) Update(id string, change func(*ec2types.Instance)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	stored, ok := e.instances[id]
	if !ok {
		panic("fakeapi: EC2 has no instance " + id)
	}
	inst := cloneInstance(stored.inst)
	change(&inst)
	stored.inst = inst
}

// Instance returns a copy of the instance as it is now.
func (e *EC2) Instance(id string) (ec2types.Instance, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	stored, ok := e.instances[id]
	if !ok {
		return ec2types.Instance{}, false
	}
	return cloneInstance(stored.inst), true
}

// DescribeInstances implements evidence.EC2API and enforce.EC2API. It answers in one
// page, one reservation per instance, ordered by id. Like EC2 it fails the call when an
// id of InstanceIds is unknown, and drops unknown ids of the instance-id filter; it
// supports no other filter.
func (e *EC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	e.Journal.add("ec2:DescribeInstances")
	return e.Describe.call(ctx, in, e.describe)
}

func (e *EC2) describe(in *ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(in.InstanceIds) > 0 && in.MaxResults != nil {
		return nil, APIError("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	var filterIDs []string
	filtered := false
	for _, f := range in.Filters {
		if aws.ToString(f.Name) != "instance-id" {
			return nil, APIError("InvalidParameterValue", fmt.Sprintf("fakeapi: the filter %q is not supported", aws.ToString(f.Name)))
		}
		if filtered {
			// Two filters on the same name would have to match both: keep the common ids.
			filterIDs = slices.DeleteFunc(filterIDs, func(id string) bool { return !slices.Contains(f.Values, id) })
		} else {
			filterIDs, filtered = slices.Clone(f.Values), true
		}
	}
	for _, id := range in.InstanceIds {
		if _, ok := e.instances[id]; !ok {
			return nil, APIError("InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id))
		}
	}
	var ids []string
	for id := range e.instances {
		if len(in.InstanceIds) > 0 && !slices.Contains(in.InstanceIds, id) {
			continue
		}
		if filtered && !slices.Contains(filterIDs, id) {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{}}
	for _, id := range ids {
		stored := e.instances[id]
		inst := cloneInstance(stored.inst)
		if inst.MetadataOptions != nil {
			inst.MetadataOptions.State = ec2types.InstanceMetadataOptionsStateApplied
			if stored.pending > 0 {
				stored.pending--
				inst.MetadataOptions.State = ec2types.InstanceMetadataOptionsStatePending
			}
		}
		out.Reservations = append(out.Reservations, ec2types.Reservation{
			OwnerId:       aws.String(e.owner),
			ReservationId: aws.String("r-" + id[2:]),
			Instances:     []ec2types.Instance{inst},
		})
	}
	return out, nil
}

// ModifyInstanceMetadataOptions implements enforce.EC2API. A dry run changes nothing and
// answers DryRunOperation (or success, with DryRunSucceeds); a change sets only the
// fields the input sets.
func (e *EC2) ModifyInstanceMetadataOptions(ctx context.Context, in *ec2.ModifyInstanceMetadataOptionsInput, _ ...func(*ec2.Options)) (*ec2.ModifyInstanceMetadataOptionsOutput, error) {
	entry := "ec2:ModifyInstanceMetadataOptions"
	if in != nil && aws.ToBool(in.DryRun) {
		entry += "(DryRun)"
	}
	e.Journal.add(entry)
	return e.Modify.call(ctx, in, e.modify)
}

func (e *EC2) modify(in *ec2.ModifyInstanceMetadataOptionsInput) (*ec2.ModifyInstanceMetadataOptionsOutput, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := aws.ToString(in.InstanceId)
	stored, ok := e.instances[id]
	if !ok {
		return nil, APIError("InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id))
	}
	if err := validModify(in); err != nil {
		return nil, err
	}
	if aws.ToBool(in.DryRun) {
		if !e.DryRunSucceeds {
			return nil, APIError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
		}
		return &ec2.ModifyInstanceMetadataOptionsOutput{InstanceId: aws.String(id), InstanceMetadataOptions: cloneOptions(stored.inst.MetadataOptions)}, nil
	}
	change := *in
	if e.ApplyInstead != nil {
		change = e.ApplyInstead(change)
		if err := validModify(&change); err != nil {
			return nil, err
		}
	}
	mo := cloneOptions(stored.inst.MetadataOptions)
	if mo == nil {
		mo = &ec2types.InstanceMetadataOptionsResponse{}
	}
	if change.HttpTokens != "" {
		mo.HttpTokens = change.HttpTokens
	}
	if change.HttpPutResponseHopLimit != nil {
		mo.HttpPutResponseHopLimit = aws.Int32(*change.HttpPutResponseHopLimit)
	}
	if change.HttpEndpoint != "" {
		mo.HttpEndpoint = change.HttpEndpoint
	}
	if change.HttpProtocolIpv6 != "" {
		mo.HttpProtocolIpv6 = change.HttpProtocolIpv6
	}
	if change.InstanceMetadataTags != "" {
		mo.InstanceMetadataTags = change.InstanceMetadataTags
	}
	stored.inst.MetadataOptions = mo
	stored.pending = e.PendingDescribes
	reply := cloneOptions(mo)
	reply.State = ec2types.InstanceMetadataOptionsStateApplied
	if stored.pending > 0 {
		reply.State = ec2types.InstanceMetadataOptionsStatePending
	}
	return &ec2.ModifyInstanceMetadataOptionsOutput{InstanceId: aws.String(id), InstanceMetadataOptions: reply}, nil
}

// validModify checks the values as EC2 does.
func validModify(in *ec2.ModifyInstanceMetadataOptionsInput) error {
	switch in.HttpTokens {
	case "", ec2types.HttpTokensStateOptional, ec2types.HttpTokensStateRequired:
	default:
		return APIError("InvalidParameterValue", fmt.Sprintf("Value (%s) for parameter HttpTokens is invalid", in.HttpTokens))
	}
	if h := in.HttpPutResponseHopLimit; h != nil && (*h < 1 || *h > 64) {
		return APIError("InvalidParameterValue", fmt.Sprintf("Value (%d) for parameter HttpPutResponseHopLimit is invalid", *h))
	}
	switch in.HttpEndpoint {
	case "", ec2types.InstanceMetadataEndpointStateEnabled, ec2types.InstanceMetadataEndpointStateDisabled:
	default:
		return APIError("InvalidParameterValue", fmt.Sprintf("Value (%s) for parameter HttpEndpoint is invalid", in.HttpEndpoint))
	}
	return nil
}

// cloneInstance copies the parts of an instance the fake and its callers change.
func cloneInstance(in ec2types.Instance) ec2types.Instance {
	out := in
	out.MetadataOptions = cloneOptions(in.MetadataOptions)
	if in.State != nil {
		state := *in.State
		out.State = &state
	}
	out.Tags = slices.Clone(in.Tags)
	if in.IamInstanceProfile != nil {
		p := *in.IamInstanceProfile
		out.IamInstanceProfile = &p
	}
	return out
}

func cloneOptions(mo *ec2types.InstanceMetadataOptionsResponse) *ec2types.InstanceMetadataOptionsResponse {
	if mo == nil {
		return nil
	}
	out := *mo
	if mo.HttpPutResponseHopLimit != nil {
		out.HttpPutResponseHopLimit = aws.Int32(*mo.HttpPutResponseHopLimit)
	}
	return &out
}
