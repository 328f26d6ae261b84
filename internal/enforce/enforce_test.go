package enforce_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport/fakeapi"
)

const (
	account = "123456789012"
	id      = "i-0123456789abcdef0"
	other   = "i-0fedcba9876543210"
)

// fixture is an enforcer in front of a fake EC2 holding one instance with the given
// metadata options (HttpTokens optional unless set).
type fixture struct {
	ec2     *fakeapi.EC2
	journal *fakeapi.Journal
	e       *enforce.Enforcer
	current policy.MetadataOptions
}

func newFixture(t *testing.T, hop int32, endpoint string) *fixture {
	t.Helper()
	journal := &fakeapi.Journal{}
	fake := fakeapi.NewEC2(account, journal)
	inst := fakeapi.NewInstance(id, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	inst.MetadataOptions.HttpPutResponseHopLimit = aws.Int32(hop)
	inst.MetadataOptions.HttpEndpoint = ec2types.InstanceMetadataEndpointState(endpoint)
	fake.Put(inst)
	return &fixture{
		ec2: fake, journal: journal,
		e:       &enforce.Enforcer{EC2: fake, MaxWait: 2 * time.Second, FirstDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond},
		current: policy.MetadataOptions{HTTPTokens: policy.TokensOptional, HopLimit: hop, HTTPEndpoint: endpoint, State: "applied"},
	}
}

func (f *fixture) options(t *testing.T) *ec2types.InstanceMetadataOptionsResponse {
	t.Helper()
	inst, ok := f.ec2.Instance(id)
	if !ok {
		t.Fatalf("instance %s is gone", id)
	}
	return inst.MetadataOptions
}

func target(hop int32, endpoint string) policy.MetadataOptions {
	return policy.MetadataOptions{HTTPTokens: policy.TokensRequired, HopLimit: hop, HTTPEndpoint: endpoint}
}

// TestInputSendsOnlyWhatChanges: HttpTokens=required always, the hop limit only when it
// changes, the endpoint never (not even when the target names another one), for Apply
// and DryRun alike; and what Apply leaves on the instance.
func TestInputSendsOnlyWhatChanges(t *testing.T) {
	tests := []struct {
		name        string
		hop         int32
		endpoint    string
		target      policy.MetadataOptions
		wantHopSent *int32
		wantHop     int32 // on the instance after Apply
		wantEP      string
	}{
		{"hop limit lowered", 2, "enabled", target(1, "enabled"), aws.Int32(1), 1, "enabled"},
		{"hop limit unchanged", 1, "enabled", target(1, "enabled"), nil, 1, "enabled"},
		{"container host keeps a higher hop limit", 3, "enabled", target(3, "enabled"), nil, 3, "enabled"},
		{"container host raised to the container hop limit", 1, "enabled", target(2, "enabled"), aws.Int32(2), 2, "enabled"},
		{"disabled endpoint stays disabled", 2, "disabled", target(1, "disabled"), aws.Int32(1), 1, "disabled"},
		{"a target naming another endpoint does not re-enable it", 1, "disabled", target(1, "enabled"), nil, 1, "disabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, dryRun := range []bool{true, false} {
				f := newFixture(t, tc.hop, tc.endpoint)
				var err error
				var got policy.MetadataOptions
				if dryRun {
					err = f.e.DryRun(context.Background(), id, f.current, tc.target)
				} else {
					got, err = f.e.Apply(context.Background(), id, f.current, tc.target)
				}
				if err != nil {
					t.Fatalf("dry run %v: %v", dryRun, err)
				}
				ins := f.ec2.Modify.Inputs()
				if len(ins) != 1 {
					t.Fatalf("dry run %v: %d ModifyInstanceMetadataOptions calls, want 1", dryRun, len(ins))
				}
				in := ins[0]
				if aws.ToString(in.InstanceId) != id || in.HttpTokens != ec2types.HttpTokensStateRequired || aws.ToBool(in.DryRun) != dryRun {
					t.Errorf("dry run %v: input names %s, tokens %q, DryRun %v", dryRun, aws.ToString(in.InstanceId), in.HttpTokens, aws.ToBool(in.DryRun))
				}
				if !sameInt32(in.HttpPutResponseHopLimit, tc.wantHopSent) {
					t.Errorf("dry run %v: hop limit sent %v, want %v", dryRun, ptrString(in.HttpPutResponseHopLimit), ptrString(tc.wantHopSent))
				}
				if in.HttpEndpoint != "" || in.HttpProtocolIpv6 != "" || in.InstanceMetadataTags != "" {
					t.Errorf("dry run %v: input sends endpoint %q, IPv6 %q, tags %q: only tokens and hop limit may be sent",
						dryRun, in.HttpEndpoint, in.HttpProtocolIpv6, in.InstanceMetadataTags)
				}
				mo := f.options(t)
				if dryRun {
					if mo.HttpTokens != ec2types.HttpTokensStateOptional || aws.ToInt32(mo.HttpPutResponseHopLimit) != tc.hop {
						t.Errorf("a dry run changed the instance: tokens %s, hop %d", mo.HttpTokens, aws.ToInt32(mo.HttpPutResponseHopLimit))
					}
					if n := f.ec2.Describe.Count(); n != 0 {
						t.Errorf("a dry run described the instance %d times", n)
					}
					continue
				}
				if mo.HttpTokens != ec2types.HttpTokensStateRequired || aws.ToInt32(mo.HttpPutResponseHopLimit) != tc.wantHop || string(mo.HttpEndpoint) != tc.wantEP {
					t.Errorf("after Apply: tokens %s, hop %d, endpoint %s; want required, %d, %s",
						mo.HttpTokens, aws.ToInt32(mo.HttpPutResponseHopLimit), mo.HttpEndpoint, tc.wantHop, tc.wantEP)
				}
				want := policy.MetadataOptions{HTTPTokens: policy.TokensRequired, HopLimit: tc.wantHop, HTTPEndpoint: tc.wantEP, State: "applied"}
				if got != want {
					t.Errorf("Apply returned %+v, want %+v", got, want)
				}
			}
		})
	}
}

// TestRefusedTargets: a target that does not require tokens, or whose hop limit is
// outside 1 to 64, is refused before any call.
func TestRefusedTargets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target policy.MetadataOptions
	}{
		{"tokens optional", policy.MetadataOptions{HTTPTokens: policy.TokensOptional, HopLimit: 1}},
		{"tokens unset", policy.MetadataOptions{HopLimit: 1}},
		{"hop limit 0", target(0, "enabled")},
		{"hop limit -1", target(-1, "enabled")},
		{"hop limit 65", target(65, "enabled")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 2, "enabled")
			errDry := f.e.DryRun(context.Background(), id, f.current, tc.target)
			_, errApply := f.e.Apply(context.Background(), id, f.current, tc.target)
			for name, err := range map[string]error{"DryRun": errDry, "Apply": errApply} {
				if err == nil || !strings.Contains(err.Error(), "refusing") || !strings.Contains(err.Error(), id) {
					t.Errorf("%s: error %v, want a refusal naming %s", name, err, id)
				}
			}
			if calls := f.journal.Entries(); len(calls) != 0 {
				t.Errorf("calls %v before the refusal", calls)
			}
		})
	}
}

// TestDryRunAnswers: DryRunOperation (EC2) and success (an emulator) mean yes; anything
// else is an error naming the instance, with the API error kept.
func TestDryRunAnswers(t *testing.T) {
	denied := fakeapi.APIError("UnauthorizedOperation", "You are not authorized to perform this operation.")
	for _, tc := range []struct {
		name     string
		set      func(f *fixture)
		wantCode string // "" when allowed
	}{
		{"DryRunOperation is yes", func(*fixture) {}, ""},
		{"success is yes", func(f *fixture) { f.ec2.DryRunSucceeds = true }, ""},
		{"UnauthorizedOperation is an error", func(f *fixture) { f.ec2.Modify.FailNext(denied) }, "UnauthorizedOperation"},
		{"throttling is an error", func(f *fixture) { f.ec2.Modify.FailNext(fakeapi.APIError("RequestLimitExceeded", "slow down")) }, "RequestLimitExceeded"},
		{"an invalid input is an error", func(f *fixture) {
			f.ec2.Modify.ReplyNext(func(ctx context.Context, in *ec2.ModifyInstanceMetadataOptionsInput, answer func(*ec2.ModifyInstanceMetadataOptionsInput) (*ec2.ModifyInstanceMetadataOptionsOutput, error)) (*ec2.ModifyInstanceMetadataOptionsOutput, error) {
				bad := *in
				bad.InstanceId = aws.String(other)
				return answer(&bad)
			})
		}, "InvalidInstanceID.NotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 2, "enabled")
			tc.set(f)
			err := f.e.DryRun(context.Background(), id, f.current, target(1, "enabled"))
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("DryRun: %v, want allowed", err)
				}
			} else {
				var apiErr smithy.APIError
				if err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.wantCode || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), "dry run") {
					t.Fatalf("DryRun: %v, want a dry-run error naming %s with code %s", err, id, tc.wantCode)
				}
			}
			if mo := f.options(t); mo.HttpTokens != ec2types.HttpTokensStateOptional || aws.ToInt32(mo.HttpPutResponseHopLimit) != 2 {
				t.Errorf("the dry run changed the instance: %s, hop %d", mo.HttpTokens, aws.ToInt32(mo.HttpPutResponseHopLimit))
			}
			if got := f.journal.Entries(); len(got) != 1 || got[0] != "ec2:ModifyInstanceMetadataOptions(DryRun)" {
				t.Errorf("calls %v, want one dry run", got)
			}
		})
	}
}

type describeReply = fakeapi.Reply[ec2.DescribeInstancesInput, ec2.DescribeInstancesOutput]

// noOptions makes the change but answers without the options, as a reply may: only a
// describe can then show them applied.
func noOptions(_ context.Context, in *ec2.ModifyInstanceMetadataOptionsInput, answer func(*ec2.ModifyInstanceMetadataOptionsInput) (*ec2.ModifyInstanceMetadataOptionsOutput, error)) (*ec2.ModifyInstanceMetadataOptionsOutput, error) {
	if _, err := answer(in); err != nil {
		return nil, err
	}
	return &ec2.ModifyInstanceMetadataOptionsOutput{InstanceId: in.InstanceId}, nil
}

// replyWith answers one DescribeInstances call with out instead of the fake's state.
func replyWith(out *ec2.DescribeInstancesOutput) describeReply {
	return func(context.Context, *ec2.DescribeInstancesInput, func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error)) (*ec2.DescribeInstancesOutput, error) {
		return out, nil
	}
}

// TestApplyWaitsForTheTarget: Apply returns at once when the reply shows the target
// applied; otherwise it describes the instance until EC2 reports State applied with
// HttpTokens required and the target hop limit. Someone else's change, though
// "applied", is not the target; an error ends the wait; a reply that does not show the
// instance is asked again.
func TestApplyWaitsForTheTarget(t *testing.T) {
	describeErr := fakeapi.APIError("UnauthorizedOperation", "not allowed to describe")
	modifyErr := fakeapi.APIError("IncorrectInstanceState", "the instance is terminated")
	withoutInstance := &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{
		OwnerId: aws.String(account), Instances: []ec2types.Instance{fakeapi.NewInstance(other, time.Now())}}}}
	tests := []struct {
		name      string
		set       func(f *fixture)
		maxWait   time.Duration
		describes int    // DescribeInstances calls made
		wantErr   error  // errors.Is; nil for success
		errSays   string // in the error
		wantHop   int32  // on success
	}{
		{name: "applied in the reply: no wait", set: func(*fixture) {}, describes: 0, wantHop: 1},
		{name: "pending three times, then applied", set: func(f *fixture) { f.ec2.PendingDescribes = 3 }, describes: 4, wantHop: 1},
		{name: "a reply without options: the first describe settles it", set: func(f *fixture) { f.ec2.Modify.ReplyNext(noOptions) }, describes: 1, wantHop: 1},
		{name: "someone else's hop limit applied instead: not reached", set: func(f *fixture) {
			f.ec2.ApplyInstead = func(in ec2.ModifyInstanceMetadataOptionsInput) ec2.ModifyInstanceMetadataOptionsInput {
				in.HttpPutResponseHopLimit = aws.Int32(3)
				return in
			}
		}, maxWait: 30 * time.Millisecond, describes: -1, wantErr: enforce.ErrNotApplied, errSays: "last seen: HttpTokens required, hop limit 3, state applied"},
		{name: "someone set tokens optional instead: not reached", set: func(f *fixture) {
			f.ec2.ApplyInstead = func(in ec2.ModifyInstanceMetadataOptionsInput) ec2.ModifyInstanceMetadataOptionsInput {
				in.HttpTokens = ec2types.HttpTokensStateOptional
				return in
			}
		}, maxWait: 30 * time.Millisecond, describes: -1, wantErr: enforce.ErrNotApplied, errSays: "last seen: HttpTokens optional, hop limit 1, state applied"},
		{name: "a describe error ends the wait", set: func(f *fixture) {
			f.ec2.PendingDescribes = 1
			f.ec2.Describe.FailNext(nil, describeErr)
		}, describes: 2, wantErr: describeErr, errSays: "ec2:DescribeInstances waiting for " + id},
		{name: "empty replies are asked again", set: func(f *fixture) {
			f.ec2.Modify.ReplyNext(noOptions)
			f.ec2.Describe.ReplyNext(replyWith(&ec2.DescribeInstancesOutput{}), replyWith(nil))
		}, describes: 3, wantHop: 1},
		{name: "replies without the instance are asked again", set: func(f *fixture) {
			f.ec2.Modify.ReplyNext(noOptions)
			f.ec2.Describe.ReplyNext(replyWith(withoutInstance), replyWith(withoutInstance))
		}, describes: 3, wantHop: 1},
		{name: "replies that never show the instance end in ErrNotApplied saying so", set: func(f *fixture) {
			f.ec2.Modify.ReplyNext(noOptions)
			for range 1000 {
				f.ec2.Describe.ReplyNext(replyWith(withoutInstance))
			}
		}, maxWait: 30 * time.Millisecond, describes: -1, wantErr: enforce.ErrNotApplied, errSays: "last seen: a DescribeInstances reply without the instance"},
		{name: "the change fails: no wait", set: func(f *fixture) {
			f.ec2.Modify.FailNext(modifyErr)
		}, describes: 0, wantErr: modifyErr, errSays: "ec2:ModifyInstanceMetadataOptions on " + id},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 2, "enabled")
			if tc.maxWait > 0 {
				f.e.MaxWait = tc.maxWait
			}
			tc.set(f)
			got, err := f.e.Apply(context.Background(), id, f.current, target(1, "enabled"))
			if tc.describes >= 0 && f.ec2.Describe.Count() != tc.describes {
				t.Errorf("%d DescribeInstances calls, want %d", f.ec2.Describe.Count(), tc.describes)
			}
			for _, in := range f.ec2.Describe.Inputs() {
				if len(in.InstanceIds) != 1 || in.InstanceIds[0] != id || len(in.Filters) != 0 {
					t.Errorf("describe input %+v, want the instance id alone", in)
				}
			}
			if tc.wantErr == nil {
				want := policy.MetadataOptions{HTTPTokens: policy.TokensRequired, HopLimit: tc.wantHop, HTTPEndpoint: "enabled", State: "applied"}
				if err != nil || got != want {
					t.Fatalf("Apply: %+v, %v; want %+v", got, err, want)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errSays) || !strings.Contains(err.Error(), id) {
				t.Fatalf("Apply: %v; want %v saying %q and naming %s", err, tc.wantErr, tc.errSays, id)
			}
		})
	}
}

// TestApplyBacksOff: the first check comes FirstDelay after the change, each next one
// twice as late, never more than MaxDelay apart. The lower bounds are measured (a timer
// never fires early); the cap shows in the whole wait fitting in a MaxWait that the
// uncapped schedule (1+2+...+1024 ms) would overrun.
func TestApplyBacksOff(t *testing.T) {
	f := newFixture(t, 2, "enabled")
	f.e.FirstDelay, f.e.MaxDelay, f.e.MaxWait = time.Millisecond, 8*time.Millisecond, time.Second
	const pending = 10
	f.ec2.PendingDescribes = pending
	var at []time.Time
	stamp := func(_ context.Context, in *ec2.DescribeInstancesInput, answer func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error)) (*ec2.DescribeInstancesOutput, error) {
		at = append(at, time.Now())
		return answer(in)
	}
	for range pending + 1 {
		f.ec2.Describe.ReplyNext(stamp)
	}
	f.ec2.Modify.ReplyNext(func(_ context.Context, in *ec2.ModifyInstanceMetadataOptionsInput, answer func(*ec2.ModifyInstanceMetadataOptionsInput) (*ec2.ModifyInstanceMetadataOptionsOutput, error)) (*ec2.ModifyInstanceMetadataOptionsOutput, error) {
		at = append(at, time.Now())
		return answer(in)
	})
	if _, err := f.e.Apply(context.Background(), id, f.current, target(1, "enabled")); err != nil {
		t.Fatalf("Apply: %v (the capped schedule fits in MaxWait %s)", err, f.e.MaxWait)
	}
	if len(at) != pending+2 {
		t.Fatalf("%d calls, want the change and %d describes", len(at), pending+1)
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8, 8, 8, 8, 8, 8}
	for i, w := range want {
		if gap := at[i+1].Sub(at[i]); gap < w*time.Millisecond {
			t.Errorf("check %d came %s after the previous call, want at least %s", i+1, gap, w*time.Millisecond)
		}
	}
}

// TestApplyWaitEnds: the wait ends at MaxWait, and at once when the caller's context is
// cancelled or reaches its deadline; the error says which.
func TestApplyWaitEnds(t *testing.T) {
	t.Run("MaxWait", func(t *testing.T) {
		f := newFixture(t, 2, "enabled")
		f.e.MaxWait = 25 * time.Millisecond
		f.ec2.PendingDescribes = 1 << 30
		start := time.Now()
		_, err := f.e.Apply(context.Background(), id, f.current, target(1, "enabled"))
		if elapsed := time.Since(start); elapsed < f.e.MaxWait {
			t.Errorf("gave up after %s, before MaxWait %s", elapsed, f.e.MaxWait)
		}
		if !errors.Is(err, enforce.ErrNotApplied) || !strings.Contains(err.Error(), "after 25ms") ||
			!strings.Contains(err.Error(), "hop limit 1, state pending") || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Apply: %v; want ErrNotApplied after 25ms, last seen pending", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		f := newFixture(t, 2, "enabled")
		f.e.MaxWait = time.Minute
		f.ec2.PendingDescribes = 1 << 30
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f.ec2.Describe.ReplyNext(nil, func(ctx context.Context, in *ec2.DescribeInstancesInput, answer func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error)) (*ec2.DescribeInstancesOutput, error) {
			cancel() // the invocation gives up while the second check is under way
			return answer(in)
		})
		start := time.Now()
		_, err := f.e.Apply(ctx, id, f.current, target(1, "enabled"))
		if elapsed := time.Since(start); elapsed >= f.e.MaxWait {
			t.Errorf("the cancelled wait went on for %s", elapsed)
		}
		if !errors.Is(err, enforce.ErrNotApplied) || !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "after 1m") {
			t.Fatalf("Apply: %v; want ErrNotApplied and context.Canceled, not a MaxWait timeout", err)
		}
		if n := f.ec2.Describe.Count(); n != 2 {
			t.Errorf("%d describes, want none after the cancellation", n)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		f := newFixture(t, 2, "enabled")
		f.e.MaxWait = time.Minute
		f.ec2.PendingDescribes = 1 << 30
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := f.e.Apply(ctx, id, f.current, target(1, "enabled"))
		if !errors.Is(err, enforce.ErrNotApplied) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "state pending") {
			t.Fatalf("Apply: %v; want ErrNotApplied and the caller's deadline, last seen pending", err)
		}
	})
	t.Run("cancelled before the change", func(t *testing.T) {
		f := newFixture(t, 2, "enabled")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := f.e.Apply(ctx, id, f.current, target(1, "enabled"))
		if !errors.Is(err, context.Canceled) || f.ec2.Describe.Count() != 0 {
			t.Fatalf("Apply: %v after %d describes; want the context's error and no wait", err, f.ec2.Describe.Count())
		}
		if mo := f.options(t); mo.HttpTokens != ec2types.HttpTokensStateOptional {
			t.Errorf("a cancelled Apply changed the instance")
		}
	})
}

func sameInt32(a, b *int32) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func ptrString(p *int32) string {
	if p == nil {
		return "nil"
	}
	return strconv.Itoa(int(*p))
}

// TestRestorePutsTheSnapshotBack: a rollback sends the snapshot's tokens, and its hop
// limit only when it differs, never the endpoint; it waits for EC2 to report them
// applied; a snapshot that is not one (no tokens, a hop limit out of range) is refused
// before any call.
func TestRestorePutsTheSnapshotBack(t *testing.T) {
	f := newFixture(t, 2, "disabled")
	enforced, err := f.e.Apply(context.Background(), id, f.current, target(1, "disabled"))
	if err != nil {
		t.Fatal(err)
	}
	snapshot := policy.RollbackTarget(f.current, enforced)
	got, err := f.e.Restore(context.Background(), id, enforced, snapshot)
	if err != nil {
		t.Fatal(err)
	}
	if got.HTTPTokens != policy.TokensOptional || got.HopLimit != 2 || got.State != "applied" {
		t.Errorf("restored options %+v, want tokens optional, hop limit 2, applied", got)
	}
	ins := f.ec2.Modify.Inputs()
	if len(ins) != 2 {
		t.Fatalf("%d ModifyInstanceMetadataOptions calls, want the enforcement's and the rollback's", len(ins))
	}
	in := ins[1]
	if in.HttpTokens != ec2types.HttpTokensStateOptional || aws.ToInt32(in.HttpPutResponseHopLimit) != 2 || in.HttpEndpoint != "" || aws.ToBool(in.DryRun) {
		t.Errorf("rollback input: tokens %q, hop %v, endpoint %q, dry run %v", in.HttpTokens, ptrString(in.HttpPutResponseHopLimit), in.HttpEndpoint, aws.ToBool(in.DryRun))
	}
	if mo := f.options(t); mo.HttpEndpoint != ec2types.InstanceMetadataEndpointStateDisabled {
		t.Errorf("the rollback touched the endpoint: %s", mo.HttpEndpoint)
	}
	for _, bad := range []policy.MetadataOptions{{HopLimit: 2}, {HTTPTokens: "sometimes", HopLimit: 2}, {HTTPTokens: policy.TokensOptional}} {
		if _, err := f.e.Restore(context.Background(), id, got, bad); err == nil {
			t.Errorf("Restore(%+v) was sent", bad)
		}
	}
	if n := len(f.ec2.Modify.Inputs()); n != 2 {
		t.Errorf("%d ModifyInstanceMetadataOptions calls after the refused ones, want still 2", n)
	}
}
