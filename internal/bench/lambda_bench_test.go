package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
)

// coldStarts is how many times each bootstrap is started to take the median.
const coldStarts = 20

// BenchmarkLambda reports, for each function, the size of the bootstrap `sam build`
// deploys (linux/arm64, stripped, as the Makefile's build-<Function> targets build it)
// and its cold start: from process start to its first Runtime API `next` request, the
// median of 20 starts of the same binary built for this machine, under the Runtime API
// harness. DESIGN.md section 6 budgets the cold start under 100 ms; it is reported, not
// asserted.
func BenchmarkLambda(b *testing.B) {
	root := moduleRoot(b)
	for _, fn := range []struct{ name, pkg string }{
		{"DetectFunction", "./functions/detect"},
		{"RemediateFunction", "./functions/remediate"},
	} {
		b.Run(fn.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			size := deployedSize(b, ctx, root, fn.name)
			host, err := fakeaws.BuildLambda(ctx, fn.pkg, b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			env := map[string]string{
				"IMDSGUARD_QUEUE_URL":    "http://127.0.0.1:1/queue",
				"IMDSGUARD_LEDGER_TABLE": "ledger",
				"IMDSGUARD_TOPIC_ARN":    "arn:aws:sns:us-east-1:123456789012:notices",
				"AWS_ENDPOINT_URL":       "http://127.0.0.1:1",
			}
			var starts []time.Duration
			b.ResetTimer()
			for range coldStarts {
				starts = append(starts, coldStart(b, ctx, host, env))
			}
			b.StopTimer()
			slices.Sort(starts)
			median := (starts[coldStarts/2-1] + starts[coldStarts/2]) / 2
			b.ReportMetric(float64(median.Microseconds())/1000, "ms-cold-start-median")
			b.ReportMetric(float64(starts[coldStarts-1].Microseconds())/1000, "ms-cold-start-max")
			b.ReportMetric(float64(size)/(1<<20), "MiB-bootstrap")
			fmt.Printf("%-18s bootstrap (linux/arm64, stripped) %.1f MiB; cold start median %s, min %s, max %s over %d starts\n",
				fn.name, float64(size)/(1<<20), median.Round(10*time.Microsecond), starts[0].Round(10*time.Microsecond),
				starts[coldStarts-1].Round(10*time.Microsecond), coldStarts)
		})
	}
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
