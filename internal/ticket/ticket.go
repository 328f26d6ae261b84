// Package ticket tells an instance's owners that IMDSv1 is still in use, with the
// evidence, so they can fix their software before enforcement. Backends sit behind one
// interface.
package ticket

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/imdsguard/imdsguard/internal/message"
)

// Opener opens (or updates) the ticket for a verdict and returns a reference to it.
type Opener interface {
	Open(ctx context.Context, v message.Verdict, dryRun bool) (ref string, err error)
}

// SNSAPI is the part of the SNS client the SNS backend uses.
type SNSAPI interface {
	Publish(ctx context.Context, in *sns.PublishInput, optFns ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// SNS publishes each ticket as a readable message to a topic.
type SNS struct {
	API      SNSAPI
	TopicARN string
	// ExemptTag is the tag key the ticket tells owners to exempt an instance with.
	ExemptTag string
}

// Open publishes the ticket.
func (s *SNS) Open(ctx context.Context, v message.Verdict, dryRun bool) (string, error) {
	out, err := s.API.Publish(ctx, &sns.PublishInput{
		TopicArn: aws.String(s.TopicARN),
		Subject:  aws.String(subject(Title(v), dryRun)),
		Message:  aws.String(Body(v, dryRun, s.ExemptTag)),
		MessageAttributes: map[string]snstypes.MessageAttributeValue{
			"instance_id": {DataType: aws.String("String"), StringValue: aws.String(v.InstanceID)},
			"action":      {DataType: aws.String("String"), StringValue: aws.String(string(v.Action))},
			"dry_run":     {DataType: aws.String("String"), StringValue: aws.String(fmt.Sprint(dryRun))},
		},
	})
	if err != nil {
		return "", fmt.Errorf("sns:Publish ticket for %s to %s: %w", v.InstanceID, s.TopicARN, err)
	}
	return "sns:" + aws.ToString(out.MessageId), nil
}

// Title names the instance and where it is.
func Title(v message.Verdict) string {
	name := ""
	if v.Name != "" {
		name = " (" + v.Name + ")"
	}
	return fmt.Sprintf("IMDSv1 still used on %s%s in %s/%s", v.InstanceID, name, v.AccountID, v.Region)
}

// subject fits SNS's 100-character subject limit.
func subject(title string, dryRun bool) string {
	if dryRun {
		title = "[dry-run] " + title
	}
	if len(title) > 100 {
		title = title[:97] + "..."
	}
	return title
}

// Body is the plain-text ticket: why, the evidence, and what to do.
func Body(v message.Verdict, dryRun bool, exemptTag string) string {
	var b strings.Builder
	if dryRun {
		b.WriteString("DRY RUN: imdsguard runs in dry-run mode; nothing was changed.\n\n")
	}
	fmt.Fprintf(&b, "%s\n\n", Title(v))
	for _, r := range v.Reasons {
		fmt.Fprintf(&b, "- %s: %s\n", r.Code, r.Detail)
	}
	ev := v.Evidence
	b.WriteString("\nEvidence\n")
	if ev.MetadataNoTokenSum != nil {
		fmt.Fprintf(&b, "- MetadataNoToken (IMDSv1 calls): %g", *ev.MetadataNoTokenSum)
		if ev.ObservedHours != nil {
			fmt.Fprintf(&b, " in %d observed hours", *ev.ObservedHours)
		}
		b.WriteString("\n")
	}
	if ev.LastV1Use != nil {
		fmt.Fprintf(&b, "- last IMDSv1 use: %s\n", ev.LastV1Use.UTC().Format(time.RFC3339))
	}
	if ct := ev.CloudTrail; ct.Checked {
		fmt.Fprintf(&b, "- CloudTrail credential deliveries: %d over IMDSv1, %d over IMDSv2\n", ct.V1Deliveries, ct.V2Deliveries)
		if len(ct.UserAgents) > 0 {
			fmt.Fprintf(&b, "- software still using IMDSv1 (user agents): %s\n", strings.Join(ct.UserAgents, ", "))
		}
		if len(ct.SourceIPs) > 0 {
			fmt.Fprintf(&b, "- used from: %s\n", strings.Join(ct.SourceIPs, ", "))
		}
	}
	fmt.Fprintf(&b, "\nWhat to do\n"+
		"- Upgrade the software named above to a version that uses IMDSv2 (all current AWS SDKs and the AWS CLI v2 do).\n"+
		"- Re-check with: imdsguard plan --instance-ids %s --region %s\n"+
		"- If the instance must keep IMDSv1 for now, tag it %s=YYYY-MM-DD with the date the exemption ends.\n",
		v.InstanceID, v.Region, exemptTag)
	fmt.Fprintf(&b, "\nDecision %s at %s\n", v.DecisionID, v.CreatedAt.UTC().Format(time.RFC3339))
	return b.String()
}
