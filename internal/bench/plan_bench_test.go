package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

// sizes are the fleets BenchmarkPlan plans; select one with -bench 'Plan/instances=2000$'.
var sizes = []int{2000, 10000}

const (
	region = demo.Region
	// benchLookupsPerSecond lifts the CLI's LookupEvents pacing (AWS allows 2 per second
	// per account and region) so far that the run measures the tool, not the quota (at
	// 1,000 a second, the pacing alone took 0.44 s of 440 lookups); the time the quota
	// would take is reported separately.
	benchLookupsPerSecond = 100000
	awsLookupsPerSecond   = 2

	opDescribe      = "ec2:DescribeInstances"
	opGetMetricData = "cloudwatch:GetMetricData"
	opLookupEvents  = "cloudtrail:LookupEvents"

	// EC2 and CloudWatch limits the budgets derive from.
	describePageSize     = 1000
	maxQueriesPerCall    = 500
	maxDatapointsPerCall = 100800
	// lambdaMemoryMiB is DESIGN.md section 6's memory budget for a 10,000-instance sweep.
	lambdaMemoryMiB = 256

	// reservationSizeEnv sets the instances per RunInstances call while seeding.
	reservationSizeEnv = "IMDSGUARD_BENCH_RESERVATION_SIZE"

	seedTimeout  = 30 * time.Minute
	planTimeout  = 15 * time.Minute
	buildTimeout = 5 * time.Minute
	motoTimeout  = 2 * time.Minute
)

// BenchmarkPlan runs `imdsguard plan` the way a user runs it, as a subprocess of the
// built CLI against emulated AWS endpoints, over fleets of each size, and prints a table
// of the API calls, time and memory it took.
func BenchmarkPlan(b *testing.B) {
	size := reservationSize(b)
	moto := startMoto(b)
	bin := buildCLI(b, moduleRoot(b))
	env := &benchEnv{bin: bin, moto: moto, reservationSize: size}
	b.Cleanup(env.closeFleet)

	var results []*result
	for _, n := range sizes {
		var got *result
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			got = env.benchSize(b, n)
		})
		if got != nil {
			results = append(results, got)
		}
	}
	if len(results) > 0 {
		printTable(os.Stdout, results)
	}
}

// startMoto starts moto_server for EC2 (and the IAM calls seeding makes), skipping the
// benchmark loudly when it is not installed, unless IMDSGUARD_REQUIRE_MOTO=1.
func startMoto(b *testing.B) *fakeaws.MotoServer {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), motoTimeout)
	defer cancel()
	m, err := fakeaws.StartMoto(ctx)
	if err != nil {
		if errors.Is(err, fakeaws.ErrMotoMissing) && os.Getenv(testsupport.RequireMotoEnv) != "1" {
			b.Skipf("SKIPPING THE PLAN BENCHMARK: %v. Install it with `pip install \"moto[server]>=5.2,<5.3\"` "+
				"(or run `make bench`); set %s=1 to make this a failure.", err, testsupport.RequireMotoEnv)
		}
		b.Fatalf("moto_server: %v", err)
	}
	b.Cleanup(m.Stop)
	return m
}

// reservationSize is how many instances one RunInstances call launches while seeding:
// maxRunBatch, or IMDSGUARD_BENCH_RESERVATION_SIZE (1 makes moto page DescribeInstances
// as EC2 does; practical for 2,000 instances, not for 10,000: see the package doc).
func reservationSize(b *testing.B) int {
	b.Helper()
	v := os.Getenv(reservationSizeEnv)
	if v == "" {
		return maxRunBatch
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxRunBatch {
		b.Fatalf("%s=%q: want a number of instances from 1 to %d", reservationSizeEnv, v, maxRunBatch)
	}
	return n
}

// moduleRoot walks up from the package directory to the directory holding go.mod.
func moduleRoot(b testing.TB) string {
	b.Helper()
	dir, err := os.Getwd()
	if err != nil {
		b.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			b.Fatal("no go.mod above the benchmark's directory")
		}
		dir = parent
	}
}

// buildCLI builds cmd/imdsguard once, as `make build` does, into a temporary directory.
func buildCLI(b *testing.B, root string) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	bin, err := fakeaws.BuildBinary(ctx, "./cmd/imdsguard", filepath.Join(b.TempDir(), "imdsguard"), "-ldflags", "-s -w")
	if err != nil {
		b.Fatal(err)
	}
	return bin
}

// benchEnv is what the sizes share: the CLI, moto, and the fleet seeded last.
type benchEnv struct {
	bin             string
	moto            *fakeaws.MotoServer
	reservationSize int
	current         *fleet
}

func (e *benchEnv) closeFleet() {
	if e.current != nil {
		e.current.close()
		e.current = nil
	}
}

// fleetOf returns a fleet of n instances, seeding it unless the last one seeded has
// that size (the benchmark function runs more than once when -benchtime is not 1x).
func (e *benchEnv) fleetOf(b *testing.B, n int) *fleet {
	b.Helper()
	if e.current != nil && e.current.n == n {
		return e.current
	}
	e.closeFleet()
	ctx, cancel := context.WithTimeout(context.Background(), seedTimeout)
	defer cancel()
	if err := e.moto.Reset(ctx); err != nil {
		b.Fatal(err)
	}
	f, err := seedFleet(ctx, ec2Client(e.moto.URL), n, e.reservationSize, time.Now())
	if err != nil {
		b.Fatalf("seeding %d instances: %v", n, err)
	}
	e.current = f
	b.Logf("seeded %d instances in %s (not measured): %d moto reservations, %d MetadataNoToken datapoints, %d CloudTrail records",
		n, f.seedTime.Round(time.Second), f.reservations, f.points, f.events)
	return f
}

// result is what one size measured and derived.
type result struct {
	n        int
	calls    map[string]int
	wall     time.Duration // mean over the runs
	cpu      time.Duration // user+system time of the CLI, mean over the runs
	rssKiB   int64         // the highest over the runs
	rssKnown bool
	summary  map[string]int

	reservations    int
	reservationSize int
	seedTime        time.Duration
	describeServe   time.Duration // moto's serving time for the DescribeInstances pages, timed apart
	describePages   int
	metricForms     []url.Values  // the GetMetricData requests of the plan (the last run's)
	slowestMetric   time.Duration // the longest serving time of those requests, replayed apart
	lookbackHours   int
	metricsNeeded   int // M: instances whose metrics were read
	candidates      int // instances with a profile that reached rules 9-11
	lookupPageBound int
	lookupRequests  int // LookupEvents requests the stand-in received
	lookupResent    int // of which repeated an earlier request exactly (SDK retries)
	metricRequests  int // GetMetricData requests the stand-in received
}

// floor is the time the emulators take to answer the plan's calls, were every
// GetMetricData call issued at once: see floor_test.go.
func (r *result) floor() time.Duration { return r.describeServe + r.slowestMetric }

func (r *result) totalCalls() int {
	total := 0
	for _, c := range r.calls {
		total += c
	}
	return total
}

func (e *benchEnv) benchSize(b *testing.B, n int) *result {
	f := e.fleetOf(b, n)
	dir := b.TempDir()
	var r *result
	var wall, cpu time.Duration
	var rss int64
	b.StopTimer()
	b.ResetTimer()
	for range b.N {
		r = e.runPlan(b, f, dir)
		wall += r.wall
		cpu += r.cpu
		rss = max(rss, r.rssKiB)
	}
	r.wall, r.cpu, r.rssKiB = wall/time.Duration(b.N), cpu/time.Duration(b.N), rss
	r.reservations, r.reservationSize, r.seedTime = f.reservations, f.reservationSize, f.seedTime
	r.describeServe, r.describePages = describeServingTime(b, e.moto.URL)
	r.slowestMetric = slowestMetricCall(b, f.cloudWatch.URL, r.metricForms)

	b.ReportMetric(float64(r.calls[opDescribe]), opDescribe+"/op")
	b.ReportMetric(float64(r.calls[opGetMetricData]), opGetMetricData+"/op")
	b.ReportMetric(float64(r.calls[opLookupEvents]), opLookupEvents+"/op")
	b.ReportMetric(float64(r.totalCalls())/float64(n), "calls/instance")
	b.ReportMetric(r.wall.Seconds(), "wall-s/op")
	b.ReportMetric(float64(r.calls[opLookupEvents])/awsLookupsPerSecond, "LookupEvents-at-2rps-s")
	b.ReportMetric(r.floor().Seconds(), "floor-s")
	b.ReportMetric(float64(r.wall)/float64(r.floor()), "x-floor")
	if r.rssKnown {
		b.ReportMetric(float64(r.rssKiB)/1024, "peak-RSS-MiB")
	}
	b.Logf("N=%d: %d API calls (%.3f/instance) %v, wall %s, CPU %s, peak RSS %s; floor %s (DescribeInstances %s + slowest GetMetricData %s), wall/floor %s",
		n, r.totalCalls(), float64(r.totalCalls())/float64(n), r.calls, r.wall.Round(time.Millisecond),
		r.cpu.Round(time.Millisecond), formatRSS(r), r.floor().Round(time.Millisecond), r.describeServe.Round(time.Millisecond),
		r.slowestMetric.Round(time.Millisecond), floorRatio(r.wall, r.floor()))
	return r
}

// runPlan runs the built CLI once against the fleet, timing only the subprocess, and
// checks the plan it writes.
func (e *benchEnv) runPlan(b *testing.B, f *fleet, dir string) *result {
	b.Helper()
	lookupsBefore := f.lookupCount()
	metricsBefore := f.cloudWatch.Requests("GetMetricData")
	formsBefore := f.metricRequestCount()
	out := filepath.Join(dir, "plan.json")
	_ = os.Remove(out)

	ctx, cancel := context.WithTimeout(context.Background(), planTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, "plan", "--format", "json", "--output", out,
		"--region", region, "--cloudtrail-rps", fmt.Sprint(benchLookupsPerSecond))
	cmd.Env = planEnv(e.moto.URL, f, dir)
	var output tail
	cmd.Stdout, cmd.Stderr = &output, &output

	b.StartTimer()
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatalf("imdsguard plan: %v (after %s)\n%s", err, wall.Round(time.Millisecond), output.String())
	}

	r := &result{n: f.n, wall: wall, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	r.rssKiB, r.rssKnown = peakRSSKiB(cmd.ProcessState)
	raw, err := os.ReadFile(out)
	if err != nil {
		b.Fatalf("reading the plan: %v", err)
	}
	var p planDoc
	if err := json.Unmarshal(raw, &p); err != nil {
		b.Fatalf("the plan is not JSON: %v", err)
	}
	r.metricRequests = f.cloudWatch.Requests("GetMetricData") - metricsBefore
	r.metricForms = f.metricRequestsSince(formsBefore)
	checkPlan(b, f, &p, f.lookupsSince(lookupsBefore), r)
	return r
}

// planEnv is the CLI's environment: the standard AWS settings pointing at the emulators
// with throw-away credentials (demo.AWSEnv), CloudWatch at the indexed stand-in, and the
// rest of this process's environment without any AWS_ or IMDSGUARD_ variable that could
// send the CLI elsewhere or change its settings.
func planEnv(motoURL string, f *fleet, dir string) []string {
	set := demo.AWSEnv(motoURL, f.cloudTrail.URL, dir)
	set["AWS_ENDPOINT_URL_CLOUDWATCH"] = f.cloudWatch.URL
	set["AWS_EC2_METADATA_DISABLED"] = "true" // never look for an instance role
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "IMDSGUARD_") {
			continue
		}
		env = append(env, kv)
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		env = append(env, k+"="+set[k])
	}
	return env
}

// planDoc is the part of the plan document (schema imdsguard.plan/v1, DESIGN.md section
// 4) the benchmark reads. It is decoded from the JSON the CLI wrote, not from the
// report package's types, so the benchmark checks the documented wire format.
type planDoc struct {
	Schema   string `json:"schema"`
	Settings struct {
		LookbackHours int `json:"lookback_hours"`
	} `json:"settings"`
	Instances []planInstance `json:"instances"`
	Summary   map[string]int `json:"summary"`
	APICalls  map[string]int `json:"api_calls"`
}

type planInstance struct {
	InstanceID string       `json:"instance_id"`
	Action     string       `json:"action"`
	Reasons    []planReason `json:"reasons"`
	Evidence   struct {
		ObservedHours *int `json:"observed_hours"`
		CloudTrail    struct {
			Checked bool `json:"checked"`
		} `json:"cloudtrail"`
	} `json:"evidence"`
}

type planReason struct {
	Code string `json:"code"`
}

func (in *planInstance) primary() policy.ReasonCode {
	if len(in.Reasons) == 0 {
		return ""
	}
	return policy.ReasonCode(in.Reasons[0].Code)
}

func (in *planInstance) has(code policy.ReasonCode) bool {
	return slices.ContainsFunc(in.Reasons, func(r planReason) bool { return r.Code == string(code) })
}

// neededMetrics reports whether the guard read the instance's MetadataNoToken metric:
// its evidence has observed hours, or its verdict rests on the metric.
func (in *planInstance) neededMetrics() bool {
	switch in.primary() {
	case policy.ReasonIMDSv1UsedMetric, policy.ReasonInsufficientMetrics, policy.ReasonStaleMetrics:
		return true
	}
	return in.Evidence.ObservedHours != nil
}

// reachedCloudTrail reports whether the instance has an instance profile and reached
// rules 9-11, the only instances whose CloudTrail history may be read.
func (in *planInstance) reachedCloudTrail() bool {
	switch policy.Action(in.Action) {
	case policy.ActionRemediate:
		return in.primary() == policy.ReasonIMDSv1Unused && !in.has(policy.ReasonNoInstanceProfile)
	case policy.ActionTicket:
		return in.primary() == policy.ReasonIMDSv1UsedCloudTrail
	case policy.ActionDefer:
		return in.primary() == policy.ReasonCloudTrailUnavailable
	}
	return false
}

// checkPlan checks that the plan covers the fleet, that the verdicts are those the
// fleet was seeded for, and the API-call budgets; it fills in r's derived figures.
func checkPlan(b *testing.B, f *fleet, p *planDoc, lookups []fakeaws.LookupRequest, r *result) {
	b.Helper()
	if p.Schema != "imdsguard.plan/v1" {
		b.Errorf("plan schema %q, want imdsguard.plan/v1", p.Schema)
	}
	r.calls, r.summary, r.lookbackHours = p.APICalls, p.Summary, p.Settings.LookbackHours
	if r.lookbackHours <= 0 {
		b.Fatalf("plan settings.lookback_hours = %d", r.lookbackHours)
	}

	// Coverage: every seeded instance once, nothing else, and a summary adding up to N.
	seen := make(map[string]bool, len(p.Instances))
	byAction := map[string]int{}
	var wrong []string
	candidates := map[string]bool{}
	for i := range p.Instances {
		in := &p.Instances[i]
		if seen[in.InstanceID] {
			b.Errorf("the plan lists %s twice", in.InstanceID)
		}
		seen[in.InstanceID] = true
		byAction[in.Action]++
		inst, ok := f.instances[in.InstanceID]
		if !ok {
			b.Errorf("the plan lists %s, which was not seeded", in.InstanceID)
			continue
		}
		if in.Action != string(inst.want) {
			wrong = append(wrong, fmt.Sprintf("%s (%s) %s/%s, want %s", in.InstanceID, inst.group, in.Action, in.primary(), inst.want))
		}
		if in.neededMetrics() {
			r.metricsNeeded++
		}
		if in.reachedCloudTrail() {
			candidates[in.InstanceID] = true
			r.lookupPageBound += lookupPages(len(inst.deliveries))
		}
	}
	r.candidates = len(candidates)
	if len(p.Instances) != f.n || len(seen) != f.n {
		b.Errorf("the plan lists %d instances (%d distinct), want all %d", len(p.Instances), len(seen), f.n)
	}
	summed := 0
	for _, a := range policy.Actions {
		summed += p.Summary[string(a)]
		if p.Summary[string(a)] != byAction[string(a)] {
			b.Errorf("summary.%s = %d, but %d instances have that action", a, p.Summary[string(a)], byAction[string(a)])
		}
	}
	if summed != f.n {
		b.Errorf("the summary %v adds up to %d, want %d", p.Summary, summed, f.n)
	}
	if len(wrong) > 0 {
		b.Errorf("%d instances got another action than the fleet was seeded for, e.g. %s",
			len(wrong), strings.Join(wrong[:min(5, len(wrong))], "; "))
	}

	// ec2:DescribeInstances: pages of up to 1000.
	if got, limit := p.APICalls[opDescribe], ceilDiv(f.n, describePageSize); got > limit {
		b.Errorf("%s: %d calls for %d instances, budget ceil(N/%d) = %d", opDescribe, got, f.n, describePageSize, limit)
	}

	// cloudwatch:GetMetricData: as many hourly series per call as one response holds.
	got := p.APICalls[opGetMetricData]
	if limit := ceilDiv(r.metricsNeeded, queriesPerCall(r.lookbackHours)); got > limit {
		b.Errorf("%s: %d calls for %d instances needing metrics, bound ceil(M/%d) = %d",
			opGetMetricData, got, r.metricsNeeded, queriesPerCall(r.lookbackHours), limit)
	}
	if r.metricRequests < got {
		b.Errorf("%s: the plan counts %d calls but the stand-in received %d requests", opGetMetricData, got, r.metricRequests)
	}

	// cloudtrail:LookupEvents: only instances with a profile that reached rules 9-11,
	// each at least once, and no more pages than their records fill. The stand-in sees
	// every request, including those the SDK sent again after a failed attempt; the
	// plan's count, from the SDK middleware, counts each operation once.
	r.lookupRequests = len(lookups)
	var strangers []string
	looked := map[string]bool{}
	distinct := map[string]bool{}
	for _, l := range lookups {
		key := fmt.Sprintf("%s=%s|%s|%s|%s", l.AttributeKey, l.AttributeValue, l.NextToken, timeKey(l.StartTime), timeKey(l.EndTime))
		if distinct[key] {
			r.lookupResent++
			continue
		}
		distinct[key] = true
		looked[l.AttributeValue] = true
		if l.AttributeKey != "Username" || !candidates[l.AttributeValue] {
			strangers = append(strangers, l.AttributeKey+"="+l.AttributeValue)
		}
	}
	if len(strangers) > 0 {
		verdicts := make(map[string]string, len(p.Instances))
		for i := range p.Instances {
			in := &p.Instances[i]
			verdicts[in.InstanceID] = in.Action + "/" + string(in.primary())
		}
		var eg []string
		for _, s := range strangers[:min(5, len(strangers))] {
			id := s[strings.IndexByte(s, '=')+1:]
			group := "not seeded"
			if inst, ok := f.instances[id]; ok {
				group = inst.group
			}
			eg = append(eg, fmt.Sprintf("%s (%s, %s)", s, group, verdicts[id]))
		}
		b.Errorf("%s: %d lookups for instances that did not need one, e.g. %s", opLookupEvents, len(strangers), strings.Join(eg, "; "))
	}
	missed := 0
	for id := range candidates {
		if !looked[id] {
			missed++
		}
	}
	if missed > 0 {
		b.Errorf("%s: %d of the %d instances that needed CloudTrail were not looked up", opLookupEvents, missed, len(candidates))
	}
	got = p.APICalls[opLookupEvents]
	if got > r.lookupPageBound || len(distinct) > r.lookupPageBound {
		b.Errorf("%s: the plan counts %d calls and the stand-in received %d distinct requests, bound %d (the pages of %d candidates' records)",
			opLookupEvents, got, len(distinct), r.lookupPageBound, len(candidates))
	}
	if len(distinct) != got {
		b.Errorf("%s: the plan counts %d calls but the stand-in received %d distinct requests", opLookupEvents, got, len(distinct))
	}
	if r.lookupResent > 0 {
		b.Logf("WARNING %s: the SDK sent %d of %d requests twice (retries after a failed attempt); "+
			"each costs LookupEvents quota and none is in the plan's api_calls", opLookupEvents, r.lookupResent, r.lookupRequests)
	}
}

func timeKey(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// queriesPerCall is how many hourly series of lookbackHours points fit in one
// GetMetricData response: floor(100800/hours), at most 500 queries.
func queriesPerCall(lookbackHours int) int {
	return min(maxQueriesPerCall, max(1, maxDatapointsPerCall/lookbackHours))
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// printTable prints the figures of every size, one column per size.
func printTable(w io.Writer, results []*result) {
	var buf bytes.Buffer
	fmt.Fprintln(&buf)
	fmt.Fprintln(&buf, "imdsguard plan benchmark: one account-region, default settings, the built CLI run as a subprocess")
	fmt.Fprintln(&buf, "  EC2: moto_server (moto 5.2) | CloudWatch: indexed AWSQuery stand-in | CloudTrail: JSON 1.1 stand-in")
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	row := func(label string, cell func(r *result) string) {
		fmt.Fprint(tw, label, "\t")
		for _, r := range results {
			fmt.Fprint(tw, cell(r), "\t")
		}
		fmt.Fprintln(tw)
	}
	row("", func(r *result) string { return fmt.Sprintf("N=%d", r.n) })
	row(opDescribe, func(r *result) string { return fmt.Sprint(r.calls[opDescribe]) })
	row("  budget ceil(N/1000)", func(r *result) string { return fmt.Sprint(ceilDiv(r.n, describePageSize)) })
	row("  moto reservations (size) -> moto pages [1]", func(r *result) string {
		return fmt.Sprintf("%d (<=%d) -> %d", r.reservations, r.reservationSize, ceilDiv(r.reservations, describePageSize))
	})
	row(opGetMetricData, func(r *result) string { return fmt.Sprint(r.calls[opGetMetricData]) })
	row("  M, instances whose metrics were read", func(r *result) string { return fmt.Sprint(r.metricsNeeded) })
	row("  achievable ceil(M*hours/100800) [2]", func(r *result) string {
		return fmt.Sprint(ceilDiv(r.metricsNeeded*r.lookbackHours, maxDatapointsPerCall))
	})
	row("  code bound ceil(M/floor(100800/hours))", func(r *result) string {
		return fmt.Sprint(ceilDiv(r.metricsNeeded, queriesPerCall(r.lookbackHours)))
	})
	row("  requests the stand-in received", func(r *result) string { return fmt.Sprint(r.metricRequests) })
	row("  DESIGN budget ceil(N/500)", func(r *result) string {
		budget := ceilDiv(r.n, maxQueriesPerCall)
		if r.calls[opGetMetricData] > budget {
			return fmt.Sprintf("%d (exceeded)", budget)
		}
		return fmt.Sprint(budget)
	})
	row(opLookupEvents, func(r *result) string { return fmt.Sprint(r.calls[opLookupEvents]) })
	row("  instances with a profile at rules 9-11", func(r *result) string { return fmt.Sprint(r.candidates) })
	row("  bound: pages of their records", func(r *result) string { return fmt.Sprint(r.lookupPageBound) })
	row("  requests the stand-in received (resent) [5]", func(r *result) string {
		return fmt.Sprintf("%d (%d)", r.lookupRequests, r.lookupResent)
	})
	row("API calls in all", func(r *result) string { return fmt.Sprint(r.totalCalls()) })
	row("API calls per instance", func(r *result) string { return fmt.Sprintf("%.3f", float64(r.totalCalls())/float64(r.n)) })
	row("wall time, subprocess [3]", func(r *result) string { return fmtDuration(r.wall) })
	row("floor the emulators set [6]", func(r *result) string { return fmtDuration(r.floor()) })
	row("  moto serving the DescribeInstances pages", func(r *result) string {
		return fmt.Sprintf("%s (%d pages)", fmtDuration(r.describeServe), r.describePages)
	})
	row("  + the slowest GetMetricData call, served", func(r *result) string {
		return fmt.Sprintf("%s (of %d)", fmtDuration(r.slowestMetric), len(r.metricForms))
	})
	row("wall / floor (DESIGN: within 1.3x)", func(r *result) string { return floorRatio(r.wall, r.floor()) })
	row("CLI CPU time, user+sys", func(r *result) string { return fmtDuration(r.cpu) })
	row("peak RSS", func(r *result) string { return formatRSS(r) })
	row("LookupEvents at AWS's 2 req/s, projected [4]", func(r *result) string {
		return fmtDuration(time.Duration(float64(r.calls[opLookupEvents]) / awsLookupsPerSecond * float64(time.Second)))
	})
	row("verdicts remediate/ticket/defer/skip", func(r *result) string {
		return fmt.Sprintf("%d/%d/%d/%d", r.summary["remediate"], r.summary["ticket"], r.summary["defer"], r.summary["skip"])
	})
	row("seeding, not measured", func(r *result) string { return fmtDuration(r.seedTime) })
	_ = tw.Flush()
	fmt.Fprintf(&buf, `[1] moto pages DescribeInstances by reservation, not by instance: seeded in RunInstances
    batches (one reservation each) of more than one instance, the fleet comes back in fewer,
    larger pages than from EC2, whose pages hold at most %d instances (ceil(N/1000) pages).
    %s=1 seeds one instance per reservation, so that moto pages as EC2 does.
[2] GetMetricData returns at most %d datapoints per call; with one datapoint per hour
    of the lookback, a call of 500 queries would page, so the code packs
    floor(%d/hours) = %d queries per call. DESIGN's ceil(N/500) assumes 500.
[3] the CLI runs with --cloudtrail-rps %d; CloudWatch is the indexed stand-in because moto's
    GetMetricData gave no answer within 60 s for 500 queries over 2,000 instances x 336 hours.
[4] AWS allows 2 LookupEvents calls per second per account and region: calls/2 seconds.
    A real run adds this to the wall time.
[5] requests the SDK sent again after a failed attempt are not in the plan's api_calls
    (the middleware counts operations) but each costs LookupEvents quota.
[6] DESIGN.md section 6: the emulators' own time to answer the DescribeInstances pages plus
    one round of GetMetricData calls (the slowest, were all issued at once). Measured apart
    from the plan on the same fleet, one request at a time, each from sending it to the last
    byte of its reply: the plan's own GetMetricData requests are sent again as the stand-in
    received them. CloudTrail is not in the floor: its pace is a quota ([4]).
Peak RSS is that of the CLI; DESIGN's budget for a 10,000-instance sweep in the Lambda is %d MiB.
`, describePageSize, reservationSizeEnv, maxDatapointsPerCall, maxDatapointsPerCall,
		queriesPerCall(results[0].lookbackHours), benchLookupsPerSecond, lambdaMemoryMiB)
	_, _ = w.Write(buf.Bytes())
}

func fmtDuration(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	default:
		return d.Round(time.Millisecond).String()
	}
}

func formatRSS(r *result) string {
	if !r.rssKnown {
		return "n/a (Linux only)"
	}
	s := fmt.Sprintf("%.1f MiB", float64(r.rssKiB)/1024)
	if r.rssKiB > lambdaMemoryMiB*1024 {
		s += fmt.Sprintf(" (over %d MiB)", lambdaMemoryMiB)
	}
	return s
}

// tail keeps the last 64 KiB of the CLI's output, for the failure message.
type tail struct{ buf []byte }

func (t *tail) Write(p []byte) (int, error) {
	const keep = 64 << 10
	t.buf = append(t.buf, p...)
	if len(t.buf) > keep {
		t.buf = t.buf[len(t.buf)-keep:]
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.buf) }
