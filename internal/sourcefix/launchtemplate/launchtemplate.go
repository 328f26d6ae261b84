// Package launchtemplate reads a launch template's default version and sets it: what
// a source fix builds on and what its rollback does (DESIGN.md section 10). It is apart
// from package sourcefix so that the verify function, which rolls a fix back, links (and
// is granted) these two calls and none of the fix's.
package launchtemplate

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
)

// API is the part of the EC2 client the package uses.
type API interface {
	DescribeLaunchTemplateVersions(ctx context.Context, in *ec2.DescribeLaunchTemplateVersionsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
	ModifyLaunchTemplate(ctx context.Context, in *ec2.ModifyLaunchTemplateInput, optFns ...func(*ec2.Options)) (*ec2.ModifyLaunchTemplateOutput, error)
}

// Client reads and sets launch templates' default versions.
type Client struct {
	EC2 API
}

const (
	opDescribeVersions  = "ec2:DescribeLaunchTemplateVersions"
	opModifyTemplate    = "ec2:ModifyLaunchTemplate"
	errTemplateNotFound = "InvalidLaunchTemplateId.NotFound"
)

// Template is a launch template's default version as EC2 reports it now.
type Template struct {
	ID, Name       string
	DefaultVersion int64
	// Description is the default version's description: imdsguard's fix names its
	// decision there.
	Description string
	// Options are its metadata options; nil when it sets none.
	Options *policy.MetadataOptions
	// Raw are the metadata options as EC2 reports them, with those Options leaves out
	// (IPv6 endpoint, instance tags), which a new version must copy; nil when it sets none.
	Raw *ec2types.LaunchTemplateInstanceMetadataOptions
}

// ErrGone means the launch template no longer exists.
var ErrGone = errors.New("the launch template no longer exists")

// Template reads the launch template's default version.
func (c *Client) Template(ctx context.Context, id string) (Template, error) {
	out, err := c.EC2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(id), Versions: []string{"$Default"}})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode() == errTemplateNotFound || apiErr.ErrorCode() == "InvalidLaunchTemplateName.NotFoundException") {
		return Template{}, fmt.Errorf("%s %s: %w", opDescribeVersions, id, ErrGone)
	}
	if err == nil && (out == nil || len(out.LaunchTemplateVersions) != 1 || aws.ToString(out.LaunchTemplateVersions[0].LaunchTemplateId) != id) {
		err = &evidence.IncompleteReplyError{Operation: opDescribeVersions, Problem: "not exactly the default version of " + id}
	}
	if err != nil {
		return Template{}, fmt.Errorf("%s %s: %w", opDescribeVersions, id, err)
	}
	v := out.LaunchTemplateVersions[0]
	t := Template{ID: id, Name: aws.ToString(v.LaunchTemplateName), DefaultVersion: aws.ToInt64(v.VersionNumber), Description: aws.ToString(v.VersionDescription)}
	if t.DefaultVersion < 1 {
		return Template{}, fmt.Errorf("%s %s: %w", opDescribeVersions, id, &evidence.IncompleteReplyError{Operation: opDescribeVersions, Problem: "no version number"})
	}
	if v.LaunchTemplateData != nil && v.LaunchTemplateData.MetadataOptions != nil {
		mo := v.LaunchTemplateData.MetadataOptions
		t.Raw = mo
		t.Options = &policy.MetadataOptions{HTTPTokens: string(mo.HttpTokens), HopLimit: aws.ToInt32(mo.HttpPutResponseHopLimit), HTTPEndpoint: string(mo.HttpEndpoint)}
	}
	return t, nil
}

// SetDefaultVersion makes version the template's default: the fix's last step, and a
// rollback's only one.
func (c *Client) SetDefaultVersion(ctx context.Context, id string, version int64) error {
	out, err := c.EC2.ModifyLaunchTemplate(ctx, &ec2.ModifyLaunchTemplateInput{LaunchTemplateId: aws.String(id), DefaultVersion: aws.String(strconv.FormatInt(version, 10))})
	if err == nil && (out == nil || out.LaunchTemplate == nil) {
		err = &evidence.IncompleteReplyError{Operation: opModifyTemplate, Problem: "no launchTemplate"}
	}
	if err == nil && aws.ToInt64(out.LaunchTemplate.DefaultVersionNumber) != version {
		err = fmt.Errorf("EC2 reports default version %d, not %d", aws.ToInt64(out.LaunchTemplate.DefaultVersionNumber), version)
	}
	if err != nil {
		return fmt.Errorf("%s on %s (default version %d): %w", opModifyTemplate, id, version, err)
	}
	return nil
}
