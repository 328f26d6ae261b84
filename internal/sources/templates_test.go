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
	"github.com/aws/smithy-go"

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

// proxiedEC2 is an EC2 client of us-east-1 through the EC2 proxy in front of moto, which
// serves what moto does not (the metadata defaults, ImdsSupport).
func proxiedEC2(t *testing.T) (*fakeaws.EC2DryRun, *ec2.Client) {
	t.Helper()
	moto := testsupport.Moto(t)
	proxy, err := fakeaws.NewEC2DryRun(moto.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	return proxy, ec2.NewFromConfig(fakeaws.AWSConfig("us-east-1"), func(o *ec2.Options) { o.BaseEndpoint = aws.String(proxy.URL) })
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

// TestAccountDefaults reads the instance metadata defaults through the real client from
// the EC2 proxy's stand-in (moto does not serve them), before and after a change, and a
// declarative policy's.
func TestAccountDefaults(t *testing.T) {
	proxy, client := proxiedEC2(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	d, err := sources.ReadAccountDefaults(ctx, client)
	if err != nil || d.HTTPTokens != "" || d.ManagedBy != "account" {
		t.Fatalf("defaults before any change: %+v, %v; want no preference, managed by the account", d, err)
	}
	if _, err := client.ModifyInstanceMetadataDefaults(ctx, &ec2.ModifyInstanceMetadataDefaultsInput{
		HttpTokens: ec2types.MetadataDefaultHttpTokensStateRequired, HttpPutResponseHopLimit: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	if d, err = sources.ReadAccountDefaults(ctx, client); err != nil || d.HTTPTokens != "required" || d.HopLimit != 2 {
		t.Errorf("defaults after the change: %+v, %v", d, err)
	}
	if _, err := client.ModifyInstanceMetadataDefaults(ctx, &ec2.ModifyInstanceMetadataDefaultsInput{
		HttpTokens: ec2types.MetadataDefaultHttpTokensStateNoPreference, HttpPutResponseHopLimit: aws.Int32(-1)}); err != nil {
		t.Fatal(err)
	}
	if d, err = sources.ReadAccountDefaults(ctx, client); err != nil || d.HTTPTokens != "" || d.HopLimit != 0 {
		t.Errorf("defaults cleared: %+v, %v", d, err)
	}
	// Another region is another setting.
	other := ec2.NewFromConfig(fakeaws.AWSConfig("eu-west-1"), func(o *ec2.Options) { o.BaseEndpoint = aws.String(proxy.URL) })
	proxy.SetMetadataDefaults("eu-west-1", fakeaws.MetadataDefaults{HTTPTokens: "required", ManagedBy: "declarative-policy", ManagedMessage: "set by the org"})
	if d, err = sources.ReadAccountDefaults(ctx, other); err != nil || d.ManagedBy != "declarative-policy" || d.ManagedMessage != "set by the org" {
		t.Errorf("eu-west-1: %+v, %v", d, err)
	}
	if _, err := other.ModifyInstanceMetadataDefaults(ctx, &ec2.ModifyInstanceMetadataDefaultsInput{HttpTokens: ec2types.MetadataDefaultHttpTokensStateOptional}); err == nil {
		t.Error("defaults a declarative policy manages were changed")
	}
	// As EC2: a dry run and a value out of range change nothing.
	var apiErr smithy.APIError
	if _, err := client.ModifyInstanceMetadataDefaults(ctx, &ec2.ModifyInstanceMetadataDefaultsInput{
		HttpTokens: ec2types.MetadataDefaultHttpTokensStateRequired, DryRun: aws.Bool(true)}); !errors.As(err, &apiErr) || apiErr.ErrorCode() != "DryRunOperation" {
		t.Errorf("a dry run: %v, want DryRunOperation", err)
	}
	if _, err := client.ModifyInstanceMetadataDefaults(ctx, &ec2.ModifyInstanceMetadataDefaultsInput{
		HttpPutResponseHopLimit: aws.Int32(65)}); !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidParameterValue" {
		t.Errorf("hop limit 65: %v, want InvalidParameterValue", err)
	}
	if _, n := proxy.MetadataDefaultsOf("us-east-1"); n != 2 {
		t.Errorf("%d changes in us-east-1, want 2", n)
	}
}

// TestImdsSupport reads the AMIs' ImdsSupport through the real client from moto, with the
// EC2 proxy adding what moto never returns.
func TestImdsSupport(t *testing.T) {
	proxy, client := proxiedEC2(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}, MaxResults: aws.Int32(5)})
	if err != nil || len(out.Images) < 2 {
		t.Fatalf("moto's AMIs: %d, %v", len(out.Images), err)
	}
	v2, plain := aws.ToString(out.Images[0].ImageId), aws.ToString(out.Images[1].ImageId)
	proxy.SetImdsSupport(v2, "v2.0")
	got, err := sources.ImdsSupport(ctx, client, []string{v2, plain, v2, "ami-00000000deadbeef0"})
	if err != nil {
		t.Fatal(err)
	}
	if got[v2] != "v2.0" || got[plain] != "" || len(got) != 2 {
		t.Errorf("ImdsSupport = %v, want %s v2.0 and %s none", got, v2, plain)
	}
}
