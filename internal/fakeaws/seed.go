package fakeaws

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"
)

// DefaultAMI is an Amazon Linux image that moto ships in every region. (moto does not
// check image IDs on RunInstances; a real-looking one keeps the inventory realistic.)
const DefaultAMI = "ami-760aaa0f"

// runBatch is how many instances one RunInstances call launches. moto takes about 6 ms
// per instance, so a batch stays well within client timeouts.
const runBatch = 1000

// InstanceSpec describes instances for SeedInstances. Zero values leave moto's defaults,
// which match EC2's: HttpTokens "optional", hop limit 1, endpoint "enabled", running.
type InstanceSpec struct {
	Count        int    // default 1
	Name         string // the Name tag, when set
	ImageID      string // default DefaultAMI
	InstanceType string // default "t3.micro"
	HttpTokens   string // "optional" or "required"
	HopLimit     int32  // HttpPutResponseHopLimit, 1-64
	HttpEndpoint string // "enabled" or "disabled"
	Tags         map[string]string
	// InstanceProfileName is attached on launch. moto rejects RunInstances with an
	// unknown profile (NoSuchEntity), so it is created in moto's IAM, with a role of the
	// same name trusted by ec2.amazonaws.com, when it does not exist yet.
	InstanceProfileName string
	State               string // "running" (default), "stopped" or "terminated"
}

// SeededInstance is an instance SeedInstances launched.
type SeededInstance struct {
	ID        string
	PrivateIP string
	PublicIP  string // empty when the instance has none (e.g. stopped)
}

// SeedInstances launches spec.Count instances in moto through the real EC2 client, in
// RunInstances batches of 1000, then moves them to spec.State. The IAM client needed
// for the instance profile is derived from client's options (moto serves every service
// at one endpoint).
func SeedInstances(ctx context.Context, client *ec2.Client, spec InstanceSpec) ([]SeededInstance, error) {
	if spec.Count == 0 {
		spec.Count = 1
	}
	if spec.ImageID == "" {
		spec.ImageID = DefaultAMI
	}
	if spec.InstanceType == "" {
		spec.InstanceType = "t3.micro"
	}
	if spec.State == "" {
		spec.State = "running"
	}
	if spec.State != "running" && spec.State != "stopped" && spec.State != "terminated" {
		return nil, fmt.Errorf("SeedInstances: unsupported State %q", spec.State)
	}
	in := &ec2.RunInstancesInput{
		ImageId:      aws.String(spec.ImageID),
		InstanceType: ec2types.InstanceType(spec.InstanceType),
	}
	if spec.HttpTokens != "" || spec.HopLimit != 0 || spec.HttpEndpoint != "" {
		in.MetadataOptions = &ec2types.InstanceMetadataOptionsRequest{
			HttpTokens:   ec2types.HttpTokensState(spec.HttpTokens),
			HttpEndpoint: ec2types.InstanceMetadataEndpointState(spec.HttpEndpoint),
		}
		if spec.HopLimit != 0 {
			in.MetadataOptions.HttpPutResponseHopLimit = aws.Int32(spec.HopLimit)
		}
	}
	tags := maps.Clone(spec.Tags)
	if spec.Name != "" {
		if tags == nil {
			tags = map[string]string{}
		}
		tags["Name"] = spec.Name
	}
	if len(tags) > 0 {
		ts := make([]ec2types.Tag, 0, len(tags))
		for _, k := range slices.Sorted(maps.Keys(tags)) {
			ts = append(ts, ec2types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
		}
		in.TagSpecifications = []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: ts}}
	}
	if spec.InstanceProfileName != "" {
		if err := ensureInstanceProfile(ctx, iamFor(client), spec.InstanceProfileName); err != nil {
			return nil, err
		}
		in.IamInstanceProfile = &ec2types.IamInstanceProfileSpecification{Name: aws.String(spec.InstanceProfileName)}
	}

	out := make([]SeededInstance, 0, spec.Count)
	for left := spec.Count; left > 0; left -= runBatch {
		n := int32(min(left, runBatch))
		in.MinCount, in.MaxCount = aws.Int32(n), aws.Int32(n)
		res, err := client.RunInstances(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("RunInstances: %w", err)
		}
		for _, inst := range res.Instances {
			// moto 5.2 attaches IamInstanceProfile to the first instance of a
			// reservation only; EC2 attaches it to every one.
			if in.IamInstanceProfile != nil && inst.IamInstanceProfile == nil {
				if err := associateProfile(ctx, client, aws.ToString(inst.InstanceId), spec.InstanceProfileName); err != nil {
					return nil, err
				}
			}
			out = append(out, seeded(inst))
		}
	}
	if spec.State == "running" {
		// RunInstances reports "pending"; moto shows every instance "running" on the next
		// DescribeInstances, so there is nothing to wait for.
		return out, nil
	}
	ids := make([]string, len(out))
	for i, s := range out {
		ids[i] = s.ID
	}
	for chunk := range slices.Chunk(ids, runBatch) {
		var err error
		if spec.State == "stopped" {
			_, err = client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: chunk})
		} else {
			_, err = client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: chunk})
		}
		if err != nil {
			return nil, fmt.Errorf("move instances to %s: %w", spec.State, err)
		}
	}
	// Stopping and terminating change addresses: report what DescribeInstances shows.
	byID := map[string]SeededInstance{}
	for chunk := range slices.Chunk(ids, runBatch) {
		res, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: chunk})
		if err != nil {
			return nil, fmt.Errorf("DescribeInstances: %w", err)
		}
		for _, r := range res.Reservations {
			for _, inst := range r.Instances {
				byID[aws.ToString(inst.InstanceId)] = seeded(inst)
			}
		}
	}
	for i, s := range out {
		if d, ok := byID[s.ID]; ok {
			out[i] = d
		}
	}
	return out, nil
}

func seeded(inst ec2types.Instance) SeededInstance {
	return SeededInstance{
		ID:        aws.ToString(inst.InstanceId),
		PrivateIP: aws.ToString(inst.PrivateIpAddress),
		PublicIP:  aws.ToString(inst.PublicIpAddress),
	}
}

// iamFor builds an IAM client that talks to the same endpoint, with the same
// credentials and HTTP client, as the EC2 client.
func iamFor(client *ec2.Client) *iam.Client {
	o := client.Options()
	return iam.New(iam.Options{
		BaseEndpoint: o.BaseEndpoint,
		Region:       o.Region,
		Credentials:  o.Credentials,
		HTTPClient:   o.HTTPClient,
		Retryer:      o.Retryer,
	})
}

const ec2AssumeRolePolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` +
	`"Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

// ensureInstanceProfile creates instance profile name, holding a role of the same name,
// unless it exists.
func ensureInstanceProfile(ctx context.Context, client *iam.Client, name string) error {
	_, err := client.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
	var missing *iamtypes.NoSuchEntityException
	if err == nil || !errors.As(err, &missing) {
		return err
	}
	var exists *iamtypes.EntityAlreadyExistsException
	if _, err := client.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName:                 aws.String(name),
		AssumeRolePolicyDocument: aws.String(ec2AssumeRolePolicy),
	}); err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("CreateRole: %w", err)
	}
	if _, err := client.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{
		InstanceProfileName: aws.String(name),
	}); err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("CreateInstanceProfile: %w", err)
	}
	if _, err := client.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{
		InstanceProfileName: aws.String(name),
		RoleName:            aws.String(name),
	}); err != nil {
		return fmt.Errorf("AddRoleToInstanceProfile: %w", err)
	}
	return nil
}

// Point is one datapoint of a metric series.
type Point struct {
	Time  time.Time
	Value float64
}

// HourlyPoints builds an hourly series covering the hours hours before end: hour index
// 0 is the oldest, at end-hours*1h, and index hours-1 is at end-1h. value returns the
// datapoint of an hour, or ok=false for an hour without one (a gap, which GetMetricData
// leaves out rather than reporting 0). Pass an hour-aligned end so that the points sit
// at the start of the buckets of a query with StartTime end-hours*1h and Period 3600.
func HourlyPoints(end time.Time, hours int, value func(hourIndex int) (v float64, ok bool)) []Point {
	pts := make([]Point, 0, hours)
	for i := range hours {
		if v, ok := value(i); ok {
			pts = append(pts, Point{Time: end.Add(-time.Duration(hours-i) * time.Hour), Value: v})
		}
	}
	return pts
}

// Namespace, metric and dimension of the EC2 metric counting IMDSv1 (token-less) calls.
const (
	MetadataNoTokenNamespace = "AWS/EC2"
	MetadataNoTokenMetric    = "MetadataNoToken"
	MetadataNoTokenDimension = "InstanceId"
)

// putBatch is how many datapoints PutMetadataNoToken sends per PutMetricData call. The
// service allows 1000, but moto's form parsing grows faster than linearly with request
// size: 336 points take about 0.5 s in one call and 0.2 s in calls of 50.
const putBatch = 50

// PutMetadataNoToken publishes pts as AWS/EC2 MetadataNoToken of instanceID (dimension
// InstanceId, unit Count) through the real CloudWatch client, in PutMetricData calls of
// 50 datapoints (well under the service's 1000). It works against moto and the
// CloudWatch stand-in; real CloudWatch refuses the reserved AWS/ namespace.
func PutMetadataNoToken(ctx context.Context, client *cloudwatch.Client, instanceID string, pts []Point) error {
	return PutInstanceMetric(ctx, client, MetadataNoTokenMetric, instanceID, pts)
}

// PutInstanceMetric is PutMetadataNoToken for another AWS/EC2 metric of the instance
// (MetadataNoTokenRejected).
func PutInstanceMetric(ctx context.Context, client *cloudwatch.Client, metric, instanceID string, pts []Point) error {
	dims := []cwtypes.Dimension{{Name: aws.String(MetadataNoTokenDimension), Value: aws.String(instanceID)}}
	for chunk := range slices.Chunk(pts, putBatch) {
		data := make([]cwtypes.MetricDatum, len(chunk))
		for i, p := range chunk {
			data[i] = cwtypes.MetricDatum{
				MetricName: aws.String(metric),
				Dimensions: dims,
				Timestamp:  aws.Time(p.Time),
				Value:      aws.Float64(p.Value),
				Unit:       cwtypes.StandardUnitCount,
			}
		}
		if _, err := client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{
			Namespace:  aws.String(MetadataNoTokenNamespace),
			MetricData: data,
		}); err != nil {
			return fmt.Errorf("PutMetricData %s of %s: %w", metric, instanceID, err)
		}
	}
	return nil
}

// associateProfile attaches the instance profile to the instance. The SDK sends the call
// again when a reply is lost (a loaded moto drops connections); if the first attempt did
// attach it, the second fails with IncorrectState, and the profile is then checked to be
// the one asked for.
func associateProfile(ctx context.Context, client *ec2.Client, id, profile string) error {
	_, err := client.AssociateIamInstanceProfile(ctx, &ec2.AssociateIamInstanceProfileInput{
		InstanceId: aws.String(id), IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: aws.String(profile)},
	})
	var apiErr smithy.APIError
	if err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode() != "IncorrectState" {
		if err != nil {
			return fmt.Errorf("AssociateIamInstanceProfile %s: %w", id, err)
		}
		return nil
	}
	out, derr := client.DescribeIamInstanceProfileAssociations(ctx, &ec2.DescribeIamInstanceProfileAssociationsInput{
		Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: []string{id}}},
	})
	if derr != nil {
		return fmt.Errorf("AssociateIamInstanceProfile %s: %w (and reading its association: %v)", id, err, derr)
	}
	for _, a := range out.IamInstanceProfileAssociations {
		if a.IamInstanceProfile != nil && strings.HasSuffix(aws.ToString(a.IamInstanceProfile.Arn), "/"+profile) {
			return nil
		}
	}
	return fmt.Errorf("AssociateIamInstanceProfile %s: %w", id, err)
}
