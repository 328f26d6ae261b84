package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/imdsguard/imdsguard/internal/cli"
	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/sourcefix"
	"github.com/imdsguard/imdsguard/internal/testsupport/schematest"
)

// group is an Auto Scaling group made for a test, from its own launch template.
type group struct {
	name, templateID string
	instances        []string
}

// newGroup makes a launch template with HttpTokens optional and an Auto Scaling group
// of size instances that launches its version (empty: $Default), in moto.
func (p *pipeline) newGroup(name string, size int32, version string) group {
	p.t.Helper()
	lt, err := p.ec2.CreateLaunchTemplate(p.ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(name + "-lt"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(fakeaws.DefaultAMI), InstanceType: ec2types.InstanceTypeT3Micro,
			MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{HttpTokens: ec2types.LaunchTemplateHttpTokensStateOptional,
				HttpPutResponseHopLimit: aws.Int32(2), HttpEndpoint: ec2types.LaunchTemplateInstanceMetadataEndpointStateEnabled}},
	})
	if err != nil {
		p.t.Fatal(err)
	}
	id := aws.ToString(lt.LaunchTemplate.LaunchTemplateId)
	spec := &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(id)}
	if version != "" {
		spec.Version = aws.String(version)
	}
	asg := autoscaling.NewFromConfig(p.cfg)
	if _, err := asg.CreateAutoScalingGroup(p.ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String(name),
		LaunchTemplate: spec, MinSize: aws.Int32(size), MaxSize: aws.Int32(size), DesiredCapacity: aws.Int32(size),
		AvailabilityZones: []string{demo.Region + "a"}}); err != nil {
		p.t.Fatal(err)
	}
	out, err := asg.DescribeAutoScalingGroups(p.ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil || len(out.AutoScalingGroups) != 1 {
		p.t.Fatalf("describing %s: %v", name, err)
	}
	g := group{name: name, templateID: id}
	for _, i := range out.AutoScalingGroups[0].Instances {
		g.instances = append(g.instances, aws.ToString(i.InstanceId))
	}
	if len(g.instances) != int(size) {
		p.t.Fatalf("group %s has %d instances, want %d", name, len(g.instances), size)
	}
	return g
}

// metrics writes two weeks of hourly MetadataNoToken datapoints for the instance: none
// of them above zero, or calls every day when usesV1.
func (p *pipeline) metrics(id string, usesV1 bool) {
	p.t.Helper()
	end := time.Now().UTC().Truncate(time.Hour)
	series := func(h int) (float64, bool) {
		if usesV1 && h%24 == 3 {
			return 9, true
		}
		return 0, true
	}
	if err := fakeaws.PutMetadataNoToken(p.ctx, cloudwatch.NewFromConfig(p.cfg), id, fakeaws.HourlyPoints(end, 336, series)); err != nil {
		p.t.Fatal(err)
	}
}

// defaultVersion is the launch template's default version and its HttpTokens and hop
// limit.
func (p *pipeline) defaultVersion(id string) (int64, string, int32) {
	p.t.Helper()
	out, err := p.ec2.DescribeLaunchTemplateVersions(p.ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(id), Versions: []string{"$Default"}})
	if err != nil || len(out.LaunchTemplateVersions) != 1 {
		p.t.Fatalf("default version of %s: %v", id, err)
	}
	v := out.LaunchTemplateVersions[0]
	mo := v.LaunchTemplateData.MetadataOptions
	return aws.ToInt64(v.VersionNumber), string(mo.HttpTokens), aws.ToInt32(mo.HttpPutResponseHopLimit)
}

func (p *pipeline) openTicket(subject string) bool {
	p.t.Helper()
	rec, err := p.ledger.GetTicket(p.ctx, ledger.Ref{AccountID: account, Region: demo.Region, InstanceID: subject})
	if err != nil {
		p.t.Fatal(err)
	}
	return rec != nil && rec.Status == ledger.TicketOpen
}

// rollback runs `imdsguard rollback` in process with the pipeline's environment.
func (p *pipeline) rollback(args ...string) (int, string, string) {
	p.t.Helper()
	for k, v := range p.env {
		p.t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	code := cli.Main(p.ctx, append([]string{"rollback", "--table", p.ledger.Table, "--account", account, "--yes"}, args...), cli.Env{
		Stdout: &stdout, Stderr: &stderr, LookupEnv: os.LookupEnv, Now: time.Now,
	})
	return code, stdout.String(), stderr.String()
}

// TestSourcesEndToEnd runs the built bootstraps on three Auto Scaling groups: a sweep
// fixes the launch template of the group whose instances are all proven not to use
// IMDSv1 (a new default version with HttpTokens required), tickets the template of the
// group with one IMDSv1 user (naming it) and leaves it untouched, and tickets the
// template a group pins to a fixed version. The account defaults wait while instances
// are being verified. `imdsguard rollback --source` then puts the fixed template's
// default version back, and the next sweep does not fix it again.
func TestSourcesEndToEnd(t *testing.T) {
	p := newPipeline(t, "enforce")
	clean := p.newGroup("clean-asg", 2, "")
	users := p.newGroup("legacy-asg", 2, "$Latest")
	pinned := p.newGroup("pinned-asg", 1, "1")
	for _, id := range clean.instances {
		p.metrics(id, false)
	}
	p.metrics(users.instances[0], false)
	p.metrics(users.instances[1], true)
	p.metrics(pinned.instances[0], false)

	p.sweepAndRemediate()

	if v, tokens, hop := p.defaultVersion(clean.templateID); v != 2 || tokens != "required" || hop != 1 {
		t.Errorf("clean template: default version %d with %s, hop %d; want a new version 2 with HttpTokens required, hop 1", v, tokens, hop)
	}
	if v, tokens, _ := p.defaultVersion(users.templateID); v != 1 || tokens != "optional" {
		t.Errorf("the template of the group with an IMDSv1 user was changed: version %d, %s", v, tokens)
	}
	if !p.openTicket(users.templateID) {
		t.Errorf("no open ticket for %s, whose instance %s uses IMDSv1", users.templateID, users.instances[1])
	}
	if v, _, _ := p.defaultVersion(pinned.templateID); v != 1 || !p.openTicket(pinned.templateID) {
		t.Errorf("pinned template: default version %d, ticket open %v; want it untouched and ticketed", v, p.openTicket(pinned.templateID))
	}
	h := p.history(clean.templateID)
	if len(h) != 1 || h[0].Result != ledger.ResultSourceFixed {
		t.Fatalf("clean template's history %+v, want one source-fixed", h)
	}
	userHistory := p.history(users.templateID)
	if len(userHistory) != 1 || !strings.Contains(userHistory[0].Reasons[0].Detail, users.instances[1]) {
		t.Errorf("the ticket's outcome does not name the IMDSv1 user %s: %+v", users.instances[1], userHistory)
	}
	defaults := p.history(string(policy.SourceAccountDefaults))
	if len(defaults) != 0 {
		t.Errorf("the account defaults were acted on (%+v) while instances are being verified", defaults)
	}
	if got, _ := p.ec2Front.MetadataDefaultsOf(demo.Region); got.HTTPTokens != "" {
		t.Errorf("account defaults %+v changed", got)
	}

	// A person rolls the fix back.
	code, stdout, stderr := p.rollback("--source", clean.templateID, "--why", "a job broke", "--format", "json")
	if code != cli.ExitOK {
		t.Fatalf("rollback --source exited %d: %s %s", code, stdout, stderr)
	}
	schematest.ValidateAgainstSchema(t, "rollback.schema.json", []byte(stdout))
	var doc struct {
		Sources []struct{ Result string } `json:"sources"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || len(doc.Sources) != 1 || doc.Sources[0].Result != "rolled-back" {
		t.Fatalf("rollback JSON %s: %v", stdout, err)
	}
	if v, tokens, _ := p.defaultVersion(clean.templateID); v != 1 || tokens != "optional" {
		t.Errorf("after the rollback the default version is %d (%s), want 1 again", v, tokens)
	}
	// The next sweep tickets the rolled back template instead of fixing it again.
	p.sweepAndRemediate()
	if v, _, _ := p.defaultVersion(clean.templateID); v != 1 {
		t.Errorf("the next sweep fixed the rolled back template again: default version %d", v)
	}
	if !p.openTicket(clean.templateID) {
		t.Error("the rolled back template has no open ticket")
	}
}

// TestAccountDefaultsEndToEnd: the account defaults become HttpTokens required once
// every instance of the account-region is compliant, and rollback --source puts them
// back.
func TestAccountDefaultsEndToEnd(t *testing.T) {
	p := newPipeline(t, "enforce", "already-v2", "gone")
	front := p.ec2Front
	front.SetMetadataDefaults(demo.Region, fakeaws.MetadataDefaults{HTTPTokens: "optional"})

	p.sweepAndRemediate()
	if got, changes := front.MetadataDefaultsOf(demo.Region); got.HTTPTokens != "required" || changes != 1 {
		t.Fatalf("account defaults %+v after %d changes, want HttpTokens required after one", got, changes)
	}
	if h := p.history(string(policy.SourceAccountDefaults)); len(h) != 1 || h[0].Result != ledger.ResultSourceFixed {
		t.Errorf("account defaults history %+v", h)
	}
	code, stdout, stderr := p.rollback("--source", "account-defaults")
	if code != cli.ExitOK {
		t.Fatalf("rollback exited %d: %s %s", code, stdout, stderr)
	}
	if got, _ := front.MetadataDefaultsOf(demo.Region); got.HTTPTokens != "optional" {
		t.Errorf("after the rollback the defaults are %+v, want HttpTokens optional again", got)
	}
}

// TestSourceFixVerifiedEndToEnd runs verify on a launch template fix: an instance the
// group launches from the fixed version has IMDSv1 calls rejected, so verify puts the
// template's default version back, gives that instance HttpTokens optional back, records
// both, and remediate opens the template's ticket; the next sweep does not fix it again.
func TestSourceFixVerifiedEndToEnd(t *testing.T) {
	p := newPipelineWith(t, "enforce", func(p *pipeline, env map[string]string) {
		env["IMDSGUARD_VERIFY_WINDOW"] = "1h"
	})
	clean := p.newGroup("clean-asg", 2, "")
	for _, id := range clean.instances {
		p.metrics(id, false)
	}
	verifyFn := p.start("verify", bootstraps.verify, p.env)
	p.sweepAndRemediate()
	if v, tokens, _ := p.defaultVersion(clean.templateID); v != 2 || tokens != "required" {
		t.Fatalf("after the sweep: default version %d with %s, want the fix", v, tokens)
	}

	// The group launches one more instance, from the fixed version, and a workload on it
	// still needs IMDSv1.
	asg := autoscaling.NewFromConfig(p.cfg)
	if _, err := asg.UpdateAutoScalingGroup(p.ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String(clean.name),
		MaxSize: aws.Int32(3), DesiredCapacity: aws.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	out, err := asg.DescribeAutoScalingGroups(p.ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{clean.name}})
	if err != nil {
		t.Fatal(err)
	}
	var added string
	for _, i := range out.AutoScalingGroups[0].Instances {
		if id := aws.ToString(i.InstanceId); id != clean.instances[0] && id != clean.instances[1] {
			added = id
		}
	}
	if added == "" {
		t.Fatal("the group launched no instance")
	}
	// moto tags the instance with the version it launched from, but launches it with the
	// default metadata options whatever the version says: set them as EC2 would have.
	if _, err := p.ec2.ModifyInstanceMetadataOptions(p.ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String(added),
		HttpTokens: ec2types.HttpTokensStateRequired, HttpPutResponseHopLimit: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	desc, err := p.ec2.DescribeInstances(p.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{added}})
	if err != nil {
		t.Fatal(err)
	}
	tagged := ""
	for _, tag := range desc.Reservations[0].Instances[0].Tags {
		if aws.ToString(tag.Key) == "aws:ec2launchtemplate:version" {
			tagged = aws.ToString(tag.Value)
		}
	}
	if tagged != "2" {
		t.Fatalf("the new instance was launched from version %q, want the fixed version 2", tagged)
	}
	now := time.Now().UTC()
	if err := fakeaws.PutInstanceMetric(p.ctx, cloudwatch.NewFromConfig(p.cfg), evidence.MetadataNoTokenRejected, added,
		[]fakeaws.Point{{Time: now, Value: 3}}); err != nil {
		t.Fatal(err)
	}

	sum := decodeResponse[verifySummary](t, verifyFn.invoke(t, p.ctx, json.RawMessage(`{}`)))
	if sum.Failed != 0 {
		t.Fatalf("verify summary %+v\nlogs:\n%s", sum, verifyFn.proc.Logs())
	}
	if v, tokens, _ := p.defaultVersion(clean.templateID); v != 1 || tokens != "optional" {
		t.Errorf("after verify: default version %d (%s), want version 1 back", v, tokens)
	}
	if tokens, _ := p.options(added); tokens != "optional" {
		t.Errorf("the instance that broke has HttpTokens %s, want optional back", tokens)
	}
	if h := p.history(clean.templateID); h[len(h)-1].Result != ledger.ResultRolledBack {
		t.Errorf("the template's last outcome is %s, want rolled-back", h[len(h)-1].Result)
	}
	if h := p.history(added); len(h) != 1 || h[0].Result != ledger.ResultRolledBack {
		t.Errorf("the broken instance's history %+v, want one rolled-back", h)
	}
	// For the two instances the fix did not break, the group's own enforcements stay
	// watched; the template's ticket goes through remediate.
	p.remediateQueued()
	if !p.openTicket(clean.templateID) {
		t.Error("no open ticket for the rolled back template")
	}
	p.sweepAndRemediate()
	if v, _, _ := p.defaultVersion(clean.templateID); v != 1 {
		t.Errorf("the next sweep fixed the rolled back template again: default version %d", v)
	}
}

// sourceEvent is a sample CloudTrail event of internal/trigger/testdata with its
// template id or group name replaced by the test's.
func sourceEvent(t *testing.T, file, from, to string) json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile("../trigger/testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), from) {
		t.Fatalf("%s does not name %s", file, from)
	}
	return json.RawMessage(strings.ReplaceAll(string(raw), from, to))
}

// TestSourceEventsEndToEnd: a CloudTrail event about a source makes detect judge that
// source at once, from the instances it launched, and nothing else: a new version of one
// group's template gets it fixed, the other group's stays as it is until an event names
// that group.
func TestSourceEventsEndToEnd(t *testing.T) {
	p := newPipeline(t, "enforce")
	first := p.newGroup("first-asg", 1, "")
	second := p.newGroup("second-asg", 1, "")
	p.metrics(first.instances[0], false)
	p.metrics(second.instances[0], false)

	event := sourceEvent(t, "cloudtrail-create-launch-template-version.json", "lt-0a1b2c3d4e5f60718", first.templateID)
	sum := decodeResponse[struct {
		Instances int            `json:"instances"`
		Sources   map[string]int `json:"sources"`
	}](t, p.detect.invoke(t, p.ctx, event))
	if sum.Instances != 1 || sum.Sources["fix"] != 1 || len(sum.Sources) != 1 {
		t.Fatalf("detect on a new version of %s judged %d instances and sources %v; want its one instance and one fix", first.templateID, sum.Instances, sum.Sources)
	}
	p.remediateQueued()
	if v, tokens, _ := p.defaultVersion(first.templateID); v != 2 || tokens != "required" {
		t.Errorf("the template the event named: default version %d (%s), want the fix", v, tokens)
	}
	if v, _, _ := p.defaultVersion(second.templateID); v != 1 {
		t.Errorf("the template no event named was changed: default version %d", v)
	}

	p.detect.invoke(t, p.ctx, sourceEvent(t, "cloudtrail-autoscaling-update.json", "worker-asg", second.name))
	p.remediateQueued()
	if v, tokens, _ := p.defaultVersion(second.templateID); v != 2 || tokens != "required" {
		t.Errorf("after an UpdateAutoScalingGroup of %s its template is at version %d (%s), want the fix", second.name, v, tokens)
	}
}

// TestSourceFixMadeButNotRecorded: remediate made a template's fix and then died before
// recording it. The retry of the same message finds the fix in place, made by its own
// decision, and records it as the fix it was, with its watch, instead of a superseded
// outcome that would leave the fix unwatched.
func TestSourceFixMadeButNotRecorded(t *testing.T) {
	p := newPipeline(t, "enforce")
	g := p.newGroup("clean-asg", 1, "")
	p.metrics(g.instances[0], false)
	decodeResponse[detectSummary](t, p.detect.invoke(t, p.ctx, json.RawMessage(`{"sweep": {}}`)))
	batch := p.receive(p.queueURL)
	var fix *message.SourceVerdict
	for _, r := range batch.Records {
		if message.SchemaOf(r.Body) == message.SourceSchema {
			v, err := message.ParseSource(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			fix = &v
		}
	}
	if fix == nil || fix.Action != policy.SourceFix {
		t.Fatalf("the sweep queued no fix of %s: %+v", g.templateID, fix)
	}
	// The first attempt: the snapshot, then the fix, then nothing (the record is lost).
	ref := ledger.Ref{AccountID: account, Region: demo.Region, InstanceID: g.templateID}
	if _, err := p.ledger.SnapshotSource(p.ctx, ledger.SourceSnapshot{Ref: ref, DecisionID: fix.DecisionID, At: time.Now().UTC(), DefaultVersion: 1}); err != nil {
		t.Fatal(err)
	}
	fixer := &sourcefix.Fixer{EC2: p.ec2}
	tmpl, err := fixer.Template(p.ctx, g.templateID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fixer.FixTemplate(p.ctx, tmpl, policy.MetadataOptions{HTTPTokens: policy.TokensRequired, HopLimit: 1}, fix.DecisionID,
		"imdsguard: HttpTokens required (decision "+fix.DecisionID+")", false); err != nil {
		t.Fatal(err)
	}

	resp := decodeResponse[events.SQSEventResponse](t, p.remediate.invoke(t, p.ctx, batch))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("batch item failures %+v", resp.BatchItemFailures)
	}
	h := p.history(g.templateID)
	if len(h) != 1 || h[0].Result != ledger.ResultSourceFixed || !strings.Contains(h[0].Detail, "earlier attempt") {
		t.Fatalf("history %+v, want the fix recorded as made by the earlier attempt", h)
	}
	watches, err := p.ledger.WatchingSources(p.ctx, account, demo.Region)
	if err != nil || len(watches) != 1 || watches[0].FixedVersion != 2 {
		t.Errorf("source watches %+v (%v), want the fix's, of version 2", watches, err)
	}
	if snap, err := p.ledger.GetSourceSnapshot(p.ctx, ref); err != nil || snap.DefaultVersion != 1 || snap.FixedVersion != 2 {
		t.Errorf("snapshot %+v (%v), want from version 1, fixed version 2", snap, err)
	}
}
