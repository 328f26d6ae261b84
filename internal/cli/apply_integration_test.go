package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/testsupport/schematest"
)

// TestApply enforces what a fresh judgement still says to remediate, through remediate's
// own handler: it previews and asks first, keeps to a reviewed plan file's instances,
// leaves the instances it would ticket alone, records each enforcement in the ledger
// (watched by verify from then on), and stops at the pause switch.
func TestApply(t *testing.T) {
	w := newWorld(t, "web", "static-site", "legacy-v1", "eks-node")
	ctx := context.Background()
	fx := newStack(t, w.moto.URL)
	cfg, db, res := fx.cfg, fx.db, fx.res
	ids := map[string]string{}
	for _, s := range w.fleet {
		ids[s.Kind.Name] = s.ID
	}
	tokens := func(kind string) string {
		out, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{ids[kind]}})
		if err != nil {
			t.Fatal(err)
		}
		return string(out.Reservations[0].Instances[0].MetadataOptions.HttpTokens)
	}
	base := []string{"apply", "--table", res.Table, "--cloudtrail-rps", "100"}

	// A reviewed plan of the web server only.
	planFile := filepath.Join(t.TempDir(), "plan.json")
	if code, _, stderr := w.run(t, "plan", "--format", "json", "--instance-ids", ids["web"], "--cloudtrail-rps", "100", "-o", planFile); code != ExitOK {
		t.Fatalf("plan: exit %d: %s", code, stderr)
	}
	w.stdin = "no\n"
	code, stdout, stderr := w.run(t, append(base, "--plan", planFile)...)
	if code != ExitFailure || !strings.Contains(stderr, "not confirmed") || !strings.Contains(stdout, ids["web"]) || strings.Contains(stdout, ids["static-site"]) {
		t.Errorf("answered no: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if got := tokens("web"); got != "optional" {
		t.Fatalf("answered no, and web changed: %s", got)
	}
	w.stdin = "yes\n"
	code, stdout, stderr = w.run(t, append(base, "--plan", planFile)...)
	if code != ExitOK || !strings.Contains(stdout, ids["web"]+": enforced") {
		t.Fatalf("the reviewed plan: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if tokens("web") != "required" || tokens("static-site") != "optional" {
		t.Errorf("the reviewed plan enforced web %s, static-site %s; want only web", tokens("web"), tokens("static-site"))
	}
	book := &ledger.Ledger{API: db, Table: res.Table}
	if watches, err := book.Watching(ctx, "123456789012", demo.Region); err != nil || len(watches) != 1 || watches[0].InstanceID != ids["web"] {
		t.Errorf("watches %+v, %v; want web's enforcement watched", watches, err)
	}

	// The pause switch holds every enforcement back.
	if _, err := ssm.NewFromConfig(cfg).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/imdsguard/paused"), Value: aws.String("true"),
		Type: ssmtypes.ParameterTypeString}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = w.run(t, append(base, "--yes")...)
	if code != ExitOK || !strings.Contains(stdout, ids["static-site"]+": deferred") || !strings.Contains(stdout, "paused") {
		t.Errorf("paused: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if got := tokens("static-site"); got != "optional" {
		t.Errorf("enforced while paused: %s", got)
	}
	code, stdout, stderr = w.run(t, append(base, "--yes", "--format", "json")...)
	if code != ExitOK || !strings.Contains(stdout, `"result": "deferred"`) {
		t.Errorf("paused, json: exit %d\n%s\n%s", code, stdout, stderr)
	}
	schematest.ValidateAgainstSchema(t, "apply.schema.json", []byte(stdout))
	if _, err := ssm.NewFromConfig(cfg).DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/imdsguard/paused")}); err != nil {
		t.Fatal(err)
	}

	// Everything else that a fresh judgement remediates; the IMDSv1 user is left alone.
	code, stdout, stderr = w.run(t, append(base, "--yes")...)
	if code != ExitOK || !strings.Contains(stdout, ids["static-site"]+": enforced") || !strings.Contains(stdout, ids["eks-node"]+": enforced") ||
		strings.Contains(stdout, ids["legacy-v1"]) {
		t.Errorf("apply: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if tokens("legacy-v1") != "optional" {
		t.Errorf("the IMDSv1 user was enforced")
	}
	code, stdout, _ = w.run(t, append(base, "--yes")...)
	if code != ExitOK || !strings.Contains(stdout, "nothing to enforce") {
		t.Errorf("again: exit %d\n%s", code, stdout)
	}
	if code, _, stderr := w.run(t, append(base, "--mode", "report")...); code != ExitUsage || !strings.Contains(stderr, "always enforces") {
		t.Errorf("--mode: exit %d, %s", code, stderr)
	}
	if code, _, stderr := w.run(t, "apply", "--plan", planFile); code != ExitUsage || !strings.Contains(stderr, "--table") {
		t.Errorf("no --table: exit %d, %s", code, stderr)
	}
	_ = os.Remove(planFile)
}
