// Package enforce changes an instance's metadata options: the one write imdsguard makes
// to EC2. It sets only what a remediation needs (tokens required and the hop limit) and
// leaves everything else, the endpoint above all, exactly as it is.
package enforce

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// EC2API is the part of the EC2 client enforcement uses.
type EC2API interface {
	ModifyInstanceMetadataOptions(ctx context.Context, in *ec2.ModifyInstanceMetadataOptionsInput, optFns ...func(*ec2.Options)) (*ec2.ModifyInstanceMetadataOptionsOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// Enforcer applies target options and waits until EC2 reports them applied.
type Enforcer struct {
	EC2 EC2API
	// MaxWait bounds the wait for MetadataOptions.State "applied"; the first check is
	// after FirstDelay, each next one twice as late, at most MaxDelay apart.
	MaxWait    time.Duration
	FirstDelay time.Duration
	MaxDelay   time.Duration
}

// ErrNotApplied means EC2 accepted the change but did not report it applied in time.
var ErrNotApplied = errors.New("metadata options not applied in time")

// DryRun asks EC2 whether the change from current to target would be allowed
// (DryRun=true), without making it. EC2 answers a permitted dry run with the
// DryRunOperation error; an emulator may answer with success instead. Both mean yes.
func (e *Enforcer) DryRun(ctx context.Context, instanceID string, current, target policy.MetadataOptions) error {
	if err := checkTarget(instanceID, target); err != nil {
		return err
	}
	_, err := e.EC2.ModifyInstanceMetadataOptions(ctx, modifyInput(instanceID, current, target, true))
	var apiErr smithy.APIError
	if err == nil || (errors.As(err, &apiErr) && apiErr.ErrorCode() == "DryRunOperation") {
		return nil
	}
	return fmt.Errorf("ec2:ModifyInstanceMetadataOptions (dry run) on %s: %w", instanceID, err)
}

// Apply changes the instance from its current options to the target (HttpTokens=required
// and the target hop limit), waits until EC2 reports the target applied, and returns the
// options as EC2 reports them.
func (e *Enforcer) Apply(ctx context.Context, instanceID string, current, target policy.MetadataOptions) (policy.MetadataOptions, error) {
	if err := checkTarget(instanceID, target); err != nil {
		return policy.MetadataOptions{}, err
	}
	return e.change(ctx, modifyInput(instanceID, current, target, false), target, "")
}

// change makes the call and waits until EC2 reports the target applied; what names the
// kind of change in an error ("" for an enforcement).
func (e *Enforcer) change(ctx context.Context, in *ec2.ModifyInstanceMetadataOptionsInput, target policy.MetadataOptions, what string) (policy.MetadataOptions, error) {
	instanceID := aws.ToString(in.InstanceId)
	out, err := e.EC2.ModifyInstanceMetadataOptions(ctx, in)
	if err != nil {
		return policy.MetadataOptions{}, fmt.Errorf("ec2:ModifyInstanceMetadataOptions%s on %s: %w", what, instanceID, err)
	}
	if out != nil {
		if got := evidence.MetadataOptions(out.InstanceMetadataOptions); reached(got, target) {
			return got, nil
		}
	}
	return e.waitApplied(ctx, instanceID, target)
}

// Restore puts an instance back to the options a rollback restores
// (policy.RollbackTarget: the snapshot's HttpTokens and hop limit), waits until EC2
// reports them applied, and returns the options as EC2 reports them. Like Apply it never
// sends the endpoint, and it sends the hop limit only when it changes.
func (e *Enforcer) Restore(ctx context.Context, instanceID string, current, target policy.MetadataOptions) (policy.MetadataOptions, error) {
	if (target.HTTPTokens != policy.TokensOptional && target.HTTPTokens != policy.TokensRequired) || target.HopLimit < 1 || target.HopLimit > 64 {
		return policy.MetadataOptions{}, fmt.Errorf("refusing to restore %+v on %s: a snapshot has HttpTokens optional or required and a hop limit from 1 to 64", target, instanceID)
	}
	in := modifyInput(instanceID, current, target, false)
	in.HttpTokens = ec2types.HttpTokensState(target.HTTPTokens)
	return e.change(ctx, in, target, " (rollback)")
}

func checkTarget(instanceID string, target policy.MetadataOptions) error {
	if target.HTTPTokens != policy.TokensRequired || target.HopLimit < 1 || target.HopLimit > 64 {
		return fmt.Errorf("refusing to apply %+v to %s: a target needs HttpTokens required and a hop limit from 1 to 64", target, instanceID)
	}
	return nil
}

// reached reports whether EC2 reports the target applied: the state "applied" alone is
// not enough, since someone else's change may have been applied instead.
func reached(got, target policy.MetadataOptions) bool {
	return got.State == string(ec2types.InstanceMetadataOptionsStateApplied) &&
		got.HTTPTokens == target.HTTPTokens && got.HopLimit == target.HopLimit
}

func (e *Enforcer) waitApplied(ctx context.Context, instanceID string, target policy.MetadataOptions) (policy.MetadataOptions, error) {
	waitCtx, cancel := context.WithTimeout(ctx, e.MaxWait)
	defer cancel()
	// A zero first delay would double to zero for ever: a describe loop at full speed.
	delay := max(e.FirstDelay, time.Millisecond)
	last := "no reply yet"
	for {
		timer := time.NewTimer(delay)
		select {
		case <-waitCtx.Done():
			timer.Stop()
			if err := ctx.Err(); err != nil {
				// The caller gave up (a cancellation, the invocation's deadline), not the wait.
				return policy.MetadataOptions{}, fmt.Errorf("%s: the wait ended early (last seen: %s): %w: %w", instanceID, last, ErrNotApplied, context.Cause(ctx))
			}
			return policy.MetadataOptions{}, fmt.Errorf("%s after %s (last seen: %s): %w", instanceID, e.MaxWait, last, ErrNotApplied)
		case <-timer.C:
		}
		out, err := e.EC2.DescribeInstances(waitCtx, &ec2.DescribeInstancesInput{InstanceIds: []string{instanceID}})
		switch {
		case err != nil && waitCtx.Err() == nil:
			return policy.MetadataOptions{}, fmt.Errorf("ec2:DescribeInstances waiting for %s: %w", instanceID, err)
		case err == nil:
			// A reply without the instance says nothing about its options: ask again.
			seen := false
			if out != nil {
				for _, r := range out.Reservations {
					for _, inst := range r.Instances {
						if aws.ToString(inst.InstanceId) != instanceID {
							continue
						}
						got := evidence.MetadataOptions(inst.MetadataOptions)
						if reached(got, target) {
							return got, nil
						}
						seen = true
						last = fmt.Sprintf("HttpTokens %s, hop limit %d, state %s", got.HTTPTokens, got.HopLimit, got.State)
					}
				}
			}
			if !seen {
				last = "a DescribeInstances reply without the instance"
			}
		}
		delay = min(2*delay, e.MaxDelay)
	}
}

// modifyInput sends only what changes: HttpTokens=required always (that is the point),
// the hop limit only when the target's differs from the current one, and never the
// endpoint, so that a disabled endpoint is never re-enabled and the IAM condition on the
// hop limit (which allows at most the configured ones) never stands in the way of
// keeping a container host's higher hop limit.
func modifyInput(instanceID string, current, target policy.MetadataOptions, dryRun bool) *ec2.ModifyInstanceMetadataOptionsInput {
	in := &ec2.ModifyInstanceMetadataOptionsInput{
		InstanceId: aws.String(instanceID),
		HttpTokens: ec2types.HttpTokensStateRequired,
		DryRun:     aws.Bool(dryRun),
	}
	if target.HopLimit != current.HopLimit {
		in.HttpPutResponseHopLimit = aws.Int32(target.HopLimit)
	}
	return in
}
