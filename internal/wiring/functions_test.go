package wiring_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
)

// function is one Lambda function as these tests start it: its package, and an event it
// handles without any AWS call once it is set up.
type function struct {
	name, pkg string
	quiet     string // the event
	// answered checks the response to quiet.
	answered func(t *testing.T, response []byte)
}

var functions = []function{
	{
		name: "detect", pkg: "./functions/detect",
		// Instances in another region: reported, not judged.
		quiet: `{"instance_ids": ["i-0123456789abcdef0"], "region": "eu-west-3"}`,
		answered: func(t *testing.T, response []byte) {
			var sum struct {
				Ignored string   `json:"ignored"`
				Foreign []string `json:"foreign"`
			}
			if err := json.Unmarshal(response, &sum); err != nil || sum.Ignored == "" || len(sum.Foreign) != 1 {
				t.Errorf("response %s (%v), want a summary that ignores the one foreign instance", response, err)
			}
		},
	},
	{
		name: "remediate", pkg: "./functions/remediate",
		quiet: `{"Records": []}`,
		answered: func(t *testing.T, response []byte) {
			var resp struct {
				Failures []any `json:"batchItemFailures"`
			}
			if err := json.Unmarshal(response, &resp); err != nil || len(resp.Failures) != 0 {
				t.Errorf("response %s (%v), want no batch item failures", response, err)
			}
		},
	},
}

// settingsEnv is the environment both functions need to start, pointing every AWS
// endpoint at a closed port and the shared configuration files into dir, under the
// profile profile.
func settingsEnv(dir, profile string) map[string]string {
	return map[string]string{
		"IMDSGUARD_QUEUE_URL":         "http://127.0.0.1:1/queue",
		"IMDSGUARD_LEDGER_TABLE":      "ledger",
		"IMDSGUARD_TOPIC_ARN":         "arn:aws:sns:us-east-1:123456789012:notices",
		"AWS_ENDPOINT_URL":            "http://127.0.0.1:1",
		"AWS_PROFILE":                 profile,
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
	}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func start(t *testing.T, ctx context.Context, f function, env map[string]string) *fakeaws.LambdaProcess {
	t.Helper()
	bootstrap, err := fakeaws.BuildLambda(ctx, f.pkg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	api, err := fakeaws.NewRuntimeAPI()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	proc, err := fakeaws.StartLambda(ctx, bootstrap, api, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := proc.Stop(); err != nil {
			t.Logf("stopping %s: %v", f.name, err)
		}
		if t.Failed() {
			t.Logf("%s logs:\n%s", f.name, proc.Logs())
		}
	})
	return proc
}

// TestFunctionsLoadTheConfigurationOnFirstInvocation: the built bootstraps load the AWS
// configuration on their first invocation, not before lambda.Start. A function whose
// configuration cannot be loaded (its profile does not exist) still starts; the
// invocation fails with an error saying what could not be loaded and that the next
// invocation tries again; and once the profile exists, the next invocation is set up
// and handled.
func TestFunctionsLoadTheConfigurationOnFirstInvocation(t *testing.T) {
	for _, f := range functions {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			dir := t.TempDir()
			proc := start(t, ctx, f, settingsEnv(dir, "imdsguard-lazy"))
			if _, err := proc.ColdStart(ctx); err != nil {
				t.Fatalf("the function did not start with a configuration it cannot load: %v", err)
			}

			inv, err := proc.Invoke(ctx, []byte(f.quiet))
			if err != nil {
				t.Fatal(err)
			}
			if inv.Err == nil {
				t.Fatalf("the first invocation succeeded without a loadable configuration: %s", inv.Response)
			}
			for _, want := range []string{"loading the AWS configuration", "imdsguard-lazy", "the next invocation tries again"} {
				if !strings.Contains(inv.Err.Message, want) {
					t.Errorf("error %q does not say %q", inv.Err.Message, want)
				}
			}

			// The profile appears: the next invocation sets the function up and is handled.
			if err := os.WriteFile(filepath.Join(dir, "config"), []byte("[profile imdsguard-lazy]\nregion = us-east-1\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				inv, err = proc.Invoke(ctx, []byte(f.quiet))
				if err != nil {
					t.Fatal(err)
				}
				if inv.Err != nil {
					t.Fatalf("invocation %d after the profile was written failed: %s: %s", i+2, inv.Err.Type, inv.Err.Message)
				}
				f.answered(t, inv.Response)
			}
			// The line was written before the first invocation's error was posted, but the
			// harness may not have read it off the pipe yet.
			const failedSetUp = `"msg":"setting up the function failed"`
			if err := proc.WaitForLog(ctx, failedSetUp); err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(proc.Logs(), failedSetUp); n != 1 {
				t.Errorf("the function logged %d failed set-ups, want 1 (the first invocation's)", n)
			}
		})
	}
}

// TestFunctionsRefuseInvalidSettingsAtStartUp: settings are still checked before
// lambda.Start; an invalid one stops the function before it asks for an event, with a
// message naming the setting.
func TestFunctionsRefuseInvalidSettingsAtStartUp(t *testing.T) {
	for _, f := range functions {
		for _, tc := range []struct {
			setting string
			set     func(env map[string]string)
		}{
			{"IMDSGUARD_MODE", func(env map[string]string) { env["IMDSGUARD_MODE"] = "yolo" }},
			{"IMDSGUARD_LEDGER_TABLE", func(env map[string]string) { delete(env, "IMDSGUARD_LEDGER_TABLE") }},
		} {
			t.Run(f.name+"/"+tc.setting, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				env := settingsEnv(t.TempDir(), "imdsguard-lazy")
				tc.set(env)
				proc := start(t, ctx, f, env)
				if _, err := proc.ColdStart(ctx); err == nil {
					t.Fatalf("the function started with an invalid %s", tc.setting)
				}
				<-proc.Done()
				if logs := proc.Logs(); !strings.Contains(logs, "invalid settings") || !strings.Contains(logs, tc.setting) {
					t.Errorf("the logs do not name the invalid setting %s:\n%s", tc.setting, logs)
				}
			})
		}
	}
}
