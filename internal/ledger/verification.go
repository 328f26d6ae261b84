package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imdsguard/imdsguard/internal/ledger/rollbacks"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// Verification and rollout state (DESIGN.md sections 8 and 9).
//
// Watch items, one per enforced instance being verified, written with the enforcement's
// outcome (Record) and deleted when it settles (Settle):
//
//	pk          S  WATCH#<account id>#<region>
//	sk          S  <instance id>
//	type        S  watch
//	account_id, region, instance_id, decision_id  S  (the enforcement's decision)
//	enforced_at S  when the options were applied
//	applied     M  the options imdsguard set
//	wave        N  the rollout wave the instance was enforced in
//
// Rollout items of an account-region, under one partition that one Query reads:
//
//	pk ROLLOUT#<account id>#<region>, sk BREAKER: opened_at S, why S (absent while closed),
//	   reset_at S (when a person last closed it)
//	pk ROLLOUT#..., sk WAVE#<index>: last_settled S, when one of the wave's enforced
//	   instances was last verified or rolled back; verified N and rolled_back N, how many
//	   were
//	pk ROLLOUT#..., sk ROLLBACK#<instance id>: the instance's latest rollback: at S,
//	   why S, decision_id S, by S (verify or manual), expires_at N (TTL,
//	   RollbackRetention after it). Rule 5b reads them, and the breaker counts verify's of
//	   the last 24 hours.
//	pk ROLLOUT#..., sk VERIFIED#<instance id>: the instance's latest verified
//	   enforcement: at S, decision_id S, expires_at N (TTL, VerifiedRetention after it).
//	   The verdicts on sources count it as proof that the instance's workload needs no
//	   IMDSv1 (DESIGN.md section 10); a later rollback deletes it.

const (
	watchPrefix    = rollbacks.WatchPrefix
	verifiedPrefix = rollbacks.VerifiedPrefix
	rolloutPrefix  = rollbacks.PartitionPrefix
	breakerSK      = "BREAKER"
	wavePrefix     = "WAVE#"
	rollbackPrefix = rollbacks.SortPrefix
	typeWatch      = "watch"
	typeVerified   = "verified"
	typeRollback   = "rollback"
	typeBreaker    = "breaker"
	typeWave       = "wave"
)

// Results of a verification, recorded in the instance's history under the enforcement's
// decision.
const (
	ResultVerified   = "verified"    // a full window passed with no IMDSv1 call rejected
	ResultRolledBack = "rolled-back" // rejected calls: the snapshot's options were restored
)

// VerifiedRetention is how long a verified enforcement counts as proof for the verdicts
// on sources: a workload that ran a year on IMDSv2 alone is proven, and an instance that
// old is rare.
const VerifiedRetention = 400 * 24 * time.Hour

// RollbackRetention is how long a rollback is kept: the longest lookback (90 days), after
// which rule 5b no longer holds the instance back.
const RollbackRetention = 90 * 24 * time.Hour

// Watch is an enforced instance being verified.
type Watch struct {
	Ref
	DecisionID string
	EnforcedAt time.Time
	Applied    policy.MetadataOptions
	Wave       int
}

type watchItem struct {
	PK         string      `dynamodbav:"pk"`
	SK         string      `dynamodbav:"sk"`
	Type       string      `dynamodbav:"type"`
	AccountID  string      `dynamodbav:"account_id"`
	Region     string      `dynamodbav:"region"`
	InstanceID string      `dynamodbav:"instance_id"`
	DecisionID string      `dynamodbav:"decision_id"`
	EnforcedAt string      `dynamodbav:"enforced_at"`
	Applied    optionsItem `dynamodbav:"applied"`
	Wave       int         `dynamodbav:"wave"`
}

type rolloutItem struct {
	SK          string `dynamodbav:"sk"`
	Type        string `dynamodbav:"type"`
	OpenedAt    string `dynamodbav:"opened_at"`
	Why         string `dynamodbav:"why"`
	ResetAt     string `dynamodbav:"reset_at"`
	LastSettled string `dynamodbav:"last_settled"`
	Verified    int    `dynamodbav:"verified"`
	RolledBack  int    `dynamodbav:"rolled_back"`
	At          string `dynamodbav:"at"`
	InstanceID  string `dynamodbav:"instance_id"`
	By          string `dynamodbav:"by"`
}

func watchPK(account, region string) string   { return watchPrefix + account + "#" + region }
func rolloutPK(account, region string) string { return rollbacks.PartitionKey(account, region) }

// watchPut is the Put of the watch item of an enforced outcome, for Record's transaction.
func watchPut(table string, o Outcome) (*types.Put, error) {
	item, err := attributevalue.MarshalMap(watchItem{
		PK: watchPK(o.AccountID, o.Region), SK: o.InstanceID, Type: typeWatch,
		AccountID: o.AccountID, Region: o.Region, InstanceID: o.InstanceID, DecisionID: o.DecisionID,
		EnforcedAt: formatTime(o.At), Applied: *toOptionsItem(o.Applied), Wave: o.Wave,
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: record decision %s: encoding the watch: %w", o.DecisionID, err)
	}
	return &types.Put{TableName: aws.String(table), Item: item}, nil
}

// Watching returns the enforced instances of the account-region that are being verified.
func (l *Ledger) Watching(ctx context.Context, account, region string) ([]Watch, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	if err := validScope(account, region); err != nil {
		return nil, err
	}
	var out []Watch
	err := l.queryAll(ctx, watchPK(account, region), func(item map[string]types.AttributeValue) error {
		var w watchItem
		if err := attributevalue.UnmarshalMap(item, &w); err != nil {
			return err
		}
		at, err := parseTime(w.EnforcedAt)
		if err != nil {
			return fmt.Errorf("watch of %s: enforced_at %q: %w", w.InstanceID, w.EnforcedAt, err)
		}
		out = append(out, Watch{Ref: Ref{AccountID: w.AccountID, Region: w.Region, InstanceID: w.InstanceID},
			DecisionID: w.DecisionID, EnforcedAt: at, Applied: *w.Applied.options(), Wave: w.Wave})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: watches of %s/%s in table %s: %w", account, region, l.Table, err)
	}
	return out, nil
}

// Settlement is how a verification ended.
type Settlement struct {
	Watch Watch
	// Result is ResultVerified, ResultRolledBack, or ResultSuperseded (the instance is gone
	// or was changed outside imdsguard).
	Result  string
	At      time.Time
	Reasons []policy.Reason
	// Restored are the options a rollback set, nil otherwise; Why is what broke.
	Restored *policy.MetadataOptions
	Detail   string
	// Mode is the mode the verification ran in, for the history.
	Mode string
}

// Settle ends a verification in one transaction: the watch is removed (only the watch
// of this very enforcement), the outcome is added to the instance's history under the
// enforcement's decision, the wave's last settlement is moved to At, and a rollback is
// kept for rule 5b and the breaker. It returns ErrDone when the watch is gone already
// (another run settled it).
func (l *Ledger) Settle(ctx context.Context, s Settlement) error {
	w := s.Watch
	st := settling{
		outcome: Outcome{Ref: w.Ref, DecisionID: w.DecisionID, At: s.At, Action: policy.ActionRemediate, Result: s.Result,
			Mode: s.Mode, Reasons: s.Reasons, Prior: &w.Applied, Applied: s.Restored, Detail: s.Detail},
		watchKey: map[string]types.AttributeValue{attrPK: str(watchPK(w.AccountID, w.Region)), attrSK: str(w.InstanceID)},
		wave:     w.Wave, token: "settle",
	}
	rollout := rolloutPK(w.AccountID, w.Region)
	switch s.Result {
	case ResultVerified:
		st.extra = append(st.extra, types.TransactWriteItem{Put: &types.Put{TableName: aws.String(l.Table), Item: map[string]types.AttributeValue{
			attrPK: str(rollout), attrSK: str(verifiedPrefix + w.InstanceID), "type": str(typeVerified),
			"instance_id": str(w.InstanceID), "decision_id": str(w.DecisionID), "at": str(formatTime(s.At)),
			TTLAttribute: num(s.At.Add(VerifiedRetention).Unix()),
		}}})
	case ResultRolledBack:
		// A rolled back instance proves nothing for its sources any more.
		st.extra = append(st.extra, types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String(l.Table),
			Key: map[string]types.AttributeValue{attrPK: str(rollout), attrSK: str(verifiedPrefix + w.InstanceID)}}})
	}
	return l.settle(ctx, st)
}

// settling is what ends one verification, an enforced instance's or a source fix's.
type settling struct {
	// outcome is the follow-up in the history, under the decision that made the change.
	outcome Outcome
	// watchKey is the key of the watch, removed only if it is still this decision's.
	watchKey map[string]types.AttributeValue
	wave     int
	// extra are the items the kind of verification adds; token names the kind in the
	// request token.
	extra []types.TransactWriteItem
	token string
}

// settle runs a settlement in one transaction: the watch goes, the outcome joins the
// history, the wave's count and last settlement move (unless superseded), a rollback is
// kept for rule 5b and the breaker (by verify), and the extra items are written. It
// returns ErrDone when the watch is gone already (another run settled it).
func (l *Ledger) settle(ctx context.Context, st settling) error {
	if err := l.check(); err != nil {
		return err
	}
	o := st.outcome
	switch o.Result {
	case ResultVerified, ResultRolledBack, ResultSuperseded:
	default:
		return fmt.Errorf("ledger: settle %s: result %q is not verified, rolled-back or superseded", o.Name(), o.Result)
	}
	if err := o.valid(); err != nil {
		return fmt.Errorf("ledger: settle: %w", err)
	}
	histItem, err := attributevalue.MarshalMap(followUpItem(o))
	if err != nil {
		return fmt.Errorf("ledger: settle %s: encoding the outcome: %w", o.Name(), err)
	}
	items := []types.TransactWriteItem{
		{Delete: &types.Delete{
			TableName:                 aws.String(l.Table),
			Key:                       st.watchKey,
			ConditionExpression:       aws.String("#did = :did"),
			ExpressionAttributeNames:  map[string]string{"#did": "decision_id"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":did": str(o.DecisionID)},
		}},
		{Put: &types.Put{
			TableName: aws.String(l.Table), Item: histItem,
			ConditionExpression: aws.String("attribute_not_exists(#pk)"), ExpressionAttributeNames: map[string]string{"#pk": attrPK},
		}},
	}
	if o.Result != ResultSuperseded {
		items = append(items, waveSettled(l.Table, o.AccountID, o.Region, st.wave, o.Result, o.At))
	}
	if o.Result == ResultRolledBack {
		why := o.Detail
		if len(o.Reasons) > 0 {
			why = o.Reasons[0].Detail
		}
		items = append(items, types.TransactWriteItem{Put: rollbackPut(l.Table, o.Ref, o.DecisionID, o.At, why, rolledBackByVerify)})
	}
	items = append(items, st.extra...)
	_, err = l.API.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		ClientRequestToken: aws.String(requestToken(l.Table, st.token, o.DecisionID, o.Result, formatTime(o.At))),
		TransactItems:      items,
	})
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) && len(tce.CancellationReasons) > 0 && aws.ToString(tce.CancellationReasons[0].Code) == "ConditionalCheckFailed" {
		return fmt.Errorf("ledger: settle %s as %s in table %s: the watch of decision %s is gone: %w", o.Name(), o.Result, l.Table, o.DecisionID, ErrDone)
	}
	if err != nil {
		return fmt.Errorf("ledger: settle %s as %s in table %s: %w", o.Name(), o.Result, l.Table, err)
	}
	return nil
}

// waveSettled is the Update that moves a wave's last settlement to at and counts the
// result (verified or rolled-back), for a settlement's transaction.
func waveSettled(table, account, region string, wave int, result string, at time.Time) types.TransactWriteItem {
	count := "verified"
	if result == ResultRolledBack {
		count = "rolled_back"
	}
	return types.TransactWriteItem{Update: &types.Update{
		TableName:                 aws.String(table),
		Key:                       map[string]types.AttributeValue{attrPK: str(rolloutPK(account, region)), attrSK: str(wavePrefix + strconv.Itoa(wave))},
		UpdateExpression:          aws.String("SET #type = :type, #last = :at ADD #count :one"),
		ExpressionAttributeNames:  map[string]string{"#type": "type", "#last": "last_settled", "#count": count},
		ExpressionAttributeValues: map[string]types.AttributeValue{":type": str(typeWave), ":at": str(formatTime(at)), ":one": num(1)},
	}}
}

// Who rolled an enforcement back, as a rollback item's by attribute.
const (
	rolledBackByVerify = "verify"
	rolledBackByHand   = "manual"
	// rolledBackWithSource: an instance launched from a source fix that broke it, put
	// back by verify with the source.
	rolledBackWithSource = "source"
)

// rollbackPut is the Put of an instance's latest rollback, for rule 5b and the breaker.
func rollbackPut(table string, ref Ref, decisionID string, at time.Time, why, by string) *types.Put {
	return &types.Put{
		TableName: aws.String(table),
		Item: map[string]types.AttributeValue{
			attrPK: str(rolloutPK(ref.AccountID, ref.Region)), attrSK: str(rollbackPrefix + ref.InstanceID), "type": str(typeRollback),
			"instance_id": str(ref.InstanceID), "decision_id": str(decisionID), "at": str(formatTime(at)),
			"why": str(why), "by": str(by), TTLAttribute: num(at.Add(RollbackRetention).Unix()),
		},
	}
}

// ManualRollback is an enforcement a person rolled back with `imdsguard rollback`.
type ManualRollback struct {
	Ref
	// DecisionID is the enforcement's decision (the snapshot's).
	DecisionID string
	At         time.Time
	// Restored are the options as EC2 reported them after the rollback.
	Restored policy.MetadataOptions
	Why      string
}

// RecordManualRollback records a rollback made by hand in one transaction: the outcome in
// the instance's history under the enforcement's decision, the rollback (rule 5b holds
// the instance back for a lookback, as after verify's; the breaker does not count it),
// and the end of its verification, if it was still watched.
func (l *Ledger) RecordManualRollback(ctx context.Context, m ManualRollback) error {
	return l.recordRollback(ctx, m, rolledBackByHand, "rolled back by hand (imdsguard rollback): ")
}

// RecordSourceBreakage records that verify put back an instance launched from a source
// fix that broke it (m.DecisionID is the fix's decision), as RecordManualRollback records
// one by hand: rule 5b holds the instance back for a lookback, and the breaker counts its
// source's rollback rather than each of its instances.
func (l *Ledger) RecordSourceBreakage(ctx context.Context, m ManualRollback) error {
	return l.recordRollback(ctx, m, rolledBackWithSource, "put back with its launch template's fix: ")
}

func (l *Ledger) recordRollback(ctx context.Context, m ManualRollback, by, detail string) error {
	if err := l.check(); err != nil {
		return err
	}
	o := Outcome{Ref: m.Ref, DecisionID: m.DecisionID, At: m.At, Action: policy.ActionRemediate, Result: ResultRolledBack,
		Mode: by, Reasons: []policy.Reason{{Code: policy.ReasonRolledBack, Detail: m.Why}}, Applied: &m.Restored,
		Detail: detail + m.Why}
	if err := o.valid(); err != nil {
		return fmt.Errorf("ledger: record rollback: %w", err)
	}
	histItem, err := attributevalue.MarshalMap(followUpItem(o))
	if err != nil {
		return fmt.Errorf("ledger: record rollback of %s: encoding the outcome: %w", m.Name(), err)
	}
	_, err = l.API.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		ClientRequestToken: aws.String(requestToken(l.Table, by+"-rollback", m.DecisionID, m.InstanceID, formatTime(m.At))),
		TransactItems: []types.TransactWriteItem{
			{Delete: &types.Delete{
				TableName: aws.String(l.Table),
				Key:       map[string]types.AttributeValue{attrPK: str(watchPK(m.AccountID, m.Region)), attrSK: str(m.InstanceID)},
			}},
			{Put: &types.Put{
				TableName: aws.String(l.Table), Item: histItem,
				ConditionExpression: aws.String("attribute_not_exists(#pk)"), ExpressionAttributeNames: map[string]string{"#pk": attrPK},
			}},
			{Put: rollbackPut(l.Table, m.Ref, m.DecisionID, m.At, m.Why, by)},
			// A rolled back instance proves nothing for its sources any more.
			{Delete: &types.Delete{TableName: aws.String(l.Table),
				Key: map[string]types.AttributeValue{attrPK: str(rolloutPK(m.AccountID, m.Region)), attrSK: str(verifiedPrefix + m.InstanceID)}}},
			// A source rolled back by hand is not watched any more.
			{Delete: &types.Delete{TableName: aws.String(l.Table),
				Key: map[string]types.AttributeValue{attrPK: str(sourceWatchPK(m.AccountID, m.Region)), attrSK: str(m.InstanceID)}}},
		},
	})
	if err != nil {
		return fmt.Errorf("ledger: record rollback of %s in table %s: %w", m.Name(), l.Table, err)
	}
	return nil
}

// DecisionRef is the instance a recorded decision is about.
func (l *Ledger) DecisionRef(ctx context.Context, decisionID string) (Ref, error) {
	if err := l.check(); err != nil {
		return Ref{}, err
	}
	if err := validDecisionID(decisionID); err != nil {
		return Ref{}, fmt.Errorf("ledger: %w", err)
	}
	item, err := l.get(ctx, decisionKey(decisionID))
	if err != nil {
		return Ref{}, fmt.Errorf("ledger: decision %s in table %s: %w", decisionID, l.Table, err)
	}
	if item == nil {
		return Ref{}, fmt.Errorf("ledger: decision %s is not in table %s: %w", decisionID, l.Table, ErrNotRecorded)
	}
	var d decisionItem
	if err := attributevalue.UnmarshalMap(item, &d); err != nil {
		return Ref{}, fmt.Errorf("ledger: decision %s in table %s: %w", decisionID, l.Table, err)
	}
	return Ref{AccountID: d.AccountID, Region: d.Region, InstanceID: d.InstanceID}, nil
}

// followUpItem is the history item of an outcome that follows an enforcement under the
// same decision (verified, rolled back): its sort key names the result too, so that it
// can never take the place of the enforcement's, even at the same instant, and still
// sorts by time.
func followUpItem(o Outcome) outcomeItem {
	it := newOutcomeItem(o)
	it.SK += "#" + o.Result
	return it
}

// Rollout is the ledger's state of an account-region's rollout.
type Rollout struct {
	// BreakerOpenedAt is zero while the breaker is closed; BreakerResetAt is when a person
	// last closed it (zero if never).
	BreakerOpenedAt, BreakerResetAt time.Time
	BreakerWhy                      string
	// LastSettled, Verifying, Verified and RolledBack are by wave index: the last
	// settlement, the enforcements being watched, and how many ended verified or rolled
	// back.
	LastSettled map[int]time.Time
	Verifying   map[int]int
	Verified    map[int]int
	RolledBack  map[int]int
	// Rollbacks are the latest rollback of each instance (and source), by its id; byHand
	// names those verify did not make on its own (by hand, or with a source), which the
	// breaker does not count.
	Rollbacks map[string]policy.Rollback
	byHand    map[string]bool
}

// State is the rollout state the policy decides on, for waves wave indexes (the
// settings' waves and the last one).
func (r Rollout) State(waves int) policy.RolloutState {
	st := policy.RolloutState{BreakerOpenedAt: r.BreakerOpenedAt, BreakerWhy: r.BreakerWhy, Waves: make([]policy.WaveState, waves)}
	for i := range st.Waves {
		st.Waves[i] = policy.WaveState{Verifying: r.Verifying[i], LastSettled: r.LastSettled[i]}
	}
	return st
}

// RollbacksSinceReset are the times of verify's rollbacks since the breaker was last
// closed, which the breaker counts; a rollback by hand is a person's decision, not a
// sign that enforcement breaks things.
func (r Rollout) RollbacksSinceReset() []time.Time {
	var out []time.Time
	for id, rb := range r.Rollbacks {
		if !r.byHand[id] && rb.At.After(r.BreakerResetAt) {
			out = append(out, rb.At)
		}
	}
	return out
}

// ReadRollout reads the rollout state of an account-region: three Queries, the rollout
// partition, the watches and the source watches.
func (l *Ledger) ReadRollout(ctx context.Context, account, region string) (Rollout, error) {
	if err := l.check(); err != nil {
		return Rollout{}, err
	}
	if err := validScope(account, region); err != nil {
		return Rollout{}, err
	}
	r := Rollout{LastSettled: map[int]time.Time{}, Verifying: map[int]int{}, Verified: map[int]int{}, RolledBack: map[int]int{},
		Rollbacks: map[string]policy.Rollback{}, byHand: map[string]bool{}}
	err := l.queryAll(ctx, rolloutPK(account, region), func(item map[string]types.AttributeValue) error {
		var it rolloutItem
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			return err
		}
		optionalTime := func(name, s string) (time.Time, error) {
			if s == "" {
				return time.Time{}, nil
			}
			t, err := parseTime(s)
			if err != nil {
				return time.Time{}, fmt.Errorf("%s: %s %q: %w", it.SK, name, s, err)
			}
			return t, nil
		}
		var err error
		switch {
		case it.SK == breakerSK:
			if r.BreakerOpenedAt, err = optionalTime("opened_at", it.OpenedAt); err != nil {
				return err
			}
			if r.BreakerResetAt, err = optionalTime("reset_at", it.ResetAt); err != nil {
				return err
			}
			r.BreakerWhy = it.Why
		case strings.HasPrefix(it.SK, wavePrefix):
			wave, convErr := strconv.Atoi(strings.TrimPrefix(it.SK, wavePrefix))
			if convErr != nil {
				return fmt.Errorf("%s: not a wave index", it.SK)
			}
			if r.LastSettled[wave], err = optionalTime("last_settled", it.LastSettled); err != nil {
				return err
			}
			r.Verified[wave], r.RolledBack[wave] = it.Verified, it.RolledBack
		case strings.HasPrefix(it.SK, rollbackPrefix):
			at, err := optionalTime("at", it.At)
			if err != nil {
				return err
			}
			id := strings.TrimPrefix(it.SK, rollbackPrefix)
			r.Rollbacks[id] = policy.Rollback{At: at, Why: it.Why}
			// The breaker counts verify's own rollbacks: not those by hand, nor those of
			// instances a source fix broke (their source's rollback counts, once).
			r.byHand[id] = it.By != rolledBackByVerify
		}
		return nil
	})
	if err != nil {
		return Rollout{}, fmt.Errorf("ledger: rollout of %s/%s in table %s: %w", account, region, l.Table, err)
	}
	watches, err := l.Watching(ctx, account, region)
	if err != nil {
		return Rollout{}, err
	}
	for _, w := range watches {
		r.Verifying[w.Wave]++
	}
	// A launch template fix being verified holds the later waves back as an enforcement
	// does.
	fixes, err := l.WatchingSources(ctx, account, region)
	if err != nil {
		return Rollout{}, err
	}
	for _, w := range fixes {
		r.Verifying[w.Wave]++
	}
	return r, nil
}

// OpenBreaker opens the account-region's breaker, unless it is open already (then the
// first opening stands, and opened is false).
func (l *Ledger) OpenBreaker(ctx context.Context, account, region string, at time.Time, why string) (opened bool, err error) {
	if err := l.check(); err != nil {
		return false, err
	}
	if err := validScope(account, region); err != nil {
		return false, err
	}
	_, err = l.API.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.Table),
		Key:                       map[string]types.AttributeValue{attrPK: str(rolloutPK(account, region)), attrSK: str(breakerSK)},
		UpdateExpression:          aws.String("SET #type = :type, #opened = :at, #why = :why"),
		ConditionExpression:       aws.String("attribute_not_exists(#opened)"),
		ExpressionAttributeNames:  map[string]string{"#type": "type", "#opened": "opened_at", "#why": "why"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":type": str(typeBreaker), ":at": str(formatTime(at)), ":why": str(why)},
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ccf):
		return false, nil
	}
	return false, fmt.Errorf("ledger: opening the breaker of %s/%s in table %s: %w", account, region, l.Table, err)
}

// ResetBreaker closes the account-region's breaker; the rollbacks before at no longer
// count towards opening it again.
func (l *Ledger) ResetBreaker(ctx context.Context, account, region string, at time.Time) error {
	if err := l.check(); err != nil {
		return err
	}
	if err := validScope(account, region); err != nil {
		return err
	}
	_, err := l.API.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.Table),
		Key:                       map[string]types.AttributeValue{attrPK: str(rolloutPK(account, region)), attrSK: str(breakerSK)},
		UpdateExpression:          aws.String("SET #type = :type, #reset = :at REMOVE #opened, #why"),
		ExpressionAttributeNames:  map[string]string{"#type": "type", "#reset": "reset_at", "#opened": "opened_at", "#why": "why"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":type": str(typeBreaker), ":at": str(formatTime(at))},
	})
	if err != nil {
		return fmt.Errorf("ledger: closing the breaker of %s/%s in table %s: %w", account, region, l.Table, err)
	}
	return nil
}

// queryAll reads every item of a partition, strongly consistent, page by page.
func (l *Ledger) queryAll(ctx context.Context, pk string, each func(map[string]types.AttributeValue) error) error {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.Table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk)},
		ConsistentRead:            aws.Bool(true),
	}
	if l.PageSize > 0 {
		in.Limit = aws.Int32(l.PageSize)
	}
	p := dynamodb.NewQueryPaginator(l.API, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, item := range page.Items {
			if err := each(item); err != nil {
				return err
			}
		}
	}
	return nil
}

// validScope checks an account-region that names a partition.
func validScope(account, region string) error {
	if !policy.ValidAccountID(account) || !policy.ValidRegion(region) {
		return fmt.Errorf("ledger: %q/%q is not an account id and region", account, region)
	}
	return nil
}

// GetRollback returns the instance's latest rollback, or nil (and no error) when it was
// never rolled back (or the rollback has expired).
func (l *Ledger) GetRollback(ctx context.Context, ref Ref) (*policy.Rollback, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	if err := validRef(ref); err != nil {
		return nil, fmt.Errorf("ledger: get rollback: %w", err)
	}
	item, err := l.get(ctx, map[string]types.AttributeValue{
		attrPK: str(rolloutPK(ref.AccountID, ref.Region)), attrSK: str(rollbackPrefix + ref.InstanceID),
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: get rollback of %s from table %s: %w", ref.Name(), l.Table, err)
	}
	if item == nil {
		return nil, nil
	}
	var it rolloutItem
	if err := attributevalue.UnmarshalMap(item, &it); err != nil {
		return nil, fmt.Errorf("ledger: get rollback of %s from table %s: %w", ref.Name(), l.Table, err)
	}
	at, err := parseTime(it.At)
	if err != nil {
		return nil, fmt.Errorf("ledger: get rollback of %s from table %s: at %q: %w", ref.Name(), l.Table, it.At, err)
	}
	return &policy.Rollback{At: at, Why: it.Why}, nil
}

// BackdateWatch moves a watched enforcement back to enforcedAt, as if its verification
// window had been running since. It is for the demo and the tests, which cannot wait
// for a window to pass; nothing in the deployed functions calls it.
func (l *Ledger) BackdateWatch(ctx context.Context, ref Ref, enforcedAt time.Time) error {
	return l.backdate(ctx, map[string]types.AttributeValue{attrPK: str(watchPK(ref.AccountID, ref.Region)), attrSK: str(ref.InstanceID)},
		"enforced_at", enforcedAt)
}

// BackdateWaveSettlement moves a wave's last settlement back to at, as if its soak had
// been running since; for the demo and the tests, as BackdateWatch.
func (l *Ledger) BackdateWaveSettlement(ctx context.Context, account, region string, wave int, at time.Time) error {
	return l.backdate(ctx, map[string]types.AttributeValue{attrPK: str(rolloutPK(account, region)), attrSK: str(wavePrefix + strconv.Itoa(wave))},
		"last_settled", at)
}

func (l *Ledger) backdate(ctx context.Context, key map[string]types.AttributeValue, attr string, at time.Time) error {
	if err := l.check(); err != nil {
		return err
	}
	_, err := l.API.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.Table),
		Key:                       key,
		UpdateExpression:          aws.String("SET #a = :at"),
		ConditionExpression:       aws.String("attribute_exists(#pk)"),
		ExpressionAttributeNames:  map[string]string{"#a": attr, "#pk": attrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":at": str(formatTime(at))},
	})
	if err != nil {
		return fmt.Errorf("ledger: backdating %s of %s in table %s: %w", attr, skOf(key), l.Table, err)
	}
	return nil
}
