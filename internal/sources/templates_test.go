package sources_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/sources"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

func TestMain(m *testing.M) { os.Exit(testsupport.RunWithMoto(m)) }

func ec2Client(t *testing.T) *ec2.Client {
	t.Helper()
	moto := testsupport.Moto(t)
	return ec2.NewFromConfig(fakeaws.AWSConfig("us-east-1"), func(o *ec2.Options) { o.BaseEndpoint = aws.String(moto.URL) })
}

// TestLaunchTemplates lists templates through the real client from moto, with the
// metadata options of their default and latest versions: a template whose latest version
// requires tokens while its default does not, one that sets no options, and tags.
func TestLaunchTemplates(t *testing.T) {
	client := ec2Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	web, err := client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(fakeaws.DefaultAMI),
			MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{HttpTokens: ec2types.LaunchTemplateHttpTokensStateOptional, HttpPutResponseHopLimit: aws.Int32(2)}},
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeLaunchTemplate,
			Tags: []ec2types.Tag{{Key: aws.String("team"), Value: aws.String("web")}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: web.LaunchTemplate.LaunchTemplateId,
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(fakeaws.DefaultAMI),
			MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{HttpTokens: ec2types.LaunchTemplateHttpTokensStateRequired}},
	}); err != nil {
		t.Fatal(err)
	}
	bare, err := client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("bare"), LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(fakeaws.DefaultAMI)},
	})
	if err != nil {
		t.Fatal(err)
	}

	got, err := sources.LaunchTemplates(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d templates %+v, want 2", len(got), got)
	}
	byID := map[string]sources.LaunchTemplate{}
	for _, lt := range got {
		byID[lt.ID] = lt
	}
	w := byID[aws.ToString(web.LaunchTemplate.LaunchTemplateId)]
	if w.Name != "web" || w.DefaultVersion != 1 || w.LatestVersion != 2 || w.Tags["team"] != "web" ||
		w.Default == nil || w.Default.HTTPTokens != "optional" || w.Default.HopLimit != 2 || w.Latest == nil || w.Latest.HTTPTokens != "required" {
		t.Errorf("web = %+v (default %+v, latest %+v)", w, w.Default, w.Latest)
	}
	if b := byID[aws.ToString(bare.LaunchTemplate.LaunchTemplateId)]; b.Default != nil || b.Latest != nil {
		t.Errorf("bare = %+v: a template that sets no options has none", b)
	}
}

// emptyVersions answers DescribeLaunchTemplateVersions with a 200 that lacks its result
// element, as a broken proxy might.
type emptyVersions struct{ *ec2.Client }

func (emptyVersions) DescribeLaunchTemplateVersions(context.Context, *ec2.DescribeLaunchTemplateVersionsInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error) {
	return &ec2.DescribeLaunchTemplateVersionsOutput{}, nil
}

// TestLaunchTemplatesBrokenReply: a reply without its result element is an error, never
// "these templates set no options".
func TestLaunchTemplatesBrokenReply(t *testing.T) {
	client := ec2Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("web"), LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(fakeaws.DefaultAMI)},
	}); err != nil {
		t.Fatal(err)
	}
	_, err := sources.LaunchTemplates(ctx, emptyVersions{client})
	var incomplete *evidence.IncompleteReplyError
	if !errors.As(err, &incomplete) {
		t.Errorf("err = %v, want an incomplete reply", err)
	}
}

// TestGroups lists Auto Scaling groups from moto: one on a template's $Default, one
// pinned to a version, one on a launch configuration, with their instances.
func TestGroups(t *testing.T) {
	client := ec2Client(t)
	moto := testsupport.Moto(t)
	asg := autoscaling.NewFromConfig(fakeaws.AWSConfig("us-east-1"), func(o *autoscaling.Options) { o.BaseEndpoint = aws.String(moto.URL) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lt, err := client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("web"), LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(fakeaws.DefaultAMI), InstanceType: ec2types.InstanceTypeT3Micro},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := lt.LaunchTemplate.LaunchTemplateId
	zones := []string{"us-east-1a"}
	for name, version := range map[string]string{"web-default": "", "web-pinned": "1"} {
		spec := &astypes.LaunchTemplateSpecification{LaunchTemplateId: id}
		if version != "" {
			spec.Version = aws.String(version)
		}
		if _, err := asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String(name),
			LaunchTemplate: spec, MinSize: aws.Int32(1), MaxSize: aws.Int32(2), DesiredCapacity: aws.Int32(1), AvailabilityZones: zones}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := asg.CreateLaunchConfiguration(ctx, &autoscaling.CreateLaunchConfigurationInput{LaunchConfigurationName: aws.String("legacy-lc"),
		ImageId: aws.String(fakeaws.DefaultAMI), InstanceType: aws.String("t3.micro")}); err != nil {
		t.Fatal(err)
	}
	if _, err := asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("legacy"),
		LaunchConfigurationName: aws.String("legacy-lc"), MinSize: aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(0), AvailabilityZones: zones}); err != nil {
		t.Fatal(err)
	}

	groups, err := sources.Groups(ctx, asg)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 3 {
		t.Fatalf("groups %+v, want 3", groups)
	}
	byName := map[string]sources.Group{}
	for _, g := range groups {
		byName[g.Name] = g
	}
	if g := byName["web-default"]; g.LaunchTemplateID != aws.ToString(id) || g.LaunchTemplateVersion != "$Default" || g.Pinned() || len(g.Instances) != 1 {
		t.Errorf("web-default = %+v", g)
	}
	if g := byName["web-pinned"]; g.LaunchTemplateVersion != "1" || !g.Pinned() {
		t.Errorf("web-pinned = %+v, want pinned to 1", g)
	}
	if g := byName["legacy"]; g.LaunchConfiguration != "legacy-lc" || g.LaunchTemplateID != "" || g.Pinned() {
		t.Errorf("legacy = %+v", g)
	}
}
