package cli

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/guardrails"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport/fleetwant"
	"github.com/imdsguard/imdsguard/internal/testsupport/schematest"
)

const guardrailsAccount = "123456789012"

// guardrailsDoc is a decoded imdsguard.guardrails/v1 document.
type guardrailsDoc struct {
	Schema    string                        `json:"schema"`
	Version   string                        `json:"version"`
	Ready     bool                          `json:"ready"`
	Accounts  []guardrails.AccountReadiness `json:"accounts"`
	Documents guardrails.Documents          `json:"documents"`
}

// guardrailsRun is the outcome of a `guardrails --format json` run.
type guardrailsRun struct {
	code           int
	doc            guardrailsDoc
	stdout, stderr string
}

// guardrailsJSON runs `guardrails --format json` and checks the document against
// docs/schema/guardrails.schema.json.
func (w *world) guardrailsJSON(t *testing.T, args ...string) guardrailsRun {
	t.Helper()
	code, stdout, stderr := w.run(t, append([]string{"guardrails", "--format", "json", "--cloudtrail-rps", "100", "--region", demo.Region}, args...)...)
	if code != ExitOK && code != ExitFailure {
		t.Fatalf("guardrails exited %d: %s", code, stderr)
	}
	schematest.ValidateAgainstSchema(t, "guardrails.schema.json", []byte(stdout))
	var doc guardrailsDoc
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("guardrails JSON: %v\n%s", err, stdout)
	}
	if doc.Schema != guardrails.Schema || doc.Version != Version() {
		t.Errorf("schema %q version %q", doc.Schema, doc.Version)
	}
	return guardrailsRun{code: code, doc: doc, stdout: stdout, stderr: stderr}
}

// onlyRegion is the one account-region of a run of one region.
func (r guardrailsRun) onlyRegion(t *testing.T) guardrails.RegionReadiness {
	t.Helper()
	if len(r.doc.Accounts) != 1 || r.doc.Accounts[0].AccountID != guardrailsAccount || len(r.doc.Accounts[0].Regions) != 1 ||
		r.doc.Accounts[0].Regions[0].Region != demo.Region {
		t.Fatalf("accounts %+v, want %s with %s only", r.doc.Accounts, guardrailsAccount, demo.Region)
	}
	return r.doc.Accounts[0].Regions[0]
}

// exemptRolesOf returns the roles the SCP lets change instance metadata options.
func exemptRolesOf(t *testing.T, d guardrails.Documents) []string {
	t.Helper()
	var scp struct {
		Statement []struct {
			Sid       string
			Action    string
			Condition map[string]map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal(d.RequireIMDSv2, &scp); err != nil {
		t.Fatalf("scp_require_imdsv2: %v\n%s", err, d.RequireIMDSv2)
	}
	for _, s := range scp.Statement {
		if s.Action == "ec2:ModifyInstanceMetadataOptions" {
			var roles []string
			if err := json.Unmarshal(s.Condition["ArnNotLike"]["aws:PrincipalArn"], &roles); err != nil {
				t.Fatalf("exempt roles: %v\n%s", err, d.RequireIMDSv2)
			}
			return roles
		}
	}
	t.Fatalf("no ModifyInstanceMetadataOptions statement in %s", d.RequireIMDSv2)
	return nil
}

const noTableWarning = "imdsguard: warning: without --table"

// TestGuardrailsReady: a fleet where every instance has HttpTokens required and that has
// no launch template is ready; the report holds the three documents, the SCP naming the
// exempt and break-glass roles given, and the run exits 0.
func TestGuardrailsReady(t *testing.T) {
	w := newWorld(t, "already-v2")
	w.moto.EC2().SetMetadataDefaults(demo.Region, fakeaws.MetadataDefaults{HTTPTokens: "required", HopLimit: 2})

	const operator, breakGlass = "arn:aws:iam::*:role/platform-operator", "arn:aws:iam::123456789012:role/break-glass"
	r := w.guardrailsJSON(t, "--exempt-role", operator, "--exempt-role", operator, "--break-glass-role", breakGlass, "--max-hop-limit", "3")
	if r.code != ExitOK || !r.doc.Ready || !r.doc.Accounts[0].Ready {
		t.Fatalf("exit %d, ready %v, stderr %q:\n%s", r.code, r.doc.Ready, r.stderr, r.stdout)
	}
	// Only the warning that no ledger was read.
	if !strings.HasPrefix(r.stderr, noTableWarning) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr = %q, want the one warning about --table", r.stderr)
	}
	g := r.onlyRegion(t)
	if g.Status != guardrails.ScopeOK || !g.Ready || g.Counts != (guardrails.Counts{Instances: 1, Compliant: 1}) ||
		len(g.OpenInstances) != 0 || len(g.SourcesNotReady) != 0 || len(g.WhyNotReady) != 0 {
		t.Errorf("region = %+v", g)
	}
	if g.Defaults != (guardrails.Defaults{HTTPTokens: "required", ManagedBy: "account"}) {
		t.Errorf("defaults = %+v, want required, by the account", g.Defaults)
	}
	for name, d := range map[string]json.RawMessage{"scp_require_imdsv2": r.doc.Documents.RequireIMDSv2,
		"scp_refuse_imdsv1_credentials": r.doc.Documents.RefuseIMDSv1Credentials, "declarative_policy_ec2": r.doc.Documents.DeclarativePolicyEC2} {
		if !json.Valid(d) || len(d) < 50 {
			t.Errorf("%s = %s", name, d)
		}
	}
	if got := exemptRolesOf(t, r.doc.Documents); !slices.Equal(got, []string{operator, breakGlass}) {
		t.Errorf("exempt roles %q, want %q (once each, in order)", got, []string{operator, breakGlass})
	}
	if !strings.Contains(string(r.doc.Documents.RequireIMDSv2), `"ec2:MetadataHttpPutResponseHopLimit": "3"`) ||
		!strings.Contains(string(r.doc.Documents.DeclarativePolicyEC2), `"@@assign": 3`) {
		t.Errorf("--max-hop-limit 3 not in the documents:\n%s\n%s", r.doc.Documents.RequireIMDSv2, r.doc.Documents.DeclarativePolicyEC2)
	}

	// By default the exempt roles are the stack's remediate and verify roles, and the hop
	// limit is 2.
	r = w.guardrailsJSON(t)
	if got := exemptRolesOf(t, r.doc.Documents); r.code != ExitOK || !slices.Equal(got, defaultExemptRoles) {
		t.Errorf("exit %d, default exempt roles %q, want %q", r.code, got, defaultExemptRoles)
	}
	if !strings.Contains(string(r.doc.Documents.RequireIMDSv2), `"ec2:MetadataHttpPutResponseHopLimit": "2"`) {
		t.Errorf("default hop limit not 2:\n%s", r.doc.Documents.RequireIMDSv2)
	}

	// The table says so too, and shows how to attach each document.
	code, stdout, _ := w.run(t, "guardrails", "--cloudtrail-rps", "100")
	for _, want := range []string{"READY: the 1 account is ready", guardrailsAccount, "== 1. EC2 declarative policy", "== 3. SCP: refuse IMDSv1 credentials",
		"aws organizations create-policy", defaultExemptRoles[1]} {
		if code != ExitOK || !strings.Contains(stdout, want) {
			t.Errorf("table: exit %d, lacks %q:\n%s", code, want, stdout)
		}
	}
}

// TestGuardrailsSampleFleet: the sample fleet still has instances that use IMDSv1 or lack
// evidence: not ready, every open instance counted and the first ones named, exit 1
// after the report, with one line on stderr saying how many accounts are not ready.
func TestGuardrailsSampleFleet(t *testing.T) {
	w := newWorld(t)
	r := w.guardrailsJSON(t)
	if r.code != ExitFailure || r.doc.Ready || r.doc.Accounts[0].Ready {
		t.Fatalf("exit %d, ready %v; want 1, not ready", r.code, r.doc.Ready)
	}
	const want = "imdsguard: 1 of 1 account is not ready for the guardrails; the report says why"
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], noTableWarning) || !strings.HasPrefix(lines[1], want) {
		t.Errorf("stderr = %q, want the --table warning and a line starting %q", r.stderr, want)
	}

	g := r.onlyRegion(t)
	var open []string
	compliant := 0
	for _, s := range w.fleet {
		expected := fleetwant.For(s.Kind.Name)
		if expected.Action == policy.ActionSkip && (expected.Codes[0] == policy.ReasonCompliant || expected.Codes[0] == policy.ReasonTerminated) {
			compliant++
		} else {
			open = append(open, s.ID)
		}
	}
	slices.Sort(open)
	if g.Ready || g.Counts != (guardrails.Counts{Instances: len(w.fleet), Compliant: compliant, Open: len(open)}) {
		t.Errorf("counts %+v, want %d instances, %d compliant, %d open", g.Counts, len(w.fleet), compliant, len(open))
	}
	if len(open) <= guardrails.MaxOpenListed {
		t.Fatalf("the sample fleet has only %d open instances: the test needs more than %d", len(open), guardrails.MaxOpenListed)
	}
	var listed []string
	for _, o := range g.OpenInstances {
		listed = append(listed, o.InstanceID)
		if o.Action == "" || o.Verifying {
			t.Errorf("open instance %+v", o)
		}
	}
	if !slices.Equal(listed, open[:guardrails.MaxOpenListed]) || g.MoreOpenInstances != len(open)-guardrails.MaxOpenListed {
		t.Errorf("open instances %v (+%d), want %v (+%d)", listed, g.MoreOpenInstances, open[:guardrails.MaxOpenListed], len(open)-guardrails.MaxOpenListed)
	}
	if len(g.WhyNotReady) != 1 || !strings.Contains(g.WhyNotReady[0], open[0]) {
		t.Errorf("why not ready = %q", g.WhyNotReady)
	}
	// The documents are printed even so: what to attach once the accounts are ready.
	if len(r.doc.Documents.RequireIMDSv2) == 0 {
		t.Error("no documents")
	}

	code, stdout, _ := w.run(t, "guardrails", "--cloudtrail-rps", "100")
	if code != ExitFailure || !strings.Contains(stdout, "NOT READY: 1 of 1 account is not ready") || !strings.Contains(stdout, open[0]) {
		t.Errorf("table: exit %d:\n%s", code, stdout)
	}
}

// TestGuardrailsLaunchTemplate: a launch template with HttpTokens optional whose
// instance uses IMDSv1 makes the account not ready, by name; one that requires IMDSv2
// does not.
func TestGuardrailsLaunchTemplate(t *testing.T) {
	w := newWorld(t, "already-v2")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := fakeaws.AWSConfig(demo.Region)
	client := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(w.moto.URL) })
	template := func(name string, tokens ec2types.LaunchTemplateHttpTokensState) string {
		t.Helper()
		out, err := client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
			LaunchTemplateName: aws.String(name),
			LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(fakeaws.DefaultAMI),
				MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{HttpTokens: tokens, HttpPutResponseHopLimit: aws.Int32(2)}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.LaunchTemplate.LaunchTemplateId)
	}
	legacy := template("legacy-web", ec2types.LaunchTemplateHttpTokensStateOptional)
	template("v2-web", ec2types.LaunchTemplateHttpTokensStateRequired)

	// An instance launched from legacy-web (moto tags it aws:ec2launchtemplate:id) whose
	// MetadataNoToken metric shows IMDSv1 calls every day.
	run, err := client.RunInstances(ctx, &ec2.RunInstancesInput{
		LaunchTemplate: &ec2types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(legacy), Version: aws.String("$Default")},
		MinCount:       aws.Int32(1), MaxCount: aws.Int32(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	cw := cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(w.moto.URL) })
	end := w.now.Truncate(time.Hour).Add(time.Hour)
	if err := fakeaws.PutMetadataNoToken(ctx, cw, id, fakeaws.HourlyPoints(end, 336, func(h int) (float64, bool) {
		if h%24 == 3 {
			return 5, true
		}
		return 0, true
	})); err != nil {
		t.Fatal(err)
	}

	r := w.guardrailsJSON(t)
	if r.code != ExitFailure || r.doc.Ready {
		t.Fatalf("exit %d, ready %v; want 1, not ready:\n%s", r.code, r.doc.Ready, r.stdout)
	}
	g := r.onlyRegion(t)
	label := "launch-template " + legacy + " (legacy-web)"
	if len(g.SourcesNotReady) != 1 || g.SourcesNotReady[0].Label != label || g.SourcesNotReady[0].Action != policy.SourceTicket ||
		g.SourcesNotReady[0].Reason != policy.ReasonSourceIMDSv1Used || !strings.Contains(g.SourcesNotReady[0].Detail, id) {
		t.Errorf("sources not ready = %+v, want only %s, ticketed for %s", g.SourcesNotReady, label, id)
	}
	if len(g.OpenInstances) != 1 || g.OpenInstances[0].InstanceID != id || g.OpenInstances[0].Action != policy.ActionTicket {
		t.Errorf("open instances = %+v, want %s ticketed", g.OpenInstances, id)
	}
	if !slices.ContainsFunc(g.WhyNotReady, func(l string) bool { return strings.HasPrefix(l, label+" does not launch with HttpTokens required") }) {
		t.Errorf("why not ready does not name %s: %q", label, g.WhyNotReady)
	}
	if strings.Contains(r.stdout, "v2-web") {
		t.Errorf("the template that requires IMDSv2 is listed:\n%s", r.stdout)
	}

	code, stdout, _ := w.run(t, "guardrails", "--cloudtrail-rps", "100")
	if code != ExitFailure || !strings.Contains(stdout, "the next launch from "+label+" in "+guardrailsAccount+" "+demo.Region) {
		t.Errorf("table: exit %d:\n%s", code, stdout)
	}
}

// TestGuardrailsLedger: with --table, an instance imdsguard enforced and verified counts
// as verified, and one it is still verifying keeps the account from being ready until
// its verification ends clean. (A verified instance set back to IMDSv1 since counts as
// open: policy and guardrails unit tests cover it.)
func TestGuardrailsLedger(t *testing.T) {
	w := newWorld(t, "already-v2", "web", "new")
	fx := newStack(t, w.moto.URL)
	ctx := context.Background()
	l := &ledger.Ledger{API: fx.db, Table: fx.res.Table}
	ids := map[string]string{}
	for _, s := range w.fleet {
		ids[s.Kind.Name] = s.ID
	}
	enforce := func(id string, n int) ledger.Watch {
		t.Helper()
		ref := ledger.Ref{AccountID: guardrailsAccount, Region: demo.Region, InstanceID: id}
		decision := "0019aa000000" + string(rune('0'+n)) + "-0000000000000001"
		const digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
		at := w.now.Add(-time.Duration(n) * time.Hour)
		if err := (&decisionlog.Log{API: fx.db, Table: fx.res.Table}).RecordDecisions(ctx, []decisionlog.Decision{{
			AccountID: guardrailsAccount, Region: demo.Region, InstanceID: id, DecisionID: decision, Action: policy.ActionRemediate, CreatedAt: at, Digest: digest,
		}}); err != nil {
			t.Fatal(err)
		}
		// The enforcement, as remediate makes it: the instance requires tokens from now on.
		if _, err := ec2.NewFromConfig(fakeaws.AWSConfig(demo.Region), func(o *ec2.Options) { o.BaseEndpoint = aws.String(w.moto.URL) }).
			ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String(id),
				HttpTokens: ec2types.HttpTokensStateRequired, HttpPutResponseHopLimit: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
		applied := policy.MetadataOptions{HTTPTokens: "required", HopLimit: 1, HTTPEndpoint: "enabled", State: "applied"}
		if err := l.Record(ctx, ledger.Outcome{Ref: ref, DecisionID: decision, At: at, Action: policy.ActionRemediate,
			Result: ledger.ResultEnforced, Mode: "enforce", Applied: &applied}); err != nil {
			t.Fatal(err)
		}
		return ledger.Watch{Ref: ref, DecisionID: decision, EnforcedAt: at, Applied: applied}
	}
	settle := func(watch ledger.Watch) {
		t.Helper()
		if err := l.Settle(ctx, ledger.Settlement{Watch: watch, Result: ledger.ResultVerified, At: w.now.Add(-time.Minute), Mode: "enforce"}); err != nil {
			t.Fatal(err)
		}
	}
	settle(enforce(ids["web"], 2))
	verifying := enforce(ids["new"], 1)

	r := w.guardrailsJSON(t, "--table", fx.res.Table)
	g := r.onlyRegion(t)
	if r.code != ExitFailure || g.Ready || g.Counts != (guardrails.Counts{Instances: 3, Compliant: 1, Verified: 1, Open: 1}) ||
		len(g.OpenInstances) != 1 || g.OpenInstances[0].InstanceID != ids["new"] || !g.OpenInstances[0].Verifying {
		t.Errorf("exit %d, region %+v; want web verified and new open, still being verified", r.code, g)
	}
	if strings.Contains(r.stderr, noTableWarning) {
		t.Errorf("the --table warning with --table: %q", r.stderr)
	}

	settle(verifying)
	r = w.guardrailsJSON(t, "--table", fx.res.Table)
	if g := r.onlyRegion(t); r.code != ExitOK || !g.Ready || g.Counts != (guardrails.Counts{Instances: 3, Compliant: 1, Verified: 2}) || r.stderr != "" {
		t.Errorf("exit %d, stderr %q, region %+v; want ready with two verified", r.code, r.stderr, g)
	}
}

// TestGuardrailsFailedRegion: a region that cannot be read makes its account not ready,
// and the other region is still judged.
func TestGuardrailsFailedRegion(t *testing.T) {
	w := newWorld(t, "already-v2")
	t.Setenv("AWS_ENDPOINT_URL_EC2", denyRegion(t, w.moto.URL, "eu-west-1"))
	r := w.guardrailsJSON(t, "--region", "eu-west-1")
	if r.code != ExitFailure || r.doc.Ready || len(r.doc.Accounts) != 1 || len(r.doc.Accounts[0].Regions) != 2 {
		t.Fatalf("exit %d, accounts %+v", r.code, r.doc.Accounts)
	}
	failed, ok := r.doc.Accounts[0].Regions[0], r.doc.Accounts[0].Regions[1]
	if failed.Region != "eu-west-1" || failed.Status != guardrails.ScopeFailed || failed.Ready || !strings.Contains(failed.Error, "UnauthorizedOperation") {
		t.Errorf("eu-west-1 = %+v", failed)
	}
	if ok.Region != demo.Region || ok.Status != guardrails.ScopeOK || !ok.Ready {
		t.Errorf("%s = %+v", demo.Region, ok)
	}
	if !strings.Contains(r.stderr, "imdsguard: 1 of 1 account is not ready for the guardrails (1 of 2 account-regions could not be read)") {
		t.Errorf("stderr = %q", r.stderr)
	}
}

// TestGuardrailsMisuse: bad input stops before any AWS call, names the input, and exits 2.
func TestGuardrailsMisuse(t *testing.T) {
	w := &world{now: time.Now()}
	aws := newRecorder(t)
	for k, v := range demo.AWSEnv(aws.URL, aws.URL, t.TempDir()) {
		t.Setenv(k, v)
	}
	tests := []struct {
		args []string
		want string
	}{
		{args: []string{"--max-hop-limit", "0"}, want: "hop limit 0 is not between 1 and 64"},
		{args: []string{"--max-hop-limit", "65"}, want: "hop limit 65"},
		{args: []string{"--max-hop-limit", "1"}, want: "--max-hop-limit 1 is below --container-hop-limit 2"},
		{args: []string{"--max-hop-limit", "2", "--hop-limit", "3", "--container-hop-limit", "3"}, want: "--max-hop-limit 2 is below --hop-limit 3"},
		{args: []string{"--max-hop-limit", "two"}, want: `"two"`},
		{args: []string{"--hop-limit", "0"}, want: "--hop-limit"},
		{args: []string{"--exempt-role", "imdsguard-remediate"}, want: `exempt role "imdsguard-remediate" is not an IAM role ARN pattern`},
		{args: []string{"--exempt-role", "arn:aws:iam::*:role/*"}, want: `"arn:aws:iam::*:role/*" matches every role`},
		{args: []string{"--break-glass-role", "arn:aws:iam::12345:role/bg"}, want: `"arn:aws:iam::12345:role/bg"`},
		{args: []string{"--exempt-role", " "}, want: "--exempt-role: no role given"},
		{args: []string{"--format", "csv"}, want: `"csv"`},
		{args: []string{"--cloudtrail-rps", "0"}, want: "--cloudtrail-rps"},
		{args: []string{"--mode", "enforced"}, want: "IMDSGUARD_MODE"},
		{args: []string{"extra"}, want: "extra"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			before := aws.count()
			code, stdout, stderr := w.run(t, append([]string{"guardrails"}, tc.args...)...)
			if code != ExitUsage || !strings.Contains(stderr, tc.want) || stdout != "" {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit 2 naming %s", code, stderr, stdout, tc.want)
			}
			if n := aws.count() - before; n != 0 {
				t.Errorf("%d AWS requests made before the misuse was refused", n)
			}
		})
	}
}

// TestGuardrailsInterrupted: the context ends while DescribeInstances is in flight:
// nothing is written, exit 130.
func TestGuardrailsInterrupted(t *testing.T) {
	aws := newStallingAWS(t)
	for k, v := range demo.AWSEnv(aws.URL, aws.URL, t.TempDir()) {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for action := range aws.arrived {
			if action == "DescribeInstances" {
				cancel()
				return
			}
		}
	}()
	var stdout, stderr strings.Builder
	code := Main(ctx, []string{"guardrails", "--region", "eu-west-1", "--region", "eu-west-2", "--format", "json"}, Env{
		Stdout: &stdout, Stderr: &stderr, LookupEnv: os.LookupEnv, Now: time.Now,
	})
	if code != ExitInterrupted || stdout.Len() != 0 || stderr.String() != "imdsguard: interrupted: no guardrails report was written\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}
