// Package sources inventories where instances come from (DESIGN.md section 10): launch
// templates and their default and latest versions' metadata options, and, in later
// steps, Auto Scaling groups, the account's instance metadata defaults and AMIs. It
// reads in pages and batches as the instance inventory does, and holds every reply to the
// same integrity rules (internal/evidence): an empty or truncated reply is an error,
// never "no source".
package sources

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// EC2API is the part of the EC2 client the source inventory uses.
type EC2API interface {
	DescribeLaunchTemplates(ctx context.Context, in *ec2.DescribeLaunchTemplatesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DescribeLaunchTemplateVersions(ctx context.Context, in *ec2.DescribeLaunchTemplateVersionsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
}

// LaunchTemplate is one launch template of the account-region.
type LaunchTemplate struct {
	ID, Name                      string
	DefaultVersion, LatestVersion int64
	// Default and Latest are the metadata options of those versions; nil when the version
	// sets none (its instances then get the account's defaults).
	Default, Latest *policy.MetadataOptions
	Tags            map[string]string
}

const (
	opDescribeTemplates = "ec2:DescribeLaunchTemplates"
	opDescribeVersions  = "ec2:DescribeLaunchTemplateVersions"
	// pageSize is the most either call returns in one page.
	pageSize = 200
)

// LaunchTemplates lists the account-region's launch templates with the metadata options
// of their default and latest versions: one paged call for the templates and one for
// each of $Default and $Latest across all of them, however many templates there are.
func LaunchTemplates(ctx context.Context, api EC2API) ([]LaunchTemplate, error) {
	byID := map[string]*LaunchTemplate{}
	var order []string
	in := &ec2.DescribeLaunchTemplatesInput{MaxResults: aws.Int32(pageSize)}
	err := readPages(opDescribeTemplates, opDescribeTemplates, func(token *string) (*string, error) {
		in.NextToken = token
		page, err := api.DescribeLaunchTemplates(ctx, in)
		if err == nil && (page == nil || page.LaunchTemplates == nil) {
			err = incomplete(opDescribeTemplates, "no LaunchTemplates")
		}
		if err != nil {
			return nil, err
		}
		for _, t := range page.LaunchTemplates {
			id := aws.ToString(t.LaunchTemplateId)
			if id == "" || byID[id] != nil {
				return nil, incomplete(opDescribeTemplates, fmt.Sprintf("a template without an id, or %q twice", id))
			}
			lt := &LaunchTemplate{ID: id, Name: aws.ToString(t.LaunchTemplateName),
				DefaultVersion: aws.ToInt64(t.DefaultVersionNumber), LatestVersion: aws.ToInt64(t.LatestVersionNumber), Tags: map[string]string{}}
			for _, tag := range t.Tags {
				lt.Tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
			}
			byID[id] = lt
			order = append(order, id)
		}
		return page.NextToken, nil
	})
	if err != nil {
		return nil, err
	}
	if len(byID) == 0 {
		return nil, nil
	}
	for _, which := range []string{"$Default", "$Latest"} {
		if err := readVersions(ctx, api, which, byID); err != nil {
			return nil, err
		}
	}
	out := make([]LaunchTemplate, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	slices.SortFunc(out, func(a, b LaunchTemplate) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// readVersions reads the $Default or $Latest version of every template and files its
// metadata options; every template must be answered, with the version number it says.
func readVersions(ctx context.Context, api EC2API, which string, byID map[string]*LaunchTemplate) error {
	in := &ec2.DescribeLaunchTemplateVersionsInput{Versions: []string{which}, MaxResults: aws.Int32(pageSize)}
	answered := map[string]bool{}
	err := readPages(opDescribeVersions, opDescribeVersions+" "+which, func(token *string) (*string, error) {
		in.NextToken = token
		page, err := api.DescribeLaunchTemplateVersions(ctx, in)
		if err == nil && (page == nil || page.LaunchTemplateVersions == nil) {
			err = incomplete(opDescribeVersions, "no LaunchTemplateVersions")
		}
		if err != nil {
			return nil, err
		}
		for _, v := range page.LaunchTemplateVersions {
			lt := byID[aws.ToString(v.LaunchTemplateId)]
			if lt == nil {
				// Created since the templates were listed: the next inventory has it.
				continue
			}
			opts := templateOptions(v.LaunchTemplateData)
			if which == "$Default" {
				lt.Default, lt.DefaultVersion = opts, aws.ToInt64(v.VersionNumber)
			} else {
				lt.Latest, lt.LatestVersion = opts, aws.ToInt64(v.VersionNumber)
			}
			answered[lt.ID] = true
		}
		return page.NextToken, nil
	})
	if err != nil {
		return err
	}
	for id := range byID {
		if !answered[id] {
			return fmt.Errorf("%s %s: %w", opDescribeVersions, which, incomplete(opDescribeVersions, "no answer for launch template "+id))
		}
	}
	return nil
}

// templateOptions are a template version's metadata options; nil when it sets none.
func templateOptions(data *ec2types.ResponseLaunchTemplateData) *policy.MetadataOptions {
	if data == nil || data.MetadataOptions == nil {
		return nil
	}
	mo := data.MetadataOptions
	return &policy.MetadataOptions{HTTPTokens: string(mo.HttpTokens), HopLimit: aws.ToInt32(mo.HttpPutResponseHopLimit), HTTPEndpoint: string(mo.HttpEndpoint)}
}
