package fakeaws

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// GroupSpec is an Auto Scaling group to seed, with the launch template it launches from.
type GroupSpec struct {
	Name string
	// Template is the launch template's name; it launches with HttpTokens optional and
	// the hop limit HopLimit.
	Template string
	HopLimit int32
	// Size is how many instances the group runs.
	Size int32
}

// SeededGroup is a group SeedGroup made, with its template and instances.
type SeededGroup struct {
	Name, TemplateID string
	Instances        []SeededInstance
}

// SeedGroup makes the launch template and the Auto Scaling group in moto through the real
// clients (the Auto Scaling client derived from client's options), and returns the
// instances moto launched for the group, described as SeedInstances describes its own.
func SeedGroup(ctx context.Context, client *ec2.Client, spec GroupSpec) (SeededGroup, error) {
	lt, err := client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(spec.Template),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(DefaultAMI), InstanceType: ec2types.InstanceTypeT3Micro,
			MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{HttpTokens: ec2types.LaunchTemplateHttpTokensStateOptional,
				HttpPutResponseHopLimit: aws.Int32(spec.HopLimit), HttpEndpoint: ec2types.LaunchTemplateInstanceMetadataEndpointStateEnabled}},
	})
	if err != nil {
		return SeededGroup{}, fmt.Errorf("creating launch template %s: %w", spec.Template, err)
	}
	g := SeededGroup{Name: spec.Name, TemplateID: aws.ToString(lt.LaunchTemplate.LaunchTemplateId)}
	asg := autoScalingFor(client)
	if _, err := asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(spec.Name),
		LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(g.TemplateID), Version: aws.String("$Default")},
		MinSize:              aws.Int32(spec.Size), MaxSize: aws.Int32(spec.Size), DesiredCapacity: aws.Int32(spec.Size),
		AvailabilityZones: []string{client.Options().Region + "a"},
		Tags:              []astypes.Tag{{Key: aws.String("Name"), Value: aws.String(spec.Name), PropagateAtLaunch: aws.Bool(true)}},
	}); err != nil {
		return SeededGroup{}, fmt.Errorf("creating Auto Scaling group %s: %w", spec.Name, err)
	}
	out, err := asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{spec.Name}})
	if err != nil {
		return SeededGroup{}, fmt.Errorf("describing Auto Scaling group %s: %w", spec.Name, err)
	}
	if len(out.AutoScalingGroups) != 1 || len(out.AutoScalingGroups[0].Instances) != int(spec.Size) {
		return SeededGroup{}, fmt.Errorf("group %s: moto described %d groups, or not %d instances", spec.Name, len(out.AutoScalingGroups), spec.Size)
	}
	var ids []string
	for _, i := range out.AutoScalingGroups[0].Instances {
		ids = append(ids, aws.ToString(i.InstanceId))
	}
	described, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		return SeededGroup{}, fmt.Errorf("describing the instances of %s: %w", spec.Name, err)
	}
	byID := map[string]SeededInstance{}
	for _, r := range described.Reservations {
		for _, in := range r.Instances {
			byID[aws.ToString(in.InstanceId)] = SeededInstance{ID: aws.ToString(in.InstanceId), PrivateIP: aws.ToString(in.PrivateIpAddress), PublicIP: aws.ToString(in.PublicIpAddress)}
		}
	}
	for _, id := range ids {
		g.Instances = append(g.Instances, byID[id])
	}
	return g, nil
}

// autoScalingFor builds an Auto Scaling client that talks to the same endpoint, with the
// same credentials and HTTP client, as the EC2 client.
func autoScalingFor(client *ec2.Client) *autoscaling.Client {
	o := client.Options()
	return autoscaling.New(autoscaling.Options{BaseEndpoint: o.BaseEndpoint, Region: o.Region, Credentials: o.Credentials, HTTPClient: o.HTTPClient, Retryer: o.Retryer})
}
