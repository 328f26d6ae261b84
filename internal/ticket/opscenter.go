package ticket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// OpsCenterAPI is the part of the Systems Manager client the OpsCenter backend uses.
// DescribeOpsItems is called only when CreateOpsItem reports a duplicate without naming
// the OpsItem it duplicates.
type OpsCenterAPI interface {
	CreateOpsItem(ctx context.Context, in *ssm.CreateOpsItemInput, optFns ...func(*ssm.Options)) (*ssm.CreateOpsItemOutput, error)
	UpdateOpsItem(ctx context.Context, in *ssm.UpdateOpsItemInput, optFns ...func(*ssm.Options)) (*ssm.UpdateOpsItemOutput, error)
	DescribeOpsItems(ctx context.Context, in *ssm.DescribeOpsItemsInput, optFns ...func(*ssm.Options)) (*ssm.DescribeOpsItemsOutput, error)
}

// OpsCenter files tickets as Systems Manager OpsCenter OpsItems in the account and
// region of the client, one per instance: OpsCenter's own deduplication ("/aws/dedup",
// keyed by the instance's DedupKey and its ARN as related resource) makes a repeated
// CreateOpsItem return the open OpsItem instead of a second one, so neither a retry nor
// the next sweep opens another, and once the OpsItem is resolved the next Open creates a
// new one. The reference is the OpsItemId.
//
// Retries of throttled and failed calls are the SDK client's (its retryer).
//
// IAM: ssm:CreateOpsItem, ssm:UpdateOpsItem and ssm:DescribeOpsItems.
type OpsCenter struct {
	API OpsCenterAPI
	// Now is the clock for imdsguard:updated_at; nil means time.Now.
	Now func() time.Time
}

// OpsItem limits and names. OperationalData values are documented as "a maximum size of
// 20 KB" (CreateOpsItem, OperationalData); 20,000 bytes fits either reading of KB.
const (
	opsItemSource           = "imdsguard"
	opsItemCategory         = "Security"
	opsItemMaxTitle         = 1024 // characters
	opsItemMaxDescription   = 2048 // characters; MarkdownWithin counts bytes, which is stricter
	opsItemMaxDataValue     = 20000
	opsDataDedup            = "/aws/dedup"
	opsDataResources        = "/aws/resources"
	opsDataInstanceID       = "imdsguard:instance_id"
	opsDataEvidence         = "imdsguard:evidence"
	opsDataUpdatedAt        = "imdsguard:updated_at"
	opsDataResolution       = "imdsguard:resolution"
	opsItemEvidenceCutLabel = "\n\n**Shortened:** the evidence did not fit the 20 KB operational data limit.\n"
)

// Name implements Backend.
func (o *OpsCenter) Name() string { return "opscenter" }

// Open creates the instance's OpsItem or, when one is open (or in progress), returns it.
func (o *OpsCenter) Open(ctx context.Context, t Ticket) (string, error) {
	v := t.Verdict
	dedup := t.DedupKey()
	dedupValue, err := json.Marshal(map[string]string{"dedupString": dedup})
	if err != nil {
		return "", fmt.Errorf("ssm:CreateOpsItem for %s: encoding the dedup string: %w", v.InstanceID, err)
	}
	resources, err := json.Marshal([]map[string]string{{"arn": InstanceARN(v.AccountID, v.Region, v.InstanceID)}})
	if err != nil {
		return "", fmt.Errorf("ssm:CreateOpsItem for %s: encoding the related resource: %w", v.InstanceID, err)
	}
	out, err := o.API.CreateOpsItem(ctx, &ssm.CreateOpsItemInput{
		Title:       aws.String(titleLine(t.Content.Title, opsItemMaxTitle)),
		Description: aws.String(t.Content.MarkdownWithin(opsItemMaxDescription)),
		Source:      aws.String(opsItemSource),
		Category:    aws.String(opsItemCategory),
		Severity:    aws.String(OpsItemSeverity(t)),
		OperationalData: map[string]ssmtypes.OpsItemDataValue{
			opsDataDedup:      searchable(string(dedupValue)),
			opsDataResources:  searchable(string(resources)),
			opsDataInstanceID: searchable(v.InstanceID),
			opsDataEvidence:   plainData(opsItemEvidence(t.Content)),
		},
	})
	if err == nil {
		return aws.ToString(out.OpsItemId), nil
	}
	// A duplicate of an open OpsItem: that OpsItem is the ticket.
	var dup *ssmtypes.OpsItemAlreadyExistsException
	if !errors.As(err, &dup) {
		return "", fmt.Errorf("ssm:CreateOpsItem for %s (%s): %w", v.InstanceID, dedup, err)
	}
	if id := aws.ToString(dup.OpsItemId); id != "" {
		return id, nil
	}
	return o.findOpen(ctx, v.InstanceID, string(dedupValue))
}

// findOpen finds the open OpsItem with the dedup value, for a duplicate reported without
// its OpsItemId.
func (o *OpsCenter) findOpen(ctx context.Context, instanceID, dedupValue string) (string, error) {
	filter, err := json.Marshal(map[string]string{"key": opsDataDedup, "value": dedupValue})
	if err != nil {
		return "", fmt.Errorf("ssm:DescribeOpsItems for %s: encoding the filter: %w", instanceID, err)
	}
	out, err := o.API.DescribeOpsItems(ctx, &ssm.DescribeOpsItemsInput{
		OpsItemFilters: []ssmtypes.OpsItemFilter{
			{Key: ssmtypes.OpsItemFilterKeyOperationalData, Operator: ssmtypes.OpsItemFilterOperatorEqual, Values: []string{string(filter)}},
			{Key: ssmtypes.OpsItemFilterKeyStatus, Operator: ssmtypes.OpsItemFilterOperatorEqual, Values: []string{string(ssmtypes.OpsItemStatusOpen), string(ssmtypes.OpsItemStatusInProgress)}},
		},
		MaxResults: aws.Int32(10),
	})
	if err != nil {
		return "", fmt.Errorf("ssm:DescribeOpsItems for %s after CreateOpsItem reported a duplicate: %w", instanceID, err)
	}
	for _, s := range out.OpsItemSummaries {
		if id := aws.ToString(s.OpsItemId); id != "" {
			return id, nil
		}
	}
	return "", fmt.Errorf("ssm:CreateOpsItem for %s reported a duplicate OpsItem, but DescribeOpsItems finds no open OpsItem with its dedup string", instanceID)
}

// Update replaces the OpsItem's description, severity and evidence with the new ones.
func (o *OpsCenter) Update(ctx context.Context, ref string, t Ticket) error {
	_, err := o.API.UpdateOpsItem(ctx, &ssm.UpdateOpsItemInput{
		OpsItemId:   aws.String(ref),
		Description: aws.String(t.Content.MarkdownWithin(opsItemMaxDescription)),
		Severity:    aws.String(OpsItemSeverity(t)),
		OperationalData: map[string]ssmtypes.OpsItemDataValue{
			opsDataEvidence:  plainData(opsItemEvidence(t.Content)),
			opsDataUpdatedAt: plainData(o.now().UTC().Format(time.RFC3339)),
		},
	})
	if err != nil {
		return fmt.Errorf("ssm:UpdateOpsItem (new evidence) %s for %s: %w", ref, t.Verdict.InstanceID, err)
	}
	return nil
}

// Resolve sets the OpsItem to Resolved with the closing note; the next Open for the
// instance creates a new OpsItem.
func (o *OpsCenter) Resolve(ctx context.Context, ref string, c Closing) error {
	_, err := o.API.UpdateOpsItem(ctx, &ssm.UpdateOpsItemInput{
		OpsItemId: aws.String(ref),
		Status:    ssmtypes.OpsItemStatusResolved,
		OperationalData: map[string]ssmtypes.OpsItemDataValue{
			opsDataResolution: plainData(truncateBytes(c.Text(), opsItemMaxDataValue)),
			opsDataUpdatedAt:  plainData(o.now().UTC().Format(time.RFC3339)),
		},
	})
	if err != nil {
		return fmt.Errorf("ssm:UpdateOpsItem (resolve) %s for %s: %w", ref, c.InstanceID, err)
	}
	return nil
}

func (o *OpsCenter) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// OpsItemSeverity is the OpsItem severity of a ticket: 1 for a possible credential
// theft, 2 for IMDSv1 credential deliveries in CloudTrail, 3 for IMDSv1 calls in the
// metric, 4 otherwise.
func OpsItemSeverity(t Ticket) string {
	has := func(code policy.ReasonCode) bool {
		_, ok := reasonFor(t.Verdict, code)
		return ok
	}
	switch {
	case has(policy.ReasonPossibleCredentialTheft):
		return "1"
	case has(policy.ReasonIMDSv1UsedCloudTrail):
		return "2"
	case has(policy.ReasonIMDSv1UsedMetric):
		return "3"
	}
	return "4"
}

// InstanceARN is the ARN of an EC2 instance, in the partition of its region.
func InstanceARN(account, region, instanceID string) string {
	return "arn:" + Partition(region) + ":ec2:" + region + ":" + account + ":instance/" + instanceID
}

// Partition is the AWS partition of a region.
func Partition(region string) string {
	for _, p := range []struct{ prefix, partition string }{
		{"cn-", "aws-cn"},
		{"us-gov-", "aws-us-gov"},
		{"us-isob-", "aws-iso-b"},
		{"us-iso-", "aws-iso"},
		{"eu-isoe-", "aws-iso-e"},
		{"us-isof-", "aws-iso-f"},
	} {
		if strings.HasPrefix(region, p.prefix) {
			return p.partition
		}
	}
	return "aws"
}

// opsItemEvidence is the full Markdown ticket, cut at a line to fit an operational data
// value.
func opsItemEvidence(c Content) string {
	md := c.Markdown()
	if len(md) <= opsItemMaxDataValue {
		return md
	}
	return strings.TrimRight(truncateLines(md, opsItemMaxDataValue-len(opsItemEvidenceCutLabel)), "\n") + opsItemEvidenceCutLabel
}

func searchable(v string) ssmtypes.OpsItemDataValue {
	return ssmtypes.OpsItemDataValue{Type: ssmtypes.OpsItemDataTypeSearchableString, Value: aws.String(v)}
}

func plainData(v string) ssmtypes.OpsItemDataValue {
	return ssmtypes.OpsItemDataValue{Type: ssmtypes.OpsItemDataTypeString, Value: aws.String(v)}
}
