// Package clients declares consumer-owned interfaces with the exact SDK signatures.
package clients

import (
	ctx "context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	ec2svc "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// EC2 is called through: found, under an import alias, as ec2:DescribeInstances and
// ec2:ModifyInstanceMetadataOptions.
type EC2 interface {
	DescribeInstances(c ctx.Context, in *ec2svc.DescribeInstancesInput, optFns ...func(*ec2svc.Options)) (*ec2svc.DescribeInstancesOutput, error)
	ModifyInstanceMetadataOptions(ctx.Context, *ec2svc.ModifyInstanceMetadataOptionsInput, ...func(*ec2svc.Options)) (*ec2svc.ModifyInstanceMetadataOptionsOutput, error)
}

// NotSDK has methods that are not the SDK signature: none is found.
type NotSDK interface {
	// No optFns.
	StopInstances(c ctx.Context, in *ec2svc.StopInstancesInput) (*ec2svc.StopInstancesOutput, error)
	// Output of another operation.
	StartInstances(c ctx.Context, in *ec2svc.StartInstancesInput, optFns ...func(*ec2svc.Options)) (*ec2svc.RebootInstancesOutput, error)
	// No context.
	TerminateInstances(in *ec2svc.TerminateInstancesInput, optFns ...func(*ec2svc.Options)) (*ec2svc.TerminateInstancesOutput, error)
	// Options of another service.
	GetMetricStatistics(c ctx.Context, in *cloudwatch.GetMetricStatisticsInput, optFns ...func(*ec2svc.Options)) (*cloudwatch.GetMetricStatisticsOutput, error)
	Sleep(d time.Duration)
}

// Metrics embeds nothing but is used inline: found as cloudwatch:GetMetricData.
func Metrics(api interface {
	GetMetricData(c ctx.Context, in *cloudwatch.GetMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}) {
	_ = api
}

// Lookups takes the SDK's own paginator interface: found as cloudtrail:LookupEvents.
func Lookups(api cloudtrail.LookupEventsAPIClient) { _ = api }

// Filter is a literal of the types package, not an operation input: not found.
var Filter = ec2types.Filter{Name: nil}
