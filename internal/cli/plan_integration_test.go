package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/report"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

func TestMain(m *testing.M) { os.Exit(testsupport.RunWithMoto(m)) }

// world is the sample fleet in moto and the CloudTrail stand-in, with the process
// environment pointing the standard AWS configuration at them.
type world struct {
	now        time.Time
	fleet      []demo.Seeded
	cloudTrail *testsupport.CloudTrail
	moto       *testsupport.MotoServer
}

// newWorld seeds one instance of each named kind of the sample fleet, or of every kind.
func newWorld(t *testing.T, names ...string) *world {
	t.Helper()
	moto := testsupport.Moto(t)
	ct := testsupport.NewCloudTrail()
	t.Cleanup(ct.Close)
	now := time.Now().UTC()
	kinds := demo.KindsNamed(now, names...)
	cfg := testsupport.AWSConfig(demo.Region)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fleet, err := demo.Seed(ctx, demo.Clients{
		EC2:        ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(moto.URL) }),
		CloudWatch: cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(moto.URL) }),
		CloudTrail: ct,
	}, kinds, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range demo.AWSEnv(moto.URL, ct.URL, t.TempDir()) {
		t.Setenv(k, v)
	}
	return &world{now: now, fleet: fleet, cloudTrail: ct, moto: moto}
}

// run runs the command line as a user would, with the clock at the seeding time.
func (w *world) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(context.Background(), args, Env{
		Stdout: &out, Stderr: &errOut, LookupEnv: os.LookupEnv,
		Now: func() time.Time { return w.now },
	})
	return code, out.String(), errOut.String()
}

func (w *world) plan(t *testing.T, args ...string) *report.Plan {
	t.Helper()
	code, stdout, stderr := w.run(t, append([]string{"plan", "--format", "json", "--cloudtrail-rps", "100"}, args...)...)
	if code != ExitOK {
		t.Fatalf("plan exited %d: %s", code, stderr)
	}
	var p report.Plan
	if err := json.Unmarshal([]byte(stdout), &p); err != nil {
		t.Fatalf("plan JSON: %v\n%s", err, stdout)
	}
	return &p
}

func codesOf(reasons []policy.Reason) []policy.ReasonCode {
	var out []policy.ReasonCode
	for _, r := range reasons {
		out = append(out, r.Code)
	}
	return out
}

func byID(p *report.Plan) map[string]report.Instance {
	out := map[string]report.Instance{}
	for _, in := range p.Instances {
		out[in.InstanceID] = in
	}
	return out
}

// TestPlanSampleFleet seeds one instance per verdict rule and per rule conflict into
// moto and checks every action, reason code and target in the plan JSON.
func TestPlanSampleFleet(t *testing.T) {
	w := newWorld(t)
	// CloudTrail throttles the first calls: the adaptive retryer must absorb it.
	w.cloudTrail.FailNext(2, testsupport.APIError{Code: "ThrottlingException", Status: 400, Message: "Rate exceeded"})

	p := w.plan(t, "--region", demo.Region)

	if p.Schema != "imdsguard.plan/v1" || p.Settings.LookbackHours != 336 || p.Settings.MinObservedHours != 168 || p.Settings.Mode != "dry-run" {
		t.Errorf("header = %q %+v", p.Schema, p.Settings)
	}
	if !p.GeneratedAt.Equal(w.now.Truncate(time.Second)) {
		t.Errorf("generated_at = %v, want %v", p.GeneratedAt, w.now)
	}
	got := byID(p)
	if len(p.Instances) != len(w.fleet) {
		t.Errorf("plan has %d instances, the fleet %d", len(p.Instances), len(w.fleet))
	}
	var summary report.Summary
	for _, s := range w.fleet {
		in, ok := got[s.ID]
		if !ok {
			t.Errorf("%s (%s) missing from the plan", s.ID, s.Kind.Name)
			continue
		}
		if in.Action != s.Kind.Want.Action || !slices.Equal(codesOf(in.Reasons), s.Kind.Want.Codes) {
			t.Errorf("%s: got %s %v, want %s %v (%+v)", s.Kind.Name, in.Action, codesOf(in.Reasons), s.Kind.Want.Action, s.Kind.Want.Codes, in.Reasons)
		}
		switch want := s.Kind.Want.Target; {
		case want != nil && (in.Target == nil || *in.Target != report.Options{HTTPTokens: want.HTTPTokens, HopLimit: want.HopLimit, HTTPEndpoint: want.HTTPEndpoint}):
			t.Errorf("%s: target %+v, want %+v", s.Kind.Name, in.Target, *want)
		case want == nil && in.Target != nil:
			t.Errorf("%s: %s verdict has target %+v", s.Kind.Name, in.Action, *in.Target)
		}
		if in.AccountID != "123456789012" || in.Region != demo.Region || in.Name != s.Kind.Name+"-1" {
			t.Errorf("%s: account/region/name = %s/%s/%s", s.Kind.Name, in.AccountID, in.Region, in.Name)
		}
		switch s.Kind.Want.Action {
		case policy.ActionRemediate:
			summary.Remediate++
		case policy.ActionTicket:
			summary.Ticket++
		case policy.ActionDefer:
			summary.Defer++
		case policy.ActionSkip:
			summary.Skip++
		}
		checkEvidence(t, s, in)
	}
	if p.Summary != summary {
		t.Errorf("summary = %+v, want %+v", p.Summary, summary)
	}

	// Only what the rules need is fetched, in as few calls as the limits allow.
	wantLookups := 0
	for _, s := range w.fleet {
		if s.Kind.Spec.InstanceProfileName != "" && slices.Contains([]policy.ReasonCode{
			policy.ReasonIMDSv1Unused, policy.ReasonIMDSv1UsedCloudTrail, policy.ReasonCloudTrailUnavailable,
		}, s.Kind.Want.Codes[0]) {
			wantLookups++
		}
	}
	wantCalls := map[string]int{"ec2:DescribeInstances": 1, "cloudwatch:GetMetricData": 1, "cloudtrail:LookupEvents": wantLookups}
	for op, n := range wantCalls {
		if p.APICalls[op] != n {
			t.Errorf("api_calls[%s] = %d, want %d (all: %v)", op, p.APICalls[op], n, p.APICalls)
		}
	}
	if len(p.APICalls) != len(wantCalls) {
		t.Errorf("api_calls = %v, want only %v", p.APICalls, wantCalls)
	}
	// The SDK may resend a request whose connection it saw closed, so the server-side
	// count is a lower bound; api_calls above is exact.
	if n := w.cloudTrail.Requests(); n < wantLookups+2 {
		t.Errorf("CloudTrail saw %d requests, want at least %d lookups plus 2 throttled", n, wantLookups)
	}
}

func checkEvidence(t *testing.T, s demo.Seeded, in report.Instance) {
	t.Helper()
	ev := in.Evidence
	switch s.Kind.Name {
	case "web":
		if ev.MetadataNoTokenSum == nil || *ev.MetadataNoTokenSum != 0 || ev.ObservedHours == nil || *ev.ObservedHours != 336 || ev.LastDatapoint == nil {
			t.Errorf("web evidence = %+v", ev)
		}
		if !ev.CloudTrail.Checked || ev.CloudTrail.V2Deliveries != 2 || ev.CloudTrail.V1Deliveries != 0 || ev.LastV1Use != nil {
			t.Errorf("web CloudTrail evidence = %+v, last v1 %v", ev.CloudTrail, ev.LastV1Use)
		}
		if in.Current == nil || *in.Current != (report.Options{HTTPTokens: "optional", HopLimit: 2, HTTPEndpoint: "enabled"}) {
			t.Errorf("web current = %+v", in.Current)
		}
	case "gappy":
		if ev.ObservedHours == nil || *ev.ObservedHours != 112 {
			t.Errorf("gappy observed hours = %v, want 112: a gap is not a zero", ev.ObservedHours)
		}
	case "legacy-v1":
		if ev.MetadataNoTokenSum == nil || *ev.MetadataNoTokenSum != 14*17 || ev.LastV1Use == nil || ev.CloudTrail.Checked {
			t.Errorf("legacy-v1 evidence = %+v (CloudTrail is not needed once the metric shows IMDSv1)", ev)
		}
	case "stolen-creds":
		if ev.CloudTrail.V1Deliveries != 1 || !slices.Equal(ev.CloudTrail.SourceIPs, []string{"198.51.100.23"}) ||
			len(ev.CloudTrail.UserAgents) != 1 || !strings.HasPrefix(ev.CloudTrail.UserAgents[0], "aws-sdk-java/1.11") {
			t.Errorf("stolen-creds CloudTrail evidence = %+v", ev.CloudTrail)
		}
	case "sdk-v1":
		if ev.CloudTrail.V1Deliveries != 1 || !slices.Equal(ev.CloudTrail.SourceIPs, []string{s.PrivateIP}) {
			t.Errorf("sdk-v1 CloudTrail evidence = %+v, private IP %s", ev.CloudTrail, s.PrivateIP)
		}
	case "gone", "already-v2", "exempt":
		if ev.MetadataNoTokenSum != nil || ev.ObservedHours != nil || ev.CloudTrail.Checked {
			t.Errorf("%s: evidence gathered for an instance the rules settle without it: %+v", s.Kind.Name, ev)
		}
	}
}

// TestPlanInstanceIDs plans named instances only, and reports an id that EC2 does not
// know as not found rather than failing.
func TestPlanInstanceIDs(t *testing.T) {
	w := newWorld(t, "web")
	unknown := "i-0000000000000dead"
	p := w.plan(t, "--instance-ids", w.fleet[0].ID+","+unknown)
	got := byID(p)
	if len(p.Instances) != 2 {
		t.Fatalf("plan has %d instances, want 2: %+v", len(p.Instances), p.Instances)
	}
	if got[w.fleet[0].ID].Action != policy.ActionRemediate {
		t.Errorf("web: %+v", got[w.fleet[0].ID])
	}
	nf := got[unknown]
	if nf.Action != policy.ActionSkip || codesOf(nf.Reasons)[0] != policy.ReasonTerminated ||
		!strings.Contains(nf.Reasons[0].Detail, unknown) || nf.Current != nil || nf.AccountID != "123456789012" {
		t.Errorf("unknown id: %+v", nf)
	}
}

// TestPlanCloudTrailDenied: without CloudTrail no instance with a profile is remediated.
func TestPlanCloudTrailDenied(t *testing.T) {
	w := newWorld(t)
	w.cloudTrail.SetFault(func(testsupport.LookupRequest) *testsupport.APIError {
		return &testsupport.APIError{Code: "AccessDeniedException", Status: 400, Message: "not authorized to perform: cloudtrail:LookupEvents"}
	})
	p := w.plan(t)
	got := byID(p)
	for _, s := range w.fleet {
		in := got[s.ID]
		if in.Action == policy.ActionRemediate && s.Kind.Spec.InstanceProfileName != "" {
			t.Errorf("%s remediated although CloudTrail was denied: %+v", s.Kind.Name, in.Reasons)
		}
		if s.Kind.Want.Codes[0] == policy.ReasonIMDSv1Unused && s.Kind.Spec.InstanceProfileName != "" &&
			(in.Reasons[0].Code != policy.ReasonCloudTrailUnavailable || !strings.Contains(in.Reasons[0].Detail, "AccessDenied")) {
			t.Errorf("%s: %+v, want cloudtrail-unavailable naming AccessDenied", s.Kind.Name, in.Reasons)
		}
	}
}

// TestPlanMetricsFailure: when GetMetricData fails, nothing that needs metrics is
// remediated, and the run still reports every instance.
func TestPlanMetricsFailure(t *testing.T) {
	w := newWorld(t)
	// moto cannot fail on demand: point CloudWatch at a stand-in that refuses.
	cw := testsupport.NewCloudWatch()
	t.Cleanup(cw.Close)
	cw.SetFault(func(testsupport.CloudWatchRequest) *testsupport.APIError {
		return &testsupport.APIError{Code: "AccessDenied", Status: 403, Message: "not authorized to perform: cloudwatch:GetMetricData"}
	})
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH", cw.URL)
	p := w.plan(t)
	got := byID(p)
	for _, s := range w.fleet {
		in := got[s.ID]
		if in.Action == policy.ActionRemediate && in.Reasons[0].Code != policy.ReasonEndpointDisabled {
			t.Errorf("%s remediated without metrics: %+v", s.Kind.Name, in.Reasons)
		}
	}
	if in := got[w.fleet[slices.IndexFunc(w.fleet, func(s demo.Seeded) bool { return s.Kind.Name == "web" })].ID]; in.Reasons[0].Code != policy.ReasonEvidenceError ||
		!strings.Contains(in.Reasons[0].Detail, "GetMetricData") {
		t.Errorf("web without metrics: %+v, want evidence-error naming GetMetricData", in.Reasons)
	}
}

// TestPlanMisuse: bad input stops before any AWS call, names the input, and exits 2.
func TestPlanMisuse(t *testing.T) {
	w := &world{now: time.Now()}
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"plan", "--mode", "enforced"}, want: "IMDSGUARD_MODE"},
		{args: []string{"plan"}, env: map[string]string{"IMDSGUARD_LOOKBACK": "forever"}, want: "IMDSGUARD_LOOKBACK"},
		{args: []string{"plan", "--lookback", "24h"}, want: "min-observed-hours"},
		{args: []string{"plan", "--format", "xml"}, want: `"xml"`},
		{args: []string{"plan", "--instance-ids", "i-123,web-1"}, want: `"i-123"`},
		{args: []string{"plan", "--no-such-flag"}, want: "no-such-flag"},
		{args: []string{"plan", "extra"}, want: "extra"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			// An unreachable endpoint: misuse must be caught before any call is made.
			t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
			code, stdout, stderr := w.run(t, tc.args...)
			if code != ExitUsage || !strings.Contains(stderr, tc.want) || stdout != "" {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit 2 naming %s", code, stderr, stdout, tc.want)
			}
		})
	}
}

// TestPlanOutputFile writes each format to --output.
func TestPlanOutputFile(t *testing.T) {
	w := newWorld(t, "web", "gone", "sdk-v1")
	dir := t.TempDir()
	for _, f := range report.Formats {
		out := filepath.Join(dir, "plan."+string(f))
		code, stdout, stderr := w.run(t, "plan", "--format", string(f), "--output", out)
		if code != ExitOK || stdout != "" {
			t.Fatalf("%s: exit %d, stdout %q, stderr %s", f, code, stdout, stderr)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range w.fleet {
			if !bytes.Contains(data, []byte(s.ID)) {
				t.Errorf("%s output lacks %s", f, s.ID)
			}
		}
	}
}

// TestPlanUnreachable: an AWS failure exits 1 and names the region.
func TestPlanUnreachable(t *testing.T) {
	w := &world{now: time.Now()}
	for k, v := range demo.AWSEnv("http://127.0.0.1:1", "http://127.0.0.1:1", t.TempDir()) {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	code, _, stderr := w.run(t, "plan", "--region", "eu-west-1")
	if code != ExitFailure || !strings.Contains(stderr, "eu-west-1") || !strings.Contains(stderr, "DescribeInstances") {
		t.Errorf("exit %d, stderr %q; want exit 1 naming the region and the call", code, stderr)
	}
}
