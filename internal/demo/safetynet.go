package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/verdictqueue"
	"github.com/imdsguard/imdsguard/internal/verify"
)

// SafetyNet is what verify did after the enforcements: the demo makes one of the
// enforced instances break (IMDSv1 calls EC2 rejects) and shows it put back.
type SafetyNet struct {
	Summary verify.Summary
	// Broke is the instance that broke, and Why what verify recorded about it.
	Broke Seeded
	Why   string
	// Tokens and HopLimit are its options after the rollback.
	Tokens   string
	HopLimit int32
}

// safetyNetWindow is the verification window of the demo: it cannot wait the 72 hours
// a deployment watches for, so it moves the enforcements two hours back in the ledger and
// watches for one.
const safetyNetWindow = time.Hour

// runSafetyNet lets the verification window pass: every enforced instance has two
// observed hours of MetadataNoTokenRejected, all zeros but for broke, which had 3 calls
// rejected in the last half hour; then verify runs once.
func (e *Emulators) runSafetyNet(ctx context.Context, now time.Time, p *Pipeline, book *ledger.Ledger, db *dynamodb.Client,
	cw *cloudwatch.Client, enf *enforce.Enforcer, verdicts *verdictqueue.Sender, region string) (*SafetyNet, error) {
	watches, err := book.Watching(ctx, accountID, region)
	if err != nil || len(watches) == 0 {
		return nil, err
	}
	// The instance that breaks is a web server, which uses the metadata service (one
	// with its endpoint disabled could not); any enforced one if there is none.
	var broke *Seeded
	for _, o := range p.Outcomes {
		if o.Last != nil && o.Last.Result == ledger.ResultEnforced && (broke == nil || (o.Kind.Name == "web" && broke.Kind.Name != "web")) {
			broke = &o.Seeded
		}
	}
	if broke == nil {
		return nil, nil
	}
	for _, w := range watches {
		if _, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(book.Table),
			Key: map[string]ddbtypes.AttributeValue{
				"pk": &ddbtypes.AttributeValueMemberS{Value: "WATCH#" + w.AccountID + "#" + w.Region},
				"sk": &ddbtypes.AttributeValueMemberS{Value: w.InstanceID},
			},
			UpdateExpression:          aws.String("SET enforced_at = :at"),
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":at": &ddbtypes.AttributeValueMemberS{Value: now.Add(-2 * time.Hour).UTC().Format("2006-01-02T15:04:05.000000000Z")}},
		}); err != nil {
			return nil, fmt.Errorf("moving the enforcement of %s back: %w", w.InstanceID, err)
		}
		var data []cwtypes.MetricDatum
		for _, ago := range []time.Duration{90 * time.Minute, 30 * time.Minute} {
			rejected := 0.0
			if w.InstanceID == broke.ID && ago == 30*time.Minute {
				rejected = 3
			}
			data = append(data, cwtypes.MetricDatum{
				MetricName: aws.String(evidence.MetadataNoTokenRejected), Timestamp: aws.Time(now.Add(-ago)), Value: aws.Float64(rejected),
				Dimensions: []cwtypes.Dimension{{Name: aws.String("InstanceId"), Value: aws.String(w.InstanceID)}},
			})
		}
		if _, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("AWS/EC2"), MetricData: data}); err != nil {
			return nil, err
		}
	}
	settings := policy.DefaultSettings()
	settings.Mode = policy.ModeEnforce
	h := &verify.Handler{
		Settings: settings, Window: safetyNetWindow, Rollout: policy.RolloutSettings{BreakerRollbacks: 3}, Region: region,
		EC2: enf.EC2, CloudWatch: cw, Ledger: book, Restorer: enf, Verdicts: verdicts,
		Now: func() time.Time { return now }, Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), Metrics: &emf.Emitter{W: io.Discard, Now: time.Now},
	}
	sum, err := h.Handle(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	net := &SafetyNet{Summary: sum, Broke: *broke}
	if rb, err := book.GetRollback(ctx, ledger.Ref{AccountID: accountID, Region: region, InstanceID: broke.ID}); err != nil {
		return nil, err
	} else if rb != nil {
		net.Why = rb.Why
	}
	live, _, err := evidence.Inventory(ctx, enf.EC2, region, []string{broke.ID})
	if err != nil {
		return nil, err
	}
	if len(live) == 1 {
		net.Tokens, net.HopLimit = live[0].Options.HTTPTokens, live[0].Options.HopLimit
	}
	return net, nil
}
