package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// DynamoDBAPI is the part of the DynamoDB client the ledger uses (*dynamodb.Client
// satisfies it).
type DynamoDBAPI interface {
	GetItem(ctx context.Context, params *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, params *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, params *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, params *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, params *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// TTLAttribute is the attribute holding the expiry (Unix seconds) of decision items. The
// table's TimeToLiveSpecification must name it.
const TTLAttribute = decisionlog.TTLAttribute

// DecisionRetention is how long a decision item is kept after its last write, far longer
// than SQS can hold or redeliver a message (14 days at most).
const DecisionRetention = decisionlog.Retention

// Results of an outcome.
const (
	ResultEnforced         = "enforced"          // the target options were applied
	ResultDryRun           = "dry-run"           // EC2 accepted the change with DryRun=true
	ResultReported         = "reported"          // report mode: decided and logged only
	ResultTicketed         = "ticketed"          // a ticket was opened
	ResultDeferred         = "deferred"          // the deferral was recorded
	ResultAlreadyCompliant = "already-compliant" // the live instance already had HttpTokens=required
	ResultSuperseded       = "superseded"        // re-evaluation on live data changed the action
	ResultFailed           = "failed"            // the attempt failed; the decision may be retried
)

// Results lists every result.
var Results = []string{
	ResultEnforced, ResultDryRun, ResultReported, ResultTicketed,
	ResultDeferred, ResultAlreadyCompliant, ResultSuperseded, ResultFailed,
	ResultTicketUpdated, ResultTicketUnchanged, ResultTicketResolved,
	ResultVerified, ResultRolledBack, ResultSourceFixed,
}

var (
	// ErrDone means the decision was already fully processed: the message is done.
	ErrDone = errors.New("decision already processed")
	// ErrInProgress means another invocation holds an unexpired claim on the decision:
	// fail the message so that SQS delivers it again later.
	ErrInProgress = errors.New("decision is being processed by another invocation")
	// ErrNotRecorded means no decision with the message's id was ever recorded by detect
	// (package decisionlog): the message was not sent by detect, and nothing may be done
	// about it.
	ErrNotRecorded = errors.New("decision was not recorded by detect")
	// ErrAltered means a decision with the message's id was recorded, but for another
	// digest or instance: the message was changed on its way, or forged with a real id.
	ErrAltered = errors.New("message differs from the decision detect recorded")
)

// Ref names one instance.
type Ref = policy.Ref

// Ledger reads and writes the ledger table. The zero PageSize lets DynamoDB choose the
// page size (up to 1 MB) of History's queries.
type Ledger struct {
	API   DynamoDBAPI
	Table string
	// PageSize, when positive, is the Limit of each History query page.
	PageSize int32
}

// Snapshot is an instance's metadata options from before imdsguard first changed them.
type Snapshot struct {
	Ref
	Options    policy.MetadataOptions
	DecisionID string
	At         time.Time
}

// Outcome is what became of one decision, as recorded in the instance's history.
type Outcome struct {
	Ref
	DecisionID string
	At         time.Time
	Action     policy.Action // the verdict's action
	Result     string        // one of the Result* constants
	Mode       string
	Reasons    []policy.Reason
	// Prior are the options before the change and Applied those after it; nil when not
	// known or not relevant.
	Prior, Applied *policy.MetadataOptions
	Detail         string
	// Wave is the rollout wave of an enforced instance (policy.WaveOf), which its watch
	// keeps for the waves after it.
	Wave int
	// FixedVersion is the launch template version a source fix made (ResultSourceFixed):
	// verify watches the instances launched from it.
	FixedVersion int64
}

// Item layout constants; see the package documentation.
const (
	attrPK         = "pk"
	attrSK         = "sk"
	decisionPrefix = decisionlog.PartitionPrefix
	instancePrefix = "INSTANCE#"
	outcomePrefix  = "OUTCOME#"
	decisionSK     = decisionlog.SortKey
	snapshotSK     = "SNAPSHOT"

	typeDecision = decisionlog.TypeDecision
	typeOutcome  = "outcome"
	typeSnapshot = "snapshot"

	statusClaimed  = "claimed"
	statusReleased = "released"
	statusFailed   = "failed"
	statusDone     = "done"

	// timeLayout is RFC 3339 with a fixed nine-digit fraction, so that lexical order is
	// time order (time.RFC3339Nano drops trailing zeros). Times are formatted in UTC.
	timeLayout = decisionlog.TimeLayout

	// claimRetries bounds how often Claim re-tries when the item changed between its
	// conditional write and the read that explains why the write failed.
	claimRetries = 3
)

type optionsItem struct {
	HTTPTokens   string `dynamodbav:"http_tokens,omitempty"`
	HopLimit     int32  `dynamodbav:"hop_limit"`
	HTTPEndpoint string `dynamodbav:"http_endpoint,omitempty"`
	State        string `dynamodbav:"state,omitempty"`
}

type reasonItem struct {
	Code   string `dynamodbav:"code"`
	Detail string `dynamodbav:"detail,omitempty"`
}

// decisionItem is a decision item as the ledger reads it: what detect recorded, and what
// the claims and the outcome added.
type decisionItem struct {
	decisionlog.Item
	Attempts   int64  `dynamodbav:"attempts"`
	ClaimedAt  string `dynamodbav:"claimed_at"`
	ClaimToken string `dynamodbav:"claim_token"`
	Result     string `dynamodbav:"result"`
	RecordedAt string `dynamodbav:"recorded_at"`
	OutcomeSK  string `dynamodbav:"outcome_sk"`
}

// instanceItem is the key and the instance of an item in an instance's partition.
type instanceItem struct {
	PK         string `dynamodbav:"pk"`
	SK         string `dynamodbav:"sk"`
	Type       string `dynamodbav:"type"`
	AccountID  string `dynamodbav:"account_id"`
	Region     string `dynamodbav:"region"`
	InstanceID string `dynamodbav:"instance_id"`
}

// newInstanceItem is the key and instance of ref's item of the given sort key and type.
func newInstanceItem(ref Ref, sk, typ string) instanceItem {
	return instanceItem{PK: instancePK(ref), SK: sk, Type: typ, AccountID: ref.AccountID, Region: ref.Region, InstanceID: ref.InstanceID}
}

func (it instanceItem) ref() Ref {
	return Ref{AccountID: it.AccountID, Region: it.Region, InstanceID: it.InstanceID}
}

type outcomeItem struct {
	instanceItem
	DecisionID string       `dynamodbav:"decision_id"`
	At         string       `dynamodbav:"at"`
	Action     string       `dynamodbav:"action"`
	Result     string       `dynamodbav:"result"`
	Mode       string       `dynamodbav:"mode,omitempty"`
	Reasons    []reasonItem `dynamodbav:"reasons,omitempty"`
	Prior      *optionsItem `dynamodbav:"prior,omitempty"`
	Applied    *optionsItem `dynamodbav:"applied,omitempty"`
	Detail     string       `dynamodbav:"detail,omitempty"`
}

type snapshotItem struct {
	instanceItem
	DecisionID string      `dynamodbav:"decision_id"`
	At         string      `dynamodbav:"at"`
	Options    optionsItem `dynamodbav:"options"`
}

func (l *Ledger) check() error {
	if l == nil || l.API == nil {
		return errors.New("ledger: no DynamoDB client")
	}
	if l.Table == "" {
		return errors.New("ledger: no table name")
	}
	return nil
}

// get reads one item with a strongly consistent GetItem; nil when it does not exist.
func (l *Ledger) get(ctx context.Context, key map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	out, err := l.API.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.Table), Key: key, ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// validRef checks that a ref can be part of a key: every part set, none with a '#'.
func validRef(r Ref) error {
	for _, f := range []struct{ name, v string }{
		{"account id", r.AccountID}, {"region", r.Region}, {"instance id", r.InstanceID},
	} {
		if f.v == "" {
			return fmt.Errorf("instance %s: %s is empty", r.Name(), f.name)
		}
		if strings.Contains(f.v, "#") {
			return fmt.Errorf("instance %s: %s %q contains '#'", r.Name(), f.name, f.v)
		}
	}
	return nil
}

func validDecisionID(id string) error {
	if id == "" {
		return errors.New("decision id is empty")
	}
	if strings.Contains(id, "#") {
		return fmt.Errorf("decision id %q contains '#'", id)
	}
	return nil
}

func validTime(t time.Time) error {
	if t.IsZero() {
		return errors.New("time is the zero time")
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("time %v is outside years 1 to 9999", t)
	}
	return nil
}

func (o Outcome) valid() error {
	if err := validDecisionID(o.DecisionID); err != nil {
		return err
	}
	if err := validRef(o.Ref); err != nil {
		return fmt.Errorf("decision %s: %w", o.DecisionID, err)
	}
	if err := validTime(o.At); err != nil {
		return fmt.Errorf("decision %s: %w", o.DecisionID, err)
	}
	if !slices.Contains(Results, o.Result) {
		return fmt.Errorf("decision %s: result %q is not one of %s", o.DecisionID, o.Result, strings.Join(Results, ", "))
	}
	if o.Action == "" {
		return fmt.Errorf("decision %s: action is empty", o.DecisionID)
	}
	return nil
}

func instancePK(r Ref) string {
	return instancePrefix + r.AccountID + "#" + r.Region + "#" + r.InstanceID
}

func outcomeSK(at time.Time, decisionID string) string {
	return outcomePrefix + formatTime(at) + "#" + decisionID
}

func decisionKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(decisionPrefix + id), attrSK: str(decisionSK)}
}

func snapshotKey(r Ref) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(instancePK(r)), attrSK: str(snapshotSK)}
}

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// expiry is the TTL value of a decision item written at t.
func expiry(t time.Time) int64 { return t.Add(DecisionRetention).Unix() }

func requestToken(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:32] // ClientRequestToken allows 1 to 36 characters
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func toOptionsItem(o *policy.MetadataOptions) *optionsItem {
	if o == nil {
		return nil
	}
	return &optionsItem{HTTPTokens: o.HTTPTokens, HopLimit: o.HopLimit, HTTPEndpoint: o.HTTPEndpoint, State: o.State}
}

func (o *optionsItem) options() *policy.MetadataOptions {
	if o == nil {
		return nil
	}
	return &policy.MetadataOptions{HTTPTokens: o.HTTPTokens, HopLimit: o.HopLimit, HTTPEndpoint: o.HTTPEndpoint, State: o.State}
}

// newOutcomeItem is the history item of an outcome.
func newOutcomeItem(o Outcome) outcomeItem {
	hist := outcomeItem{
		instanceItem: newInstanceItem(o.Ref, outcomeSK(o.At, o.DecisionID), typeOutcome), DecisionID: o.DecisionID,
		At: formatTime(o.At), Action: string(o.Action), Result: o.Result, Mode: o.Mode,
		Prior: toOptionsItem(o.Prior), Applied: toOptionsItem(o.Applied), Detail: o.Detail,
	}
	for _, r := range o.Reasons {
		hist.Reasons = append(hist.Reasons, reasonItem{Code: string(r.Code), Detail: r.Detail})
	}
	return hist
}

func (it outcomeItem) outcome() (Outcome, error) {
	at, err := parseTime(it.At)
	if err != nil {
		return Outcome{}, fmt.Errorf("at: %w", err)
	}
	o := Outcome{
		Ref:        it.ref(),
		DecisionID: it.DecisionID, At: at, Action: policy.Action(it.Action), Result: it.Result, Mode: it.Mode,
		Prior: it.Prior.options(), Applied: it.Applied.options(), Detail: it.Detail,
	}
	for _, r := range it.Reasons {
		o.Reasons = append(o.Reasons, policy.Reason{Code: policy.ReasonCode(r.Code), Detail: r.Detail})
	}
	return o, nil
}

func (it snapshotItem) snapshot() (Snapshot, error) {
	at, err := parseTime(it.At)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot at: %w", err)
	}
	return Snapshot{
		Ref:        it.ref(),
		Options:    *it.Options.options(),
		DecisionID: it.DecisionID,
		At:         at,
	}, nil
}

func decodeSnapshot(item map[string]types.AttributeValue) (Snapshot, error) {
	var it snapshotItem
	if err := attributevalue.UnmarshalMap(item, &it); err != nil {
		return Snapshot{}, fmt.Errorf("decoding the snapshot: %w", err)
	}
	return it.snapshot()
}
