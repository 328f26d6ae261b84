package sources

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
)

// AutoScalingAPI is the part of the Auto Scaling client the source inventory uses.
type AutoScalingAPI interface {
	DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
}

// Group is one Auto Scaling group and what it launches from: a launch template (directly
// or through a mixed instances policy) or a launch configuration.
type Group struct {
	Name string
	// LaunchTemplateID and LaunchTemplateName name its template; LaunchTemplateVersion is
	// the version it launches: $Default, $Latest or a number (pinned). Empty without a
	// template.
	LaunchTemplateID, LaunchTemplateName, LaunchTemplateVersion string
	// LaunchConfiguration names its launch configuration; empty without one.
	LaunchConfiguration string
	// Instances are the ids of its instances.
	Instances []string
	Tags      map[string]string
}

// Pinned reports whether the group launches a fixed version of its template, which a
// new default version would not reach.
func (g Group) Pinned() bool {
	v := g.LaunchTemplateVersion
	return g.LaunchTemplateID+g.LaunchTemplateName != "" && v != "" && v != "$Default" && v != "$Latest"
}

const (
	opDescribeGroups = "autoscaling:DescribeAutoScalingGroups"
	// groupPageSize is the most DescribeAutoScalingGroups returns in one page.
	groupPageSize = 100
)

// Groups lists the account-region's Auto Scaling groups, in pages of 100.
func Groups(ctx context.Context, api AutoScalingAPI) ([]Group, error) {
	in := &autoscaling.DescribeAutoScalingGroupsInput{MaxRecords: aws.Int32(groupPageSize)}
	seen := map[string]bool{}
	var out []Group
	err := readPages(opDescribeGroups, opDescribeGroups, func(token *string) (*string, error) {
		in.NextToken = token
		page, err := api.DescribeAutoScalingGroups(ctx, in)
		if err == nil && (page == nil || page.AutoScalingGroups == nil) {
			err = incomplete(opDescribeGroups, "no AutoScalingGroups")
		}
		if err != nil {
			return nil, err
		}
		for _, g := range page.AutoScalingGroups {
			name := aws.ToString(g.AutoScalingGroupName)
			if name == "" || seen[name] {
				return nil, incomplete(opDescribeGroups, fmt.Sprintf("a group without a name, or %q twice", name))
			}
			seen[name] = true
			out = append(out, newGroup(g))
		}
		return page.NextToken, nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Group) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func newGroup(g astypes.AutoScalingGroup) Group {
	out := Group{Name: aws.ToString(g.AutoScalingGroupName), LaunchConfiguration: aws.ToString(g.LaunchConfigurationName), Tags: map[string]string{}}
	spec := g.LaunchTemplate
	if spec == nil && g.MixedInstancesPolicy != nil && g.MixedInstancesPolicy.LaunchTemplate != nil {
		spec = g.MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification
	}
	if spec != nil {
		out.LaunchTemplateID, out.LaunchTemplateName = aws.ToString(spec.LaunchTemplateId), aws.ToString(spec.LaunchTemplateName)
		// A group that names no version launches the default one.
		out.LaunchTemplateVersion = aws.ToString(spec.Version)
		if out.LaunchTemplateVersion == "" {
			out.LaunchTemplateVersion = "$Default"
		}
	}
	for _, i := range g.Instances {
		out.Instances = append(out.Instances, aws.ToString(i.InstanceId))
	}
	slices.Sort(out.Instances)
	for _, t := range g.Tags {
		out.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return out
}
