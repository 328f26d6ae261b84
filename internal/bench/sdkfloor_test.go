package bench

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// sdkFloors pairs each function with its SDK floor: a no-op bootstrap that links the
// same AWS SDK packages (testdata/sdkfloor). BenchmarkLambda starts both, so that a
// function's cold start splits into what the SDK's package initialisation costs and what
// imdsguard's own code adds.
var sdkFloors = map[string]string{
	"./functions/detect":    "./internal/bench/testdata/sdkfloor/detect",
	"./functions/remediate": "./internal/bench/testdata/sdkfloor/remediate",
	"./functions/verify":    "./internal/bench/testdata/sdkfloor/verify",
}

// TestSDKFloorsLinkWhatTheFunctionsLink keeps each floor honest: it must link exactly
// the aws-sdk-go-v2 and smithy-go packages its function links, no fewer (the floor would
// flatter the function) and no more.
func TestSDKFloorsLinkWhatTheFunctionsLink(t *testing.T) {
	root := moduleRoot(t)
	sdkDeps := func(pkg string) []string {
		cmd := exec.Command("go", "list", "-deps", "-tags", "lambda.norpc", pkg)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		var sdk []string
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "github.com/aws/aws-sdk-go-v2/") || strings.HasPrefix(dep, "github.com/aws/smithy-go") {
				sdk = append(sdk, dep)
			}
		}
		slices.Sort(sdk)
		return sdk
	}
	for function, floor := range sdkFloors {
		want, got := sdkDeps(function), sdkDeps(floor)
		if len(want) < 20 {
			t.Fatalf("go list -deps %s listed only %v", function, want)
		}
		for _, p := range want {
			if _, found := slices.BinarySearch(got, p); !found {
				t.Errorf("%s links %s, %s does not: add its import there", function, p, floor)
			}
		}
		for _, p := range got {
			if _, found := slices.BinarySearch(want, p); !found {
				t.Errorf("%s links %s, %s does not: remove its import", floor, p, function)
			}
		}
	}
}
