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
	name     string // the template's function name, or "minimal"
	pkg      string
	deployed bool // built by the Makefile's build-<name> target for `sam build`
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
// ratio to it: DESIGN.md section 6 budgets the cold start within 2x the minimal one. The
// starts of the three bootstraps take turns, so that a slower moment of the machine
// falls on all of them alike. The times are reported, never asserted.
func BenchmarkLambda(b *testing.B) {
	root := moduleRoot(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	boots := []*lambdaBootstrap{
		{name: "minimal", pkg: minimalLambdaPkg},
		{name: "DetectFunction", pkg: "./functions/detect", deployed: true},
		{name: "RemediateFunction", pkg: "./functions/remediate", deployed: true},
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

	floor := median(boots[0].starts)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "\nLambda cold start: process start to the first Runtime API next, %d starts each, taking turns\n", coldStarts)
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "bootstrap\tdeployed (linux/arm64, stripped)\tmedian\tmin\tmax\tx minimal\twithin 2x")
	for _, lb := range boots {
		med := median(lb.starts)
		ratio := float64(med) / float64(floor)
		size, ratioCell, within := "-", "-", "-"
		if lb.deployed {
			size = fmt.Sprintf("%.1f MiB", float64(lb.size)/(1<<20))
			ratioCell = fmt.Sprintf("%.2f", ratio)
			within = "no"
			if ratio <= coldStartBudget {
				within = "yes"
			}
			b.ReportMetric(float64(med.Microseconds())/1000, "ms-cold-start-median-"+lb.name)
			b.ReportMetric(ratio, "x-minimal-"+lb.name)
			b.ReportMetric(float64(lb.size)/(1<<20), "MiB-bootstrap-"+lb.name)
		} else {
			b.ReportMetric(float64(med.Microseconds())/1000, "ms-cold-start-median-minimal")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", lb.name, size, med.Round(10*time.Microsecond),
			slices.Min(lb.starts).Round(10*time.Microsecond), slices.Max(lb.starts).Round(10*time.Microsecond), ratioCell, within)
	}
	_ = tw.Flush()
	fmt.Fprintf(&buf, "The minimal bootstrap (%s) is lambda.Start of a no-op handler; all three are built by the\n"+
		"harness's BuildLambda (host platform, -tags lambda.norpc, CGO_ENABLED=0), the functions with\n"+
		"the environment their settings need. DESIGN.md section 6: within %gx the minimal bootstrap.\n",
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
