package fakeapi_test

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"golang.org/x/time/rate"

	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/remediate"
	"github.com/imdsguard/imdsguard/internal/testsupport/fakeapi"
	"github.com/imdsguard/imdsguard/internal/ticket"
)

// The fakes implement the interfaces the code owns.
var (
	_ evidence.EC2API        = (*fakeapi.EC2)(nil)
	_ enforce.EC2API         = (*fakeapi.EC2)(nil)
	_ evidence.CloudWatchAPI = (*fakeapi.CloudWatch)(nil)
	_ evidence.CloudTrailAPI = (*fakeapi.CloudTrail)(nil)
	_ remediate.Ledger       = (*fakeapi.Ledger)(nil)
	_ ticket.Backend         = (*fakeapi.Tickets)(nil)
)

const (
	account = "123456789012"
	region  = "us-east-1"
	idA     = "i-0aaaaaaaaaaaaaaa1"
	idB     = "i-0bbbbbbbbbbbbbbb2"
	idC     = "i-0ccccccccccccccc3"
)

var now = time.Date(2025, 6, 2, 12, 34, 56, 0, time.UTC)

const pkg = "github.com/imdsguard/imdsguard/internal/testsupport/fakeapi"

// TestOnlyTestsImportIt: the package links no "testing", and no package of the module
// imports it outside its tests, so no binary carries it.
func TestOnlyTestsImportIt(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "github.com/imdsguard/imdsguard/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		deps := fields[1:]
		if fields[0] == pkg {
			if slices.Contains(deps, "testing") {
				t.Errorf("%s depends on the testing package", pkg)
			}
			checked++
			continue
		}
		if slices.Contains(deps, pkg) {
			t.Errorf("%s imports %s outside its tests", fields[0], pkg)
		}
	}
	if checked != 1 {
		t.Fatalf("go list did not list %s", pkg)
	}
}

func newEC2(j *fakeapi.Journal) *fakeapi.EC2 {
	e := fakeapi.NewEC2(account, j)
	for _, id := range []string{idA, idB} {
		e.Put(fakeapi.NewInstance(id, now.AddDate(0, -1, 0)))
	}
	return e
}

// TestEC2Describe: the instance-id filter drops ids EC2 does not know (as
// evidence.Inventory relies on), InstanceIds fails on them, and the reply always has a
// reservation set.
func TestEC2Describe(t *testing.T) {
	ctx := context.Background()
	e := newEC2(nil)
	found, notFound, err := evidence.Inventory(ctx, e, region, []string{idB, idC, idA})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found[0].InstanceID != idA || found[1].InstanceID != idB || found[0].AccountID != account ||
		found[0].Options.HTTPTokens != "optional" || found[0].State != "running" || !slices.Equal(notFound, []string{idC}) {
		t.Errorf("inventory %+v, not found %v", found, notFound)
	}
	in := e.Describe.Inputs()
	if len(in) != 1 || len(in[0].Filters) != 1 || aws.ToString(in[0].Filters[0].Name) != "instance-id" {
		t.Errorf("inventory asked %+v", in)
	}
	_, err = e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{idA, idC}})
	if code := apiCode(err); code != "InvalidInstanceID.NotFound" {
		t.Errorf("InstanceIds with an unknown id: %v", err)
	}
	out, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: []string{idC}}}})
	if err != nil || out.Reservations == nil || len(out.Reservations) != 0 {
		t.Errorf("no match: %+v, %v; want an empty reservation set", out, err)
	}
	if _, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("metadata-options.http-tokens"), Values: []string{"optional"}}}}); err == nil {
		t.Errorf("an unsupported filter was accepted")
	}
	if _, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{idA}, MaxResults: aws.Int32(5)}); apiCode(err) != "InvalidParameterCombination" {
		t.Errorf("InstanceIds with MaxResults: %v", err)
	}
	e.Remove(idB)
	if found, notFound, err := evidence.Inventory(ctx, e, region, []string{idB}); err != nil || len(found) != 0 || !slices.Equal(notFound, []string{idB}) {
		t.Errorf("removed instance: %+v, %v, %v", found, notFound, err)
	}
}

// TestEC2Modify: a change keeps the fields it does not set, a dry run changes nothing,
// PendingDescribes and ApplyInstead work as documented.
func TestEC2Modify(t *testing.T) {
	ctx := context.Background()
	j := &fakeapi.Journal{}
	e := newEC2(j)
	e.Update(idA, func(i *ec2types.Instance) {
		i.MetadataOptions.HttpEndpoint = ec2types.InstanceMetadataEndpointStateDisabled
		i.MetadataOptions.HttpPutResponseHopLimit = aws.Int32(3)
	})
	_, err := e.ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String(idA), HttpTokens: ec2types.HttpTokensStateRequired, DryRun: aws.Bool(true)})
	if apiCode(err) != "DryRunOperation" {
		t.Errorf("dry run: %v, want DryRunOperation", err)
	}
	if mo := options(t, e, idA); mo.HttpTokens != "optional" {
		t.Errorf("the dry run changed the instance")
	}
	e.PendingDescribes = 2
	out, err := e.ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String(idA), HttpTokens: ec2types.HttpTokensStateRequired})
	if err != nil || out.InstanceMetadataOptions.State != "pending" || out.InstanceMetadataOptions.HttpTokens != "required" {
		t.Fatalf("modify: %+v, %v", out, err)
	}
	if mo := options(t, e, idA); mo.HttpTokens != "required" || aws.ToInt32(mo.HttpPutResponseHopLimit) != 3 || mo.HttpEndpoint != "disabled" {
		t.Errorf("after setting only the tokens: %+v; the hop limit and endpoint must stay", mo)
	}
	var states []string
	for range 3 {
		out, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{idA}})
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, string(out.Reservations[0].Instances[0].MetadataOptions.State))
	}
	if !slices.Equal(states, []string{"pending", "pending", "applied"}) {
		t.Errorf("states %v", states)
	}
	e.PendingDescribes = 0
	e.ApplyInstead = func(in ec2.ModifyInstanceMetadataOptionsInput) ec2.ModifyInstanceMetadataOptionsInput {
		in.HttpPutResponseHopLimit = aws.Int32(5)
		return in
	}
	if _, err := e.ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String(idB), HttpTokens: ec2types.HttpTokensStateRequired, HttpPutResponseHopLimit: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	if mo := options(t, e, idB); aws.ToInt32(mo.HttpPutResponseHopLimit) != 5 {
		t.Errorf("ApplyInstead not applied: %+v", mo)
	}
	if _, err := e.ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String(idA), HttpPutResponseHopLimit: aws.Int32(65)}); apiCode(err) != "InvalidParameterValue" {
		t.Errorf("hop limit 65: %v", err)
	}
	if _, err := e.ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String(idC)}); apiCode(err) != "InvalidInstanceID.NotFound" {
		t.Errorf("unknown instance: %v", err)
	}
	boom := errors.New("boom")
	e.Modify.FailNext(nil, boom)
	if _, err := e.ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String(idA)}); err != nil {
		t.Errorf("first call after FailNext(nil, boom): %v", err)
	}
	if _, err := e.ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String(idA)}); !errors.Is(err, boom) {
		t.Errorf("second call: %v, want boom", err)
	}
	if n := e.Modify.Count(); n != 7 {
		t.Errorf("%d modify calls recorded, want 7", n)
	}
	if got := j.Entries(); got[0] != "ec2:ModifyInstanceMetadataOptions(DryRun)" || got[2] != "ec2:DescribeInstances" {
		t.Errorf("journal %v", got)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.DescribeInstances(cancelled, &ec2.DescribeInstancesInput{}); !errors.Is(err, context.Canceled) {
		t.Errorf("a call with a cancelled context: %v", err)
	}
}

func options(t *testing.T, e *fakeapi.EC2, id string) *ec2types.InstanceMetadataOptionsResponse {
	t.Helper()
	inst, ok := e.Instance(id)
	if !ok {
		t.Fatalf("no instance %s", id)
	}
	return inst.MetadataOptions
}

func apiCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// TestCloudWatch: the gatherers read the datapoints as they are: hours without one are
// not observed, sums add up per period, and a partial status is an error.
func TestCloudWatch(t *testing.T) {
	ctx := context.Background()
	cw := fakeapi.NewCloudWatch(nil)
	hour := now.Truncate(time.Hour)
	cw.Put(idA, fakeapi.Hourly(hour, 10, 0)...)
	cw.Put(idA, fakeapi.Point{Time: hour.Add(-3 * time.Hour).Add(20 * time.Minute), Value: 2})
	cw.Put(idB, fakeapi.Point{Time: hour.Add(-400 * time.Hour), Value: 9}) // outside the window
	usage, errs := evidence.MetricUsage(ctx, cw, []string{idA, idB}, 24*time.Hour, now)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	a := usage[idA]
	if a.Sum != 2 || a.ObservedHours != 10 || !a.LastDatapoint.Equal(hour) || !a.LastNonZero.Equal(hour.Add(-3*time.Hour)) {
		t.Errorf("usage of %s: %+v", idA, a)
	}
	if b := usage[idB]; b.ObservedHours != 0 || b.LastDatapoint != nil {
		t.Errorf("usage of %s: %+v, want nothing observed", idB, b)
	}
	recent, err := evidence.UsageSince(ctx, cw, idA, hour.Add(-3*time.Hour), now)
	if err != nil || recent.Sum != 2 || recent.ObservedHours != 5 {
		t.Errorf("recent usage %+v, %v; want 2 calls in 5 five-minute buckets with data", recent, err)
	}
	cw.Status = "PartialData"
	if _, err := evidence.UsageSince(ctx, cw, idA, hour, now); err == nil || !strings.Contains(err.Error(), "partial") {
		t.Errorf("partial data: %v", err)
	}
	cw.Status = ""
	cw.Get.FailNext(fakeapi.APIError("Throttling", "Rate exceeded"))
	if _, err := evidence.UsageSince(ctx, cw, idA, hour, now); apiCode(err) != "Throttling" {
		t.Errorf("failed call: %v", err)
	}
}

// TestCloudTrail: deliveries are found by user name within the window, paged, and an
// empty history is an empty (not a missing) Events.
func TestCloudTrail(t *testing.T) {
	ctx := context.Background()
	ct := fakeapi.NewCloudTrail(nil)
	lim := rate.NewLimiter(rate.Inf, 1)
	inst := policy.Instance{InstanceID: idA, Addresses: []string{"10.0.0.10"}}
	for i := range 60 {
		ct.Add(fakeapi.RoleDelivery(idA, "2.0", "aws-sdk-go-v2/1.30", "10.0.0.10", now.Add(-time.Duration(i+1)*time.Minute)))
	}
	ct.Add(fakeapi.RoleDelivery(idB, "1.0", "Boto3/1.9", "10.0.0.11", now.Add(-time.Hour)))
	u, err := evidence.CredentialDeliveries(ctx, ct, lim, inst, 24*time.Hour, now)
	if err != nil || u.V2Deliveries != 60 || u.V1Deliveries != 0 || ct.Lookup.Count() != 2 {
		t.Errorf("deliveries %+v, %v in %d pages; want 60 IMDSv2 in 2 pages", u, err, ct.Lookup.Count())
	}
	ct.Add(fakeapi.RoleDelivery(idA, "1.0", "Boto3/1.9", "203.0.113.9", now.Add(-30*time.Second)))
	u, err = evidence.CredentialDeliveries(ctx, ct, lim, inst, 24*time.Hour, now)
	if err != nil || u.V1Deliveries != 1 || !slices.Equal(u.ForeignSourceIPs, []string{"203.0.113.9"}) {
		t.Errorf("deliveries %+v, %v; want the IMDSv1 one from a foreign address", u, err)
	}
	u, err = evidence.CredentialDeliveries(ctx, ct, lim, policy.Instance{InstanceID: idC}, 24*time.Hour, now)
	if err != nil || u.V1Deliveries != 0 || u.V2Deliveries != 0 {
		t.Errorf("no events: %+v, %v", u, err)
	}
}

// TestLedgerClaim: the claim's answers are those of ledger.Ledger.
func TestLedgerClaim(t *testing.T) {
	ctx := context.Background()
	j := &fakeapi.Journal{}
	l := fakeapi.NewLedger(j)
	ref := ledger.Ref{AccountID: account, Region: region, InstanceID: idA}
	const id, digest = "0197a8c0e000-0123456789abcdef", "d1"
	ttl := 15 * time.Minute
	if err := l.Claim(ctx, id, ref, digest, now, ttl); !errors.Is(err, ledger.ErrNotRecorded) {
		t.Errorf("unrecorded: %v", err)
	}
	if err := l.RecordDecision(decisionlog.Decision{AccountID: account, Region: region, InstanceID: idA, DecisionID: id,
		Action: policy.ActionRemediate, CreatedAt: now, Digest: digest}); err != nil {
		t.Fatal(err)
	}
	if err := l.Claim(ctx, id, ref, "other", now, ttl); !errors.Is(err, ledger.ErrAltered) {
		t.Errorf("other digest: %v", err)
	}
	if err := l.Claim(ctx, id, ledger.Ref{AccountID: account, Region: region, InstanceID: idB}, digest, now, ttl); !errors.Is(err, ledger.ErrAltered) {
		t.Errorf("other instance: %v", err)
	}
	if err := l.Claim(ctx, id, ref, digest, now, ttl); err != nil {
		t.Fatalf("claim: %v", err)
	}
	if err := l.Claim(ctx, id, ref, digest, now.Add(ttl-time.Second), ttl); !errors.Is(err, ledger.ErrInProgress) {
		t.Errorf("claimed: %v", err)
	}
	if err := l.Release(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := l.Claim(ctx, id, ref, digest, now, ttl); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	if err := l.Claim(ctx, id, ref, digest, now.Add(ttl), ttl); err != nil {
		t.Fatalf("claim after expiry: %v", err)
	}
	o := ledger.Outcome{Ref: ref, DecisionID: id, At: now, Action: policy.ActionRemediate, Result: ledger.ResultFailed}
	if err := l.Record(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := l.Claim(ctx, id, ref, digest, now, ttl); err != nil {
		t.Fatalf("claim after a failed outcome: %v", err)
	}
	o.Result = ledger.ResultEnforced
	if err := l.Record(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(ctx, o); !errors.Is(err, ledger.ErrDone) {
		t.Errorf("second record: %v", err)
	}
	if err := l.Claim(ctx, id, ref, digest, now, ttl); !errors.Is(err, ledger.ErrDone) {
		t.Errorf("claim when done: %v", err)
	}
	if err := l.Release(ctx, id); err != nil {
		t.Fatal(err)
	}
	if d, _ := l.Decision(id); d.Status != fakeapi.DecisionDone || d.Attempts != 4 || d.Result != ledger.ResultEnforced {
		t.Errorf("decision %+v, want done after 4 claims; a release leaves it done", d)
	}
	if err := l.Record(ctx, ledger.Outcome{Ref: ref, DecisionID: id, At: now, Action: policy.ActionRemediate, Result: "fine"}); err == nil {
		t.Errorf("an unknown result was recorded")
	}
	if got := l.Outcomes(); len(got) != 2 {
		t.Errorf("outcomes %+v, want the failed and the enforced one", got)
	}
	if got := j.Entries(); len(got) != 15 || got[0] != "ledger:Claim" || got[8] != "ledger:Record" {
		t.Errorf("journal %v", got)
	}
	l.FailNext("Release", errors.New("boom"))
	if err := l.Release(ctx, id); err == nil || l.Calls()[len(l.Calls())-1].Err == nil {
		t.Errorf("FailNext: %v", err)
	}
}

// TestLedgerSnapshotAndTickets: the first snapshot stays; a ticket is checked as the
// ledger checks it.
func TestLedgerSnapshotAndTickets(t *testing.T) {
	ctx := context.Background()
	l := fakeapi.NewLedger(nil)
	ref := ledger.Ref{AccountID: account, Region: region, InstanceID: idA}
	first := policy.MetadataOptions{HTTPTokens: "optional", HopLimit: 2, HTTPEndpoint: "enabled"}
	if s, err := l.Snapshot(ctx, ref, first, "d1", now); err != nil || s.Options != first {
		t.Fatalf("snapshot: %+v, %v", s, err)
	}
	if s, err := l.Snapshot(ctx, ref, policy.MetadataOptions{HTTPTokens: "required", HopLimit: 1}, "d2", now.Add(time.Hour)); err != nil || s.Options != first || s.DecisionID != "d1" {
		t.Errorf("second snapshot: %+v, %v; want the first kept", s, err)
	}
	if tk, err := l.GetTicket(ctx, ref); tk != nil || err != nil {
		t.Errorf("no ticket yet: %+v, %v", tk, err)
	}
	if err := l.PutTicket(ctx, ledger.Ticket{Ref: ref, Backend: "fake", TicketRef: "FAKE-1", Status: "pending", OpenedAt: now, UpdatedAt: now}); err == nil {
		t.Errorf("a ticket with an unknown status was stored")
	}
	tk := ledger.Ticket{Ref: ref, Backend: "fake", TicketRef: "FAKE-1", Status: ledger.TicketOpen, Digest: "x", OpenedAt: now, UpdatedAt: now}
	if err := l.PutTicket(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if got, err := l.GetTicket(ctx, ref); err != nil || got == nil || *got != tk {
		t.Errorf("ticket %+v, %v", got, err)
	}
}

// TestTickets: Open is idempotent per instance while the ticket is open; Update needs an
// open ticket.
func TestTickets(t *testing.T) {
	ctx := context.Background()
	b := fakeapi.NewTickets(nil)
	tk := ticket.Ticket{}
	tk.Verdict.AccountID, tk.Verdict.Region, tk.Verdict.InstanceID = account, region, idA
	ref, err := b.Open(ctx, tk)
	if err != nil || ref != "FAKE-1" {
		t.Fatalf("open: %s, %v", ref, err)
	}
	if again, err := b.Open(ctx, tk); again != ref || err != nil {
		t.Errorf("second open: %s, %v; want the open ticket", again, err)
	}
	if err := b.Update(ctx, ref, tk); err != nil {
		t.Fatal(err)
	}
	if err := b.Resolve(ctx, ref, ticket.Closing{InstanceID: idA, Why: "compliant"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(ctx, ref, tk); err == nil {
		t.Errorf("a resolved ticket was updated")
	}
	if next, err := b.Open(ctx, tk); next != "FAKE-2" || err != nil {
		t.Errorf("open after resolve: %s, %v", next, err)
	}
	b.FailNext("Open", errors.New("boom"))
	if _, err := b.Open(ctx, tk); err == nil {
		t.Errorf("FailNext did not fail Open")
	}
	f := b.Filed()
	if len(f) != 2 || f[0].Open || len(f[0].Versions) != 2 || f[0].Closing == nil || !f[1].Open {
		t.Errorf("filed %+v", f)
	}
	if ops := len(b.Calls()); ops != 7 {
		t.Errorf("%d calls recorded, want 7", ops)
	}
}
