package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
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
func (e *Emulators) runSafetyNet(ctx context.Context, now time.Time, p *Pipeline, book *ledger.Ledger,
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
		if err := book.BackdateWatch(ctx, w.Ref, now.Add(-2*time.Hour)); err != nil {
			return nil, err
		}
		rejected := 0.0
		if w.InstanceID == broke.ID {
			rejected = 3
		}
		pts := []fakeaws.Point{{Time: now.Add(-90 * time.Minute), Value: 0}, {Time: now.Add(-30 * time.Minute), Value: rejected}}
		if err := fakeaws.PutInstanceMetric(ctx, cw, evidence.MetadataNoTokenRejected, w.InstanceID, pts); err != nil {
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
