package sources

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// DefaultsAPI is the part of the EC2 client the account defaults are read with.
type DefaultsAPI interface {
	GetInstanceMetadataDefaults(ctx context.Context, in *ec2.GetInstanceMetadataDefaultsInput, optFns ...func(*ec2.Options)) (*ec2.GetInstanceMetadataDefaultsOutput, error)
}

// AccountDefaults are the account's instance metadata defaults in one region: what a
// launch that sets no option of its own gets.
type AccountDefaults = policy.AccountDefaults

const opGetDefaults = "ec2:GetInstanceMetadataDefaults"

// ReadAccountDefaults reads the region's instance metadata defaults.
func ReadAccountDefaults(ctx context.Context, api DefaultsAPI) (AccountDefaults, error) {
	out, err := api.GetInstanceMetadataDefaults(ctx, &ec2.GetInstanceMetadataDefaultsInput{})
	if err == nil && (out == nil || out.AccountLevel == nil) {
		err = &evidence.IncompleteReplyError{Operation: opGetDefaults, Problem: "no accountLevel"}
	}
	if err != nil {
		return AccountDefaults{}, fmt.Errorf("%s: %w", opGetDefaults, err)
	}
	a := out.AccountLevel
	return AccountDefaults{
		HTTPTokens: string(a.HttpTokens), HTTPEndpoint: string(a.HttpEndpoint), HopLimit: aws.ToInt32(a.HttpPutResponseHopLimit),
		HTTPTokensEnforced: string(a.HttpTokensEnforced), ManagedBy: string(a.ManagedBy), ManagedMessage: aws.ToString(a.ManagedExceptionMessage),
	}, nil
}
