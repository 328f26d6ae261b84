package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
)

// coldStarts is how many times each bootstrap is started to take the median.
const coldStarts = 20

// coldStartBudget is DESIGN.md section 6's budget: a function's cold start within this
// many times the minimal aws-lambda-go bootstrap's, measured in the same run.
const coldStartBudget = 2.0

// minimalLambdaPkg is the floor: lambda.Start of a handler that does nothing.
const minimalLambdaPkg = "./internal/bench/testdata/minimallambda"

// lambdaBootstrap is one bootstrap BenchmarkLambda starts.
type lambdaBootstrap struct {
	name     string // the template's function name, "minimal", or the function's SDK floor
	pkg      string
	deployed bool             // built by the Makefile's build-<name> target for `sam build`
	floor    *lambdaBootstrap // the function's SDK floor (sdkFloors), when deployed
	path     string
	size     int64 // of the deployed bootstrap, when deployed
	starts   []time.Duration
}

// BenchmarkLambda reports, for each function, the size of the bootstrap `sam build`
// deploys (linux/arm64, stripped, as the Makefile's build-<Function> targets build it)
// and its cold start: from process start to its first Runtime API `next` request, the
// median of 20 starts of the same binary built for this machine, under the Runtime API
// harness. Next to them it measures, in the same run and built the same way, a minimal
// aws-lambda-go bootstrap (lambda.Start of a no-op handler), and prints each function's
// ratio to it: DESIGN.md section 6 budgets the cold start within 2x the minimal one.
//
// It also starts each function's SDK floor (sdkFloors): the minimal bootstrap linking the
// AWS SDK packages the function links. The SDK initialises its packages before main runs,
// whether or not a client is ever built (service/ssm's schemas alone allocate 1.4 MB), so
// the floor is the least a bootstrap linking those services can take, and the difference
// is what imdsguard's own code costs. The starts of all bootstraps take turns, so that a
// slower moment of the machine falls on all of them alike. The times are reported, never
// asserted.
func BenchmarkLambda(b *testing.B) {
	root := moduleRoot(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	minimal := &lambdaBootstrap{name: "minimal", pkg: minimalLambdaPkg}
	boots := []*lambdaBootstrap{minimal}
	for _, f := range []struct{ name, pkg string }{
		{"DetectFunction", "./functions/detect"},
		{"RemediateFunction", "./functions/remediate"},
		{"VerifyFunction", "./functions/verify"},
	} {
		floor := &lambdaBootstrap{name: f.name + " SDK floor", pkg: sdkFloors[f.pkg]}
		boots = append(boots, &lambdaBootstrap{name: f.name, pkg: f.pkg, deployed: true, floor: floor}, floor)
	}
	for _, lb := range boots {
		if lb.deployed {
			lb.size = deployedSize(b, ctx, root, lb.name)
		}
		var err error
		if lb.path, err = fakeaws.BuildLambda(ctx, lb.pkg, b.TempDir()); err != nil {
			b.Fatal(err)
		}
	}
	env := map[string]string{
		"IMDSGUARD_QUEUE_URL":    "http://127.0.0.1:1/queue",
		"IMDSGUARD_LEDGER_TABLE": "ledger",
		"IMDSGUARD_TOPIC_ARN":    "arn:aws:sns:us-east-1:123456789012:notices",
		"AWS_ENDPOINT_URL":       "http://127.0.0.1:1",
	}
	b.ResetTimer()
	for round := range coldStarts {
		for i := range boots {
			lb := boots[(round+i)%len(boots)]
			lb.starts = append(lb.starts, coldStart(b, ctx, lb.path, env))
		}
	}
	b.StopTimer()

	base := median(minimal.starts)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "\nLambda cold start: process start to the first Runtime API next, %d starts each, taking turns\n", coldStarts)
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "bootstrap\tdeployed (linux/arm64, stripped)\tmedian\tmin\tmax\tx minimal\twithin 2x\timdsguard's own code")
	for _, lb := range boots {
		med := median(lb.starts)
		ratio := float64(med) / float64(base)
		size, within, own := "-", "-", "-"
		if lb.deployed {
			size = fmt.Sprintf("%.1f MiB", float64(lb.size)/(1<<20))
			within = "no"
			if ratio <= coldStartBudget {
				within = "yes"
			}
			own = "+" + ms(med-median(lb.floor.starts))
			b.ReportMetric(float64(med.Microseconds())/1000, "ms-cold-start-median-"+lb.name)
			b.ReportMetric(ratio, "x-minimal-"+lb.name)
			b.ReportMetric(float64(lb.size)/(1<<20), "MiB-bootstrap-"+lb.name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\n", lb.name, size, ms(med),
			ms(slices.Min(lb.starts)), ms(slices.Max(lb.starts)), ratio, within, own)
	}
	_ = tw.Flush()
	fmt.Fprintf(&buf, "The minimal bootstrap (%s) is lambda.Start of a no-op handler; a function's SDK floor\n"+
		"(testdata/sdkfloor) is that bootstrap linking the AWS SDK packages the function links, and\n"+
		"imdsguard's own code is the function's median less its floor's. All are built by the harness's\n"+
		"BuildLambda (host platform, -tags lambda.norpc, CGO_ENABLED=0) and started with the environment\n"+
		"the functions' settings need. DESIGN.md section 6: within %gx the minimal bootstrap.\n",
		minimalLambdaPkg, coldStartBudget)
	_, _ = os.Stdout.Write(buf.Bytes())
}

// median is the median of the durations (the mean of the middle two of an even count).
func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// deployedSize builds the function as `sam build` does and returns the bootstrap's size.
func deployedSize(b *testing.B, ctx context.Context, root, function string) int64 {
	b.Helper()
	dir := b.TempDir()
	cmd := exec.CommandContext(ctx, "make", "-s", "build-"+function, "ARTIFACTS_DIR="+dir)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("make build-%s: %v\n%s", function, err, out)
	}
	info, err := os.Stat(filepath.Join(dir, "bootstrap"))
	if err != nil {
		b.Fatal(err)
	}
	return info.Size()
}

func coldStart(b *testing.B, ctx context.Context, bootstrap string, env map[string]string) time.Duration {
	b.Helper()
	api, err := fakeaws.NewRuntimeAPI()
	if err != nil {
		b.Fatal(err)
	}
	defer api.Close()
	proc, err := fakeaws.StartLambda(ctx, bootstrap, api, env)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := proc.Stop(); err != nil {
			b.Logf("stopping %s: %v", bootstrap, err)
		}
	}()
	d, err := proc.ColdStart(ctx)
	if err != nil {
		b.Fatalf("cold start of %s: %v\n%s", bootstrap, err, proc.Logs())
	}
	return d
}
