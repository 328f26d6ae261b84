package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport"
	"github.com/imdsguard/imdsguard/internal/testsupport/schematest"
)

// TestRollback rolls enforced instances back from the ledger's snapshots: it previews and
// asks first (anything but yes changes nothing), restores HttpTokens and the hop limit,
// records the rollback (rule 5b then holds the instance back), finds an instance by the
// decision that enforced it, and has nothing to do for one already back.
func TestRollback(t *testing.T) {
	moto := testsupport.Moto(t)
	ctx := context.Background()
	fx := newStack(t, moto.URL)
	cfg, db, res := fx.cfg, fx.db, fx.res
	ec2Client := ec2.NewFromConfig(cfg)
	l := &ledger.Ledger{API: db, Table: res.Table}
	now := time.Now().UTC()
	const account = "123456789012"
	enforced := map[string]string{} // instance -> decision
	for i := range 2 {
		seeded, err := fakeaws.SeedInstances(ctx, ec2Client, fakeaws.InstanceSpec{HttpTokens: "optional", HopLimit: 2})
		if err != nil {
			t.Fatal(err)
		}
		id := seeded[0].ID
		ref := ledger.Ref{AccountID: account, Region: demo.Region, InstanceID: id}
		decision := "0019aa000000" + string(rune('1'+i)) + "-0000000000000001"
		prior := policy.MetadataOptions{HTTPTokens: "optional", HopLimit: 2, HTTPEndpoint: "enabled", State: "applied"}
		if err := (&decisionlog.Log{API: db, Table: res.Table}).RecordDecisions(ctx, []decisionlog.Decision{{
			AccountID: account, Region: demo.Region, InstanceID: id, DecisionID: decision, Action: policy.ActionRemediate,
			CreatedAt: now, Digest: strings.Repeat("a", 64)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Snapshot(ctx, ref, prior, decision, now); err != nil {
			t.Fatal(err)
		}
		enf := &enforce.Enforcer{EC2: ec2Client, MaxWait: 10 * time.Second, FirstDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}
		applied, err := enf.Apply(ctx, id, prior, policy.MetadataOptions{HTTPTokens: "required", HopLimit: 1, HTTPEndpoint: "enabled"})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Record(ctx, ledger.Outcome{Ref: ref, DecisionID: decision, At: now, Action: policy.ActionRemediate,
			Result: ledger.ResultEnforced, Mode: "enforce", Prior: &prior, Applied: &applied}); err != nil {
			t.Fatal(err)
		}
		enforced[id] = decision
	}
	var first, second string
	for id, d := range enforced {
		if strings.HasSuffix(d[:13], "1") {
			first = id
		} else {
			second = id
		}
	}
	options := func(id string) (string, int32) {
		out, err := ec2Client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		mo := out.Reservations[0].Instances[0].MetadataOptions
		return string(mo.HttpTokens), aws.ToInt32(mo.HttpPutResponseHopLimit)
	}

	// The operator rolls back an hour after the enforcements.
	w := &world{now: now.Add(time.Hour)}
	for k, v := range demo.AWSEnv(moto.URL, moto.URL, t.TempDir()) {
		t.Setenv(k, v)
	}
	base := []string{"rollback", "--table", res.Table, "--account", account}

	w.stdin = "no\n"
	code, stdout, stderr := w.run(t, append(base, "--instance-id", first)...)
	if code != ExitFailure || !strings.Contains(stderr, "not confirmed") || !strings.Contains(stdout, "required, hop 1") ||
		!strings.Contains(stdout, "optional, hop 2") {
		t.Errorf("answered no: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if tokens, _ := options(first); tokens != "required" {
		t.Fatalf("answered no, and the instance changed: %s", tokens)
	}

	w.stdin = "yes\n"
	code, stdout, stderr = w.run(t, append(base, "--instance-id", first, "--why", "the payroll job broke")...)
	if code != ExitOK || !strings.Contains(stdout, "rolled back to HttpTokens optional, hop limit 2") {
		t.Fatalf("answered yes: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if tokens, hop := options(first); tokens != "optional" || hop != 2 {
		t.Errorf("after the rollback: %s, hop %d; want optional, 2", tokens, hop)
	}
	ref := ledger.Ref{AccountID: account, Region: demo.Region, InstanceID: first}
	if rb, err := l.GetRollback(ctx, ref); err != nil || rb == nil || rb.Why != "the payroll job broke" {
		t.Errorf("the rollback is not in the ledger: %+v, %v", rb, err)
	}

	w.stdin = ""
	code, stdout, stderr = w.run(t, append(base, "--decision-id", enforced[second], "--yes", "--format", "json")...)
	if code != ExitOK || !strings.Contains(stdout, second) || !strings.Contains(stdout, `"result": "rolled-back"`) {
		t.Errorf("by decision: exit %d\n%s\n%s", code, stdout, stderr)
	}
	schematest.ValidateAgainstSchema(t, "rollback.schema.json", []byte(stdout))
	if tokens, _ := options(second); tokens != "optional" {
		t.Errorf("by decision: %s not rolled back", second)
	}

	code, stdout, _ = w.run(t, append(base, "--instance-id", first, "--yes")...)
	if code != ExitOK || !strings.Contains(stdout, "already as before imdsguard") || !strings.Contains(stdout, "nothing to roll back") {
		t.Errorf("again: exit %d\n%s", code, stdout)
	}
	code, _, stderr = w.run(t, append(base, "--since", "1h", "--yes")...)
	if code != ExitFailure || !strings.Contains(stderr, "no enforcement being verified") {
		t.Errorf("by time with nothing being verified: exit %d, %s", code, stderr)
	}
	if code, _, stderr := w.run(t, append(base, "--instance-id", first, "--decision-id", enforced[second])...); code != ExitUsage || !strings.Contains(stderr, "one way") {
		t.Errorf("two ways at once: exit %d, %s", code, stderr)
	}
	if code, _, stderr := w.run(t, append(base, "--since", "yesterday")...); code != ExitUsage || !strings.Contains(stderr, "--since") {
		t.Errorf("a bad --since: exit %d, %s", code, stderr)
	}
}
