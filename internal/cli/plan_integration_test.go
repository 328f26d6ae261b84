package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/report"
	"github.com/imdsguard/imdsguard/internal/testsupport"
	"github.com/imdsguard/imdsguard/internal/testsupport/fleetwant"
	"github.com/imdsguard/imdsguard/internal/testsupport/schematest"
)

func TestMain(m *testing.M) { os.Exit(testsupport.RunWithMoto(m)) }

// world is the sample fleet in moto and the CloudTrail stand-in, with the process
// environment pointing the standard AWS configuration at them.
type world struct {
	now        time.Time
	fleet      []demo.Seeded
	cloudTrail *fakeaws.CloudTrail
	moto       *fakeaws.MotoServer
	// stdin is what the command reads from its standard input (an answer to confirm).
	stdin string
}

// newWorld seeds one instance of each named kind of the sample fleet, or of every kind.
func newWorld(t *testing.T, names ...string) *world {
	t.Helper()
	moto := testsupport.Moto(t)
	ct := fakeaws.NewCloudTrail()
	t.Cleanup(ct.Close)
	now := time.Now().UTC()
	kinds := demo.KindsNamed(now, names...)
	cfg := fakeaws.AWSConfig(demo.Region)
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
		Stdin: strings.NewReader(w.stdin), Stdout: &out, Stderr: &errOut, LookupEnv: os.LookupEnv,
		Now: func() time.Time { return w.now },
	})
	return code, out.String(), errOut.String()
}

// planned is the outcome of a `plan --format json` run.
type planned struct {
	*report.Plan
	doc, stderr string
}

// plan runs `plan --format json`, wants exit 0, and checks the document against
// docs/schema/plan.schema.json.
func (w *world) plan(t *testing.T, args ...string) planned {
	t.Helper()
	code, stdout, stderr := w.run(t, append([]string{"plan", "--format", "json", "--cloudtrail-rps", "100"}, args...)...)
	if code != ExitOK {
		t.Fatalf("plan exited %d: %s", code, stderr)
	}
	return planned{Plan: decodePlan(t, stdout), doc: stdout, stderr: stderr}
}

// decodePlan validates a plan document against its schema and decodes it.
func decodePlan(t *testing.T, doc string) *report.Plan {
	t.Helper()
	schematest.ValidateAgainstSchema(t, "plan.schema.json", []byte(doc))
	var p report.Plan
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		t.Fatalf("plan JSON: %v\n%s", err, doc)
	}
	return &p
}

// rawInstances decodes the instances of a plan document as plain JSON values, by id.
func rawInstances(t *testing.T, doc string) map[string]map[string]any {
	t.Helper()
	var raw struct {
		Instances []map[string]any `json:"instances"`
	}
	if err := json.Unmarshal([]byte(doc), &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, in := range raw.Instances {
		out[in["instance_id"].(string)] = in
	}
	return out
}

func scopesJSON(t *testing.T, scopes []report.Scope) string {
	t.Helper()
	b, err := json.Marshal(scopes)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
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
	w.cloudTrail.FailNext(2, fakeaws.APIError{Code: "ThrottlingException", Status: 400, Message: "Rate exceeded"})

	p := w.plan(t, "--region", demo.Region)

	if p.Schema != "imdsguard.plan/v1" || p.Settings.Lookback != 336*time.Hour || p.Settings.MinObservedHours != 168 || p.Settings.Mode != "dry-run" {
		t.Errorf("header = %q %+v", p.Schema, p.Settings)
	}
	if p.Version != Version() || p.Version == "" {
		t.Errorf("version = %q, want %q", p.Version, Version())
	}
	if want := `[{"account_id":"123456789012","region":"` + demo.Region + `","status":"ok"}]`; scopesJSON(t, p.Scopes) != want {
		t.Errorf("scopes = %s, want %s", scopesJSON(t, p.Scopes), want)
	}
	if p.stderr != "" {
		t.Errorf("a clean plan wrote on stderr: %q", p.stderr)
	}
	if !p.GeneratedAt.Equal(w.now.Truncate(time.Second)) {
		t.Errorf("generated_at = %v, want %v", p.GeneratedAt, w.now)
	}
	got := byID(p.Plan)
	raw := rawInstances(t, p.doc)
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
		expected := fleetwant.For(s.Kind.Name)
		if in.Action != expected.Action || !slices.Equal(codesOf(in.Reasons), expected.Codes) {
			t.Errorf("%s: got %s %v, want %s %v (%+v)", s.Kind.Name, in.Action, codesOf(in.Reasons), expected.Action, expected.Codes, in.Reasons)
		}
		switch want := expected.Target; {
		case want != nil && (in.Target == nil || *in.Target != report.Options{HTTPTokens: want.HTTPTokens, HopLimit: want.HopLimit, HTTPEndpoint: want.HTTPEndpoint}):
			t.Errorf("%s: target %+v, want %+v", s.Kind.Name, in.Target, *want)
		case want == nil && in.Target != nil:
			t.Errorf("%s: %s verdict has target %+v", s.Kind.Name, in.Action, *in.Target)
		}
		if in.AccountID != "123456789012" || in.Region != demo.Region || in.Name != s.Kind.Name+"-1" {
			t.Errorf("%s: account/region/name = %s/%s/%s", s.Kind.Name, in.AccountID, in.Region, in.Name)
		}
		switch expected.Action {
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
		// CloudTrail is an object exactly when it was read.
		if ct := raw[s.ID]["evidence"].(map[string]any)["cloudtrail"]; (ct != nil) != in.Evidence.CloudTrail.Checked ||
			ct != nil && ct.(map[string]any)["checked"] != true {
			t.Errorf("%s: cloudtrail = %#v", s.Kind.Name, ct)
		}
	}
	if p.Summary != summary {
		t.Errorf("summary = %+v, want %+v", p.Summary, summary)
	}

	// Only what the rules need is fetched, in as few calls as the limits allow.
	wantLookups := 0
	for _, s := range w.fleet {
		if s.Kind.Spec.InstanceProfileName != "" && slices.Contains([]policy.ReasonCode{
			policy.ReasonIMDSv1Unused, policy.ReasonIMDSv1UsedCloudTrail, policy.ReasonCloudTrailUnavailable,
		}, fleetwant.For(s.Kind.Name).Codes[0]) {
			wantLookups++
		}
	}
	// The sources cost one call each, whatever the size of the fleet: the fleet has no
	// launch template (so no DescribeLaunchTemplateVersions) and its AMIs fit one call.
	wantCalls := map[string]int{"ec2:DescribeInstances": 1, "cloudwatch:GetMetricData": 1, "cloudtrail:LookupEvents": wantLookups,
		"ec2:DescribeLaunchTemplates": 1, "autoscaling:DescribeAutoScalingGroups": 1, "ec2:GetInstanceMetadataDefaults": 1, "ec2:DescribeImages": 1}
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
	got := byID(p.Plan)
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
	w.cloudTrail.SetFault(func(fakeaws.LookupRequest) *fakeaws.APIError {
		return &fakeaws.APIError{Code: "AccessDeniedException", Status: 400, Message: "not authorized to perform: cloudtrail:LookupEvents"}
	})
	p := w.plan(t)
	got := byID(p.Plan)
	for _, s := range w.fleet {
		in := got[s.ID]
		if in.Action == policy.ActionRemediate && s.Kind.Spec.InstanceProfileName != "" {
			t.Errorf("%s remediated although CloudTrail was denied: %+v", s.Kind.Name, in.Reasons)
		}
		if fleetwant.For(s.Kind.Name).Codes[0] == policy.ReasonIMDSv1Unused && s.Kind.Spec.InstanceProfileName != "" &&
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
	cw := fakeaws.NewCloudWatch()
	t.Cleanup(cw.Close)
	cw.SetFault(func(fakeaws.CloudWatchRequest) *fakeaws.APIError {
		return &fakeaws.APIError{Code: "AccessDenied", Status: 403, Message: "not authorized to perform: cloudwatch:GetMetricData"}
	})
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH", cw.URL)
	p := w.plan(t)
	got := byID(p.Plan)
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
	// Most of the fleet deferred on one error: a warning says so, naming it, and the
	// exit code stays 0 (w.plan checks it).
	var deferred int
	for _, in := range p.Instances {
		if c := in.Reasons[0].Code; c == policy.ReasonEvidenceError || c == policy.ReasonCloudTrailUnavailable {
			deferred++
		}
	}
	if 2*deferred <= len(p.Instances) {
		t.Fatalf("only %d of %d instances deferred on evidence errors: the fleet no longer tests the warning", deferred, len(p.Instances))
	}
	want := fmt.Sprintf("imdsguard: warning: %d of %d instances were deferred because their evidence could not be read; "+
		"the most common error (%d of them): AccessDenied: not authorized to perform: cloudwatch:GetMetricData. ", deferred, len(p.Instances), deferred)
	if !strings.HasPrefix(p.stderr, want) || strings.Count(p.stderr, "\n") != 1 {
		t.Errorf("stderr = %q, want one line starting %q", p.stderr, want)
	}
}

// TestPlanMisuse: bad input stops before any AWS call, names the input, and exits 2.
func TestPlanMisuse(t *testing.T) {
	w := &world{now: time.Now()}
	// Every AWS call lands here: misuse must be caught before any is made.
	aws := newRecorder(t)
	for k, v := range demo.AWSEnv(aws.URL, aws.URL, t.TempDir()) {
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	notAFolder := filepath.Join(dir, "file")
	if err := os.WriteFile(notAFolder, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing", "plan.json")
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
		{args: []string{"plan", "--instance-ids", ""}, want: "--instance-ids: no instance id given"},
		{args: []string{"plan", "--instance-ids", ","}, want: "--instance-ids: no instance id given"},
		{args: []string{"plan", "--instance-ids", " , "}, want: "--instance-ids: no instance id given"},
		{args: []string{"plan", "--output", missing}, want: "--output " + missing + ": cannot write in the folder " + filepath.Dir(missing)},
		{args: []string{"plan", "--output", filepath.Join(notAFolder, "plan.json")}, want: "--output " + filepath.Join(notAFolder, "plan.json")},
		{args: []string{"plan", "-o", dir}, want: "--output " + dir + ": is a folder"},
		{args: []string{"plan", "--no-such-flag"}, want: "no-such-flag"},
		{args: []string{"plan", "extra"}, want: "extra"},
		{args: []string{"version", "extra"}, want: "extra"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			before := aws.count()
			code, stdout, stderr := w.run(t, tc.args...)
			if code != ExitUsage || !strings.Contains(stderr, tc.want) || stdout != "" {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit 2 naming %s", code, stderr, stdout, tc.want)
			}
			if n := aws.count() - before; n != 0 {
				t.Errorf("%d AWS requests made before the misuse was refused", n)
			}
		})
	}
	// The --output checks leave nothing behind.
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files left in %s: %v", dir, entries)
	}
}

// recorder is an AWS endpoint that answers nothing useful and counts what it is asked.
type recorder struct {
	*httptest.Server
	n atomic.Int64
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		r.n.Add(1)
		http.Error(w, "not an AWS endpoint", http.StatusTeapot)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) count() int { return int(r.n.Load()) }

// TestPlanDuplicates: a region or an instance id given twice is planned once.
func TestPlanDuplicates(t *testing.T) {
	w := newWorld(t, "web")
	id := w.fleet[0].ID
	p := w.plan(t, "--region", demo.Region, "--region", " "+demo.Region, "--instance-ids", id+","+id, "--instance-ids", id)
	if len(p.Scopes) != 1 || len(p.Instances) != 1 || p.Instances[0].InstanceID != id {
		t.Errorf("scopes %s, instances %+v; want one of each", scopesJSON(t, p.Scopes), p.Instances)
	}
	if n := p.APICalls["ec2:DescribeInstances"]; n != 1 {
		t.Errorf("DescribeInstances called %d times, want 1", n)
	}
}

// TestPlanOutputFile writes each format to --output, and leaves no other file there
// (neither the probe of the folder nor a temporary file).
func TestPlanOutputFile(t *testing.T) {
	w := newWorld(t, "web", "gone", "sdk-v1")
	dir := t.TempDir()
	var want []string
	for _, f := range report.Formats {
		out := filepath.Join(dir, "plan."+string(f))
		want = append(want, filepath.Base(out))
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
		if f == report.FormatJSON {
			decodePlan(t, string(data))
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("files in the --output folder: %v, want %v", got, want)
	}
}

// TestPlanUnreachable: an AWS failure exits 1 and names the region; with STS out of
// reach too, the scope's account is unknown (null), not guessed.
func TestPlanUnreachable(t *testing.T) {
	w := &world{now: time.Now()}
	for k, v := range demo.AWSEnv("http://127.0.0.1:1", "http://127.0.0.1:1", t.TempDir()) {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	code, stdout, stderr := w.run(t, "plan", "--region", "eu-west-1", "--format", "json")
	if code != ExitFailure || !strings.Contains(stderr, "eu-west-1") || !strings.Contains(stderr, "DescribeInstances") {
		t.Errorf("exit %d, stderr %q; want exit 1 naming the region and the call", code, stderr)
	}
	p := decodePlan(t, stdout)
	if len(p.Scopes) != 1 || p.Scopes[0].AccountID != nil || p.Scopes[0].Status != report.ScopeFailed ||
		!strings.Contains(p.Scopes[0].Error, "DescribeInstances") || len(p.Instances) != 0 {
		t.Errorf("scopes %s, %d instances; want the one failed scope, account unknown", scopesJSON(t, p.Scopes), len(p.Instances))
	}
	if !strings.Contains(stdout, `"account_id": null`) {
		t.Errorf("unknown account not null:\n%s", stdout)
	}
	if p.APICalls["sts:GetCallerIdentity"] != 1 {
		t.Errorf("api_calls = %v, want the STS call counted", p.APICalls)
	}
}

// denyRegion stands in front of moto's EC2 and refuses every call signed for region, as
// an SCP that denies a region does; the other regions reach moto.
func denyRegion(t *testing.T, motoURL, region string) string {
	t.Helper()
	target, err := url.Parse(motoURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/ec2/aws4_request, ...
		if !strings.Contains(r.Header.Get("Authorization"), "/"+region+"/ec2/aws4_request") {
			proxy.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>9f0c4b3e-0000-4000-8000-000000000000</RequestID></Response>`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestPlanFailedScope: one region planned, one refused. The plan of the first is still
// written, the second is listed as failed with its error, stderr names it, and the run
// exits 1.
func TestPlanFailedScope(t *testing.T) {
	w := newWorld(t, "web", "gone", "sdk-v1")
	t.Setenv("AWS_ENDPOINT_URL_EC2", denyRegion(t, w.moto.URL, "eu-west-1"))
	out := filepath.Join(t.TempDir(), "plan.json")
	code, stdout, stderr := w.run(t, "plan", "--region", demo.Region, "--region", "eu-west-1", "--cloudtrail-rps", "100", "--format", "json", "-o", out)
	if code != ExitFailure || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s; want exit 1", code, stdout, stderr)
	}
	doc, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the plan of the region that worked was not written: %v", err)
	}
	p := decodePlan(t, string(doc))
	if len(p.Scopes) != 2 {
		t.Fatalf("scopes = %s, want two", scopesJSON(t, p.Scopes))
	}
	ok, failed := p.Scopes[0], p.Scopes[1]
	if ok.Region != demo.Region || ok.Status != report.ScopeOK || ok.Error != "" || ok.AccountID == nil || *ok.AccountID != "123456789012" {
		t.Errorf("first scope = %s", scopesJSON(t, p.Scopes[:1]))
	}
	// The failed scope's account is that of the instances the same credentials saw.
	if failed.Region != "eu-west-1" || failed.Status != report.ScopeFailed || failed.AccountID == nil || *failed.AccountID != "123456789012" ||
		!strings.Contains(failed.Error, "UnauthorizedOperation") || !strings.Contains(failed.Error, "DescribeInstances") {
		t.Errorf("second scope = %s", scopesJSON(t, p.Scopes[1:]))
	}
	if len(p.Instances) != len(w.fleet) {
		t.Errorf("%d instances, want the %d of %s", len(p.Instances), len(w.fleet), demo.Region)
	}
	for _, in := range p.Instances {
		if in.Region != demo.Region {
			t.Errorf("instance %s in %s", in.InstanceID, in.Region)
		}
	}
	if _, asked := p.APICalls["sts:GetCallerIdentity"]; asked {
		t.Errorf("STS asked although the instances name the account: %v", p.APICalls)
	}
	for _, want := range []string{
		"imdsguard: scope eu-west-1 (account 123456789012) failed: ec2:DescribeInstances in eu-west-1: ",
		"UnauthorizedOperation",
		"imdsguard: 1 of 2 scopes could not be planned",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, demo.Region+" (account") {
		t.Errorf("stderr names the region that worked as failed:\n%s", stderr)
	}

	// The table says so too, at its end.
	code, stdout, _ = w.run(t, "plan", "--region", demo.Region, "--region", "eu-west-1", "--cloudtrail-rps", "100")
	if code != ExitFailure || !strings.Contains(stdout, "FAILED: 1 of 2 scopes could not be planned") {
		t.Errorf("table: exit %d:\n%s", code, stdout)
	}
}

// TestPlanEveryScopeFailed: with no instance to name the account, STS does, once.
func TestPlanEveryScopeFailed(t *testing.T) {
	w := newWorld(t, "web")
	t.Setenv("AWS_ENDPOINT_URL_EC2", denyRegion(t, w.moto.URL, "eu-west-1"))
	code, stdout, stderr := w.run(t, "plan", "--region", "eu-west-1", "--format", "json")
	if code != ExitFailure {
		t.Fatalf("exit %d, stderr %s; want 1", code, stderr)
	}
	p := decodePlan(t, stdout)
	if want := `[{"account_id":"123456789012","region":"eu-west-1","status":"failed","error":`; !strings.HasPrefix(scopesJSON(t, p.Scopes), want) || len(p.Instances) != 0 {
		t.Errorf("scopes = %s, %d instances; want %s...", scopesJSON(t, p.Scopes), len(p.Instances), want)
	}
	if p.APICalls["sts:GetCallerIdentity"] != 1 {
		t.Errorf("api_calls = %v, want one STS call", p.APICalls)
	}
	// Not an empty account: the table says nothing could be planned.
	_, stdout, _ = w.run(t, "plan", "--region", "eu-west-1")
	if !strings.Contains(stdout, "no instances: no scope could be planned") || strings.Contains(stdout, "no instances found") {
		t.Errorf("table:\n%s", stdout)
	}
}

// TestPlanInventoryFailedForIDs: with --instance-ids, a refused DescribeInstances still
// lists the instances (deferred on the error), and the scope counts as failed.
func TestPlanInventoryFailedForIDs(t *testing.T) {
	w := newWorld(t, "web")
	t.Setenv("AWS_ENDPOINT_URL_EC2", denyRegion(t, w.moto.URL, demo.Region))
	code, stdout, stderr := w.run(t, "plan", "--instance-ids", w.fleet[0].ID, "--format", "json")
	if code != ExitFailure || !strings.Contains(stderr, "UnauthorizedOperation") {
		t.Fatalf("exit %d, stderr %s; want 1 naming the error", code, stderr)
	}
	p := decodePlan(t, stdout)
	if len(p.Scopes) != 1 || p.Scopes[0].Status != report.ScopeFailed || len(p.Instances) != 1 ||
		p.Instances[0].Reasons[0].Code != policy.ReasonEvidenceError {
		t.Errorf("scopes %s, instances %+v", scopesJSON(t, p.Scopes), p.Instances)
	}
}
