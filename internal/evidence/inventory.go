// Package evidence gathers what the guard judges by: the EC2 inventory, the
// MetadataNoToken metric and the CloudTrail history of the instance role's credentials.
// Each gatherer owns the small interface it needs, with the exact SDK v2 signature, so
// tests run the real clients against an emulator.
package evidence

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// EC2API is the part of the EC2 client the inventory uses.
type EC2API interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

const (
	// describePageSize is DescribeInstances' largest page.
	describePageSize = 1000
	// idsPerFilter stays within EC2's limit on values in one filter. A filter, unlike
	// InstanceIds, does not fail the whole call when one id does not exist.
	idsPerFilter = 200
)

// ValidateInstanceIDs returns an error naming the first id that is not an EC2 instance id.
func ValidateInstanceIDs(ids []string) error {
	for _, id := range ids {
		if !policy.ValidInstanceID(id) {
			return fmt.Errorf("%q is not an EC2 instance id (want i- and 8 or 17 hex digits)", id)
		}
	}
	return nil
}

// LaunchedFrom lists the instances of one region launched from the given version of a
// launch template: those EC2 tagged aws:ec2launchtemplate:id and :version so.
func LaunchedFrom(ctx context.Context, api EC2API, region, templateID string, version int64) ([]policy.Instance, error) {
	return describe(ctx, api, region, &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{
			{Name: aws.String("tag:aws:ec2launchtemplate:id"), Values: []string{templateID}},
			{Name: aws.String("tag:aws:ec2launchtemplate:version"), Values: []string{strconv.FormatInt(version, 10)}},
		},
		MaxResults: aws.Int32(describePageSize),
	})
}

// Inventory lists instances in one region: all of them when ids is empty, else the
// given ones. Ids that EC2 does not know are returned in notFound, in the order given.
// HttpTokens is not filtered on the server (the emulator does not support that filter,
// and the guard reports compliant instances too).
func Inventory(ctx context.Context, api EC2API, region string, ids []string) (instances []policy.Instance, notFound []string, err error) {
	if err := ValidateInstanceIDs(ids); err != nil {
		return nil, nil, err
	}
	if len(ids) == 0 {
		instances, err = describe(ctx, api, region, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(describePageSize)})
		return instances, nil, err
	}
	found := make(map[string]bool, len(ids))
	for chunk := range slices.Chunk(slices.Compact(slices.Sorted(slices.Values(ids))), idsPerFilter) {
		page, err := describe(ctx, api, region, &ec2.DescribeInstancesInput{
			Filters:    []ec2types.Filter{{Name: aws.String("instance-id"), Values: chunk}},
			MaxResults: aws.Int32(describePageSize),
		})
		if err != nil {
			return nil, nil, err
		}
		for _, inst := range page {
			found[inst.InstanceID] = true
		}
		instances = append(instances, page...)
	}
	for _, id := range ids {
		if !found[id] {
			notFound = append(notFound, id)
			found[id] = true // report a repeated id once
		}
	}
	return instances, notFound, nil
}

func describe(ctx context.Context, api EC2API, region string, in *ec2.DescribeInstancesInput) ([]policy.Instance, error) {
	var out []policy.Instance
	chain := NewPageChain(opDescribeInstances)
	for {
		page, err := api.DescribeInstances(ctx, in, func(o *ec2.Options) {
			o.APIOptions = append(o.APIOptions, RequireComplete(opDescribeInstances, incompleteInventory))
		})
		if err == nil {
			if problem := incompleteInventory(page); problem != "" {
				err = &IncompleteReplyError{Operation: opDescribeInstances, Problem: problem}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s in %s: %w", opDescribeInstances, region, err)
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				out = append(out, toInstance(aws.ToString(r.OwnerId), region, inst))
			}
		}
		next, err := chain.Next(page.NextToken)
		if err != nil {
			return nil, fmt.Errorf("%s in %s: %w", opDescribeInstances, region, err)
		}
		if next == nil {
			return out, nil
		}
		in = cloneWithToken(in, next)
	}
}

const opDescribeInstances = "ec2:DescribeInstances"

// incompleteInventory says what is missing from a DescribeInstances reply, or "". The
// reservation set must be there (an empty one is a real "no instances"), and every
// instance must say which it is, what state it is in and how its metadata service is set:
// the rules read all three, and a guess at any of them could remediate the wrong thing.
func incompleteInventory(page *ec2.DescribeInstancesOutput) string {
	if page == nil || page.Reservations == nil {
		return "no reservationSet"
	}
	for i, r := range page.Reservations {
		if aws.ToString(r.OwnerId) == "" {
			return fmt.Sprintf("reservation %d has no ownerId", i+1)
		}
		for _, inst := range r.Instances {
			id := aws.ToString(inst.InstanceId)
			switch {
			case !policy.ValidInstanceID(id):
				return fmt.Sprintf("an instance of reservation %d has the instance id %q", i+1, id)
			case inst.State == nil || inst.State.Name == "":
				return fmt.Sprintf("instance %s has no state", id)
			case inst.State.Name != ec2types.InstanceStateNameTerminated && inst.State.Name != ec2types.InstanceStateNameShuttingDown &&
				(inst.MetadataOptions == nil || inst.MetadataOptions.HttpTokens == ""):
				return fmt.Sprintf("instance %s has no metadata options", id)
			}
		}
	}
	return ""
}

func cloneWithToken(in *ec2.DescribeInstancesInput, token *string) *ec2.DescribeInstancesInput {
	next := *in
	next.NextToken = token
	return &next
}

func toInstance(account, region string, in ec2types.Instance) policy.Instance {
	inst := policy.Instance{
		AccountID:  account,
		Region:     region,
		InstanceID: aws.ToString(in.InstanceId),
		LaunchTime: aws.ToTime(in.LaunchTime),
		ImageID:    aws.ToString(in.ImageId),
		Tags:       make(map[string]string, len(in.Tags)),
	}
	if in.State != nil {
		inst.State = string(in.State.Name)
	}
	inst.Options = MetadataOptions(in.MetadataOptions)
	for _, t := range in.Tags {
		inst.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	inst.Name = inst.Tags["Name"]
	if in.IamInstanceProfile != nil {
		inst.InstanceProfileARN = aws.ToString(in.IamInstanceProfile.Arn)
	}
	inst.Addresses = addresses(in)
	return inst
}

// MetadataOptions are EC2's metadata options of an instance as the policy holds them; the
// zero options when EC2 gave none.
func MetadataOptions(mo *ec2types.InstanceMetadataOptionsResponse) policy.MetadataOptions {
	if mo == nil {
		return policy.MetadataOptions{}
	}
	return policy.MetadataOptions{
		HTTPTokens:   string(mo.HttpTokens),
		HopLimit:     aws.ToInt32(mo.HttpPutResponseHopLimit),
		HTTPEndpoint: string(mo.HttpEndpoint),
		State:        string(mo.State),
	}
}

// addresses collects every address the instance's calls to AWS may come from.
func addresses(in ec2types.Instance) []string {
	addrs := []string{aws.ToString(in.PrivateIpAddress), aws.ToString(in.PublicIpAddress), aws.ToString(in.Ipv6Address)}
	for _, ni := range in.NetworkInterfaces {
		for _, p := range ni.PrivateIpAddresses {
			addrs = append(addrs, aws.ToString(p.PrivateIpAddress))
			if p.Association != nil {
				addrs = append(addrs, aws.ToString(p.Association.PublicIp))
			}
		}
		if ni.Association != nil {
			addrs = append(addrs, aws.ToString(ni.Association.PublicIp))
		}
		for _, v6 := range ni.Ipv6Addresses {
			addrs = append(addrs, aws.ToString(v6.Ipv6Address))
		}
	}
	return sortedUnique(addrs)
}

// sortedUnique returns the distinct non-empty values in ascending order.
func sortedUnique(values []string) []string {
	values = slices.DeleteFunc(slices.Clone(values), func(s string) bool { return s == "" })
	slices.Sort(values)
	return slices.Compact(values)
}
