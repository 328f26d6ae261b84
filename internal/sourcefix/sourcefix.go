// Package sourcefix changes the sources of instances (DESIGN.md section 10): a launch
// template's new default version with HttpTokens required, the account's instance
// metadata defaults, and their rollbacks. It is apart from package enforce so that the
// verify function, which rolls back instances only, links (and is granted) none of it.
package sourcefix

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/sourcefix/launchtemplate"
)

// EC2API is the part of the EC2 client that fixes and rolls back the sources of
// instances: launch templates and the account's instance metadata defaults.
type EC2API interface {
	DescribeLaunchTemplateVersions(ctx context.Context, in *ec2.DescribeLaunchTemplateVersionsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
	CreateLaunchTemplateVersion(ctx context.Context, in *ec2.CreateLaunchTemplateVersionInput, optFns ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateVersionOutput, error)
	ModifyLaunchTemplate(ctx context.Context, in *ec2.ModifyLaunchTemplateInput, optFns ...func(*ec2.Options)) (*ec2.ModifyLaunchTemplateOutput, error)
	GetInstanceMetadataDefaults(ctx context.Context, in *ec2.GetInstanceMetadataDefaultsInput, optFns ...func(*ec2.Options)) (*ec2.GetInstanceMetadataDefaultsOutput, error)
	ModifyInstanceMetadataDefaults(ctx context.Context, in *ec2.ModifyInstanceMetadataDefaultsInput, optFns ...func(*ec2.Options)) (*ec2.ModifyInstanceMetadataDefaultsOutput, error)
}

// Fixer changes the sources of instances: it makes a launch template's new default
// version with HttpTokens required, sets the account's defaults to required, and puts
// either back. Each change sets only HttpTokens and the hop limit, and keeps every other
// metadata option of the source as it is.
type Fixer struct {
	EC2 EC2API
}

// Template is a launch template's default version as EC2 reports it now.
type Template = launchtemplate.Template

// ErrSourceGone means the launch template no longer exists.
var ErrSourceGone = launchtemplate.ErrGone

const (
	opCreateVersion  = "ec2:CreateLaunchTemplateVersion"
	opGetDefaults    = "ec2:GetInstanceMetadataDefaults"
	opModifyDefaults = "ec2:ModifyInstanceMetadataDefaults"
	noPreference     = "no-preference"
)

// Template reads the launch template's default version.
func (f *Fixer) Template(ctx context.Context, id string) (Template, error) {
	return (&launchtemplate.Client{EC2: f.EC2}).Template(ctx, id)
}

// FixTemplate makes a new version of the template from its default version t, with
// HttpTokens required and the target's hop limit (every other launch parameter and
// metadata option copied), and makes it the default. token makes the new version
// idempotent (EC2's ClientToken): a retry of the same decision gets the same version.
// With dryRun, EC2 only checks that the call would be allowed.
func (f *Fixer) FixTemplate(ctx context.Context, t Template, target policy.MetadataOptions, token, description string, dryRun bool) (int64, error) {
	if target.HTTPTokens != policy.TokensRequired {
		return 0, fmt.Errorf("launch template %s: refusing to set HttpTokens %q; a fix sets required", t.ID, target.HTTPTokens)
	}
	mo := &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{HttpTokens: ec2types.LaunchTemplateHttpTokensStateRequired}
	if target.HopLimit > 0 {
		mo.HttpPutResponseHopLimit = aws.Int32(target.HopLimit)
	}
	if r := t.Raw; r != nil {
		mo.HttpEndpoint = r.HttpEndpoint
		mo.HttpProtocolIpv6 = r.HttpProtocolIpv6
		mo.InstanceMetadataTags = r.InstanceMetadataTags
		if target.HopLimit <= 0 {
			mo.HttpPutResponseHopLimit = r.HttpPutResponseHopLimit
		}
	}
	out, err := f.EC2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: aws.String(t.ID), SourceVersion: aws.String(strconv.FormatInt(t.DefaultVersion, 10)),
		VersionDescription: aws.String(description), ClientToken: aws.String(token), DryRun: aws.Bool(dryRun),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{MetadataOptions: mo},
	})
	if dryRun {
		return 0, dryRunResult(opCreateVersion, t.ID, err)
	}
	if err == nil && (out == nil || out.LaunchTemplateVersion == nil || aws.ToInt64(out.LaunchTemplateVersion.VersionNumber) < 1) {
		err = &evidence.IncompleteReplyError{Operation: opCreateVersion, Problem: "no launchTemplateVersion"}
	}
	if err != nil {
		return 0, fmt.Errorf("%s on %s: %w", opCreateVersion, t.ID, err)
	}
	version := aws.ToInt64(out.LaunchTemplateVersion.VersionNumber)
	if err := f.SetDefaultVersion(ctx, t.ID, version); err != nil {
		return 0, err
	}
	return version, nil
}

// SetDefaultVersion makes version the template's default: the fix's last step, and a
// rollback's only one.
func (f *Fixer) SetDefaultVersion(ctx context.Context, id string, version int64) error {
	return (&launchtemplate.Client{EC2: f.EC2}).SetDefaultVersion(ctx, id, version)
}

// Defaults reads the account-region's instance metadata defaults.
func (f *Fixer) Defaults(ctx context.Context) (policy.AccountDefaults, error) {
	out, err := f.EC2.GetInstanceMetadataDefaults(ctx, &ec2.GetInstanceMetadataDefaultsInput{})
	if err == nil && (out == nil || out.AccountLevel == nil) {
		err = &evidence.IncompleteReplyError{Operation: opGetDefaults, Problem: "no accountLevel"}
	}
	if err != nil {
		return policy.AccountDefaults{}, fmt.Errorf("%s: %w", opGetDefaults, err)
	}
	a := out.AccountLevel
	return policy.AccountDefaults{HTTPTokens: string(a.HttpTokens), HTTPEndpoint: string(a.HttpEndpoint), HopLimit: aws.ToInt32(a.HttpPutResponseHopLimit),
		HTTPTokensEnforced: string(a.HttpTokensEnforced), ManagedBy: string(a.ManagedBy), ManagedMessage: aws.ToString(a.ManagedExceptionMessage)}, nil
}

// SetDefaultTokens sets the account-region's default HttpTokens, and nothing else:
// required for a fix, the value from before (or no preference) for a rollback.
func (f *Fixer) SetDefaultTokens(ctx context.Context, httpTokens string, dryRun bool) error {
	if httpTokens == "" {
		httpTokens = noPreference
	}
	out, err := f.EC2.ModifyInstanceMetadataDefaults(ctx, &ec2.ModifyInstanceMetadataDefaultsInput{
		HttpTokens: ec2types.MetadataDefaultHttpTokensState(httpTokens), DryRun: aws.Bool(dryRun)})
	if dryRun {
		return dryRunResult(opModifyDefaults, "the account defaults", err)
	}
	if err == nil && (out == nil || !aws.ToBool(out.Return)) {
		err = &evidence.IncompleteReplyError{Operation: opModifyDefaults, Problem: "no return true"}
	}
	if err != nil {
		return fmt.Errorf("%s (HttpTokens %s): %w", opModifyDefaults, httpTokens, err)
	}
	return nil
}

// dryRunResult reads a dry run's reply: EC2 answers a permitted one with the
// DryRunOperation error; an emulator may answer with success instead. Both mean yes.
func dryRunResult(op, what string, err error) error {
	var apiErr smithy.APIError
	if err == nil || (errors.As(err, &apiErr) && apiErr.ErrorCode() == "DryRunOperation") {
		return nil
	}
	return fmt.Errorf("%s (dry run) on %s: %w", op, what, err)
}
