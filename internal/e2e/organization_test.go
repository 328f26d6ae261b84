package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

// The organization's hub (DESIGN.md section 11), end to end with the built bootstraps:
// moto keeps each account apart and lets the hub assume a role in each; the hub's
// detect, remediate and verify run with the hub's environment, as template.yaml sets it
// under IsHub.

// hub is a pipeline deployed as the organization's hub, with member accounts.
type hub struct {
	*pipeline
	unitsURL, unitsARN, unitsDLQ string
	// members are the organization's accounts besides the hub's, in creation order.
	members []string
	// ec2Of and cwOf are the clients of each account-region seeded or checked, by
	// "account/region".
	ec2Of map[string]*ec2.Client
	cwOf  map[string]*cloudwatch.Client
	// cloudWatch serves every account's metrics. moto's GetMetricData reads every
	// datapoint of the account for each query, so 30 instances of two weeks' hourly
	// metrics took it 5 seconds, and twice that under the CI's load: the time of a unit's
	// part went to the emulator. Instance ids are unique across accounts, so one
	// stand-in keeps each account's metrics apart as CloudWatch does.
	cloudWatch *fakeaws.CloudWatch
	verify     *function
}

// newHub deploys the hub in the organization's management account with n member
// accounts, and hubEnv added to its functions' environment.
func newHub(t *testing.T, mode string, n int, hubEnv map[string]string) *hub {
	t.Helper()
	h := &hub{ec2Of: map[string]*ec2.Client{}, cwOf: map[string]*cloudwatch.Client{}, cloudWatch: fakeaws.NewCloudWatch()}
	t.Cleanup(h.cloudWatch.Close)
	h.pipeline = newPipelineWith(t, mode, func(p *pipeline, env map[string]string) {
		env["AWS_ENDPOINT_URL_CLOUDWATCH"] = h.cloudWatch.URL
		org := organizations.NewFromConfig(p.cfg)
		if _, err := org.CreateOrganization(p.ctx, &organizations.CreateOrganizationInput{FeatureSet: orgtypes.OrganizationFeatureSetAll}); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			created, err := org.CreateAccount(p.ctx, &organizations.CreateAccountInput{
				AccountName: aws.String(fmt.Sprintf("member-%d", i)), Email: aws.String(fmt.Sprintf("member-%d@example.com", i))})
			if err != nil {
				t.Fatal(err)
			}
			status, err := org.DescribeCreateAccountStatus(p.ctx, &organizations.DescribeCreateAccountStatusInput{CreateAccountRequestId: created.CreateAccountStatus.Id})
			if err != nil {
				t.Fatal(err)
			}
			h.members = append(h.members, aws.ToString(status.CreateAccountStatus.AccountId))
		}
		// The units queue as template.yaml makes it: FIFO, with a FIFO dead-letter queue
		// after three receives.
		q := sqs.NewFromConfig(p.cfg)
		dlq, err := q.CreateQueue(p.ctx, &sqs.CreateQueueInput{QueueName: aws.String("units-dlq.fifo"),
			Attributes: map[string]string{"FifoQueue": "true"}})
		if err != nil {
			t.Fatal(err)
		}
		h.unitsDLQ = aws.ToString(dlq.QueueUrl)
		dlqARN := queueARN(t, p, h.unitsDLQ)
		units, err := q.CreateQueue(p.ctx, &sqs.CreateQueueInput{QueueName: aws.String("units.fifo"), Attributes: map[string]string{
			"FifoQueue": "true", "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId",
			"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":3}`, dlqARN),
		}})
		if err != nil {
			t.Fatal(err)
		}
		h.unitsURL = aws.ToString(units.QueueUrl)
		h.unitsARN = queueARN(t, p, h.unitsURL)
		env["IMDSGUARD_ORG_REGIONS"] = demo.Region
		env["IMDSGUARD_UNITS_QUEUE_URL"] = h.unitsURL
		for k, v := range hubEnv {
			env[k] = v
		}
	})
	h.verify = h.start("verify", bootstraps.verify, h.env)
	return h
}

func queueARN(t *testing.T, p *pipeline, url string) string {
	t.Helper()
	out, err := sqs.NewFromConfig(p.cfg).GetQueueAttributes(p.ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
}

// memberConfig is the configuration of a member account, through a role session in it,
// for seeding and checking the member's resources.
func memberConfig(base aws.Config, account string) aws.Config {
	cfg := base.Copy()
	cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(base),
		fmt.Sprintf("arn:aws:iam::%s:role/test-seed", account), func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = "seed" }))
	return cfg
}

// clientsOf returns the EC2 and CloudWatch clients of account in region, made once: the
// hub's own, or through a role session in a member.
func (h *hub) clientsOf(account, region string) (*ec2.Client, *cloudwatch.Client) {
	key := account + "/" + region
	if _, ok := h.ec2Of[key]; !ok {
		cfg := h.cfg.Copy()
		if account != hubAccountID {
			cfg = memberConfig(h.cfg, account)
		}
		cfg.Region = region
		h.ec2Of[key] = ec2.NewFromConfig(cfg)
		h.cwOf[key] = cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(h.cloudWatch.URL) })
	}
	return h.ec2Of[key], h.cwOf[key]
}

// hubAccountID is the hub's own account: moto's default, the pipeline's account.
const hubAccountID = account

// seed seeds copies of the named kinds in account, in the demo's region.
func (h *hub) seed(account string, copies int, kinds ...string) []demo.Seeded {
	h.t.Helper()
	return h.seedIn(account, demo.Region, copies, kinds...)
}

// seedIn seeds copies of the named kinds in account's region.
func (h *hub) seedIn(account, region string, copies int, kinds ...string) []demo.Seeded {
	h.t.Helper()
	now := time.Now().UTC()
	ec2Client, cw := h.clientsOf(account, region)
	seeded, err := demo.Seed(h.ctx, demo.Clients{EC2: ec2Client, CloudWatch: cw, CloudTrail: h.ct}, demo.KindsNamed(now, kinds...), copies, now)
	if err != nil {
		h.t.Fatal(err)
	}
	return seeded
}

func (h *hub) tokensOf(account, id string) string {
	h.t.Helper()
	return h.tokensIn(account, demo.Region, id)
}

func (h *hub) tokensIn(account, region, id string) string {
	h.t.Helper()
	ec2Client, _ := h.clientsOf(account, region)
	out, err := ec2Client.DescribeInstances(h.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		h.t.Fatal(err)
	}
	return string(out.Reservations[0].Instances[0].MetadataOptions.HttpTokens)
}

// unitsRun is what working the units queue to its end did.
type unitsRun struct {
	invocations int
	// units are every unit detect was handed, in order.
	units []message.Unit
	// failed are the message ids detect reported as failed.
	failed []string
}

// workUnits works the units queue as the event source mapping does, until it is empty:
// a batch of up to 10 is received (one message group's in-flight messages are not handed
// out again), detect is invoked with it, the messages it handled are deleted and those it
// reported failed made visible again at once. timeout is each invocation's.
func (h *hub) workUnits(timeout time.Duration) unitsRun {
	h.t.Helper()
	var run unitsRun
	q := sqs.NewFromConfig(h.cfg)
	for range 200 {
		got, err := q.ReceiveMessage(h.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(h.unitsURL), MaxNumberOfMessages: 10,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			h.t.Fatal(err)
		}
		if len(got.Messages) == 0 {
			return run
		}
		var batch events.SQSEvent
		for _, m := range got.Messages {
			batch.Records = append(batch.Records, events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
				Body: aws.ToString(m.Body), Attributes: m.Attributes, EventSource: "aws:sqs", EventSourceARN: h.unitsARN, AWSRegion: demo.Region})
			if u, err := message.ParseUnit(aws.ToString(m.Body)); err == nil {
				run.units = append(run.units, u)
			}
		}
		inv, err := h.detect.proc.InvokeWithOptions(h.ctx, mustJSON(h.t, batch), fakeaws.InvokeOptions{FunctionARN: h.detect.arn, Timeout: timeout})
		if err != nil {
			h.t.Fatalf("invoking detect with units: %v", err)
		}
		run.invocations++
		resp := decodeResponse[events.SQSEventResponse](h.t, inv)
		failed := map[string]bool{}
		for _, f := range resp.BatchItemFailures {
			failed[f.ItemIdentifier] = true
			run.failed = append(run.failed, f.ItemIdentifier)
		}
		for _, m := range got.Messages {
			if failed[aws.ToString(m.MessageId)] {
				_, err = q.ChangeMessageVisibility(h.ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(h.unitsURL), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
			} else {
				_, err = q.DeleteMessage(h.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(h.unitsURL), ReceiptHandle: m.ReceiptHandle})
			}
			if err != nil {
				h.t.Fatal(err)
			}
		}
	}
	h.t.Fatal("the units queue did not empty in 200 batches")
	return run
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

type hubSummary struct {
	Source  string   `json:"source"`
	Units   int      `json:"units"`
	Foreign []string `json:"foreign"`
}

// TestOrganizationSweepEndToEnd: the hub's sweep queues one unit per account-region of
// the organization; detect works each through the member's read role, in its own
// message group; remediate enforces the clean instances in their own accounts through the
// enforce role and tickets the IMDSv1 user; every instance ends with exactly one
// outcome, in its own account's ledger partition; and verify, run once for the whole
// organization, watches the members' enforcements.
func TestOrganizationSweepEndToEnd(t *testing.T) {
	const other = "eu-west-1"
	h := newHub(t, "enforce", 2, map[string]string{"IMDSGUARD_ORG_REGIONS": demo.Region + "," + other})
	a, b := h.members[0], h.members[1]
	seededA := h.seed(a, 1, "static-site", "legacy-v1")
	seededB := h.seedIn(b, other, 2, "static-site")
	own := h.seed(account, 1, "static-site")

	sum := decodeResponse[hubSummary](t, h.detect.invoke(t, h.ctx, json.RawMessage(`{"sweep": {}}`)))
	if sum.Units != 6 {
		t.Fatalf("the sweep queued %d units, want one for each of the 3 accounts in 2 regions: %+v", sum.Units, sum)
	}
	run := h.workUnits(0)
	groups := map[string]bool{}
	for _, u := range run.units {
		groups[u.GroupID()] = true
		if !u.Sweep || u.SweepID == "" {
			t.Errorf("unit %+v: want a sweep's, with the sweep's id", u)
		}
	}
	if len(groups) != 6 || len(run.failed) != 0 {
		t.Errorf("units in groups %v (failed %v), want one group per account-region and no failure", groups, run.failed)
	}
	h.remediateQueued()

	type want struct {
		account, region, id, tokens string
		result                      string
	}
	var wants []want
	for _, s := range seededA {
		if s.Kind.Name == "legacy-v1" {
			wants = append(wants, want{a, demo.Region, s.ID, "optional", ledger.ResultTicketed})
		} else {
			wants = append(wants, want{a, demo.Region, s.ID, "required", ledger.ResultEnforced})
		}
	}
	for _, s := range seededB {
		wants = append(wants, want{b, other, s.ID, "required", ledger.ResultEnforced})
	}
	wants = append(wants, want{account, demo.Region, own[0].ID, "required", ledger.ResultEnforced})
	for _, w := range wants {
		if got := h.tokensIn(w.account, w.region, w.id); got != w.tokens {
			t.Errorf("%s/%s/%s: HttpTokens %s, want %s", w.account, w.region, w.id, got, w.tokens)
		}
		hist, err := h.ledger.History(h.ctx, ledger.Ref{AccountID: w.account, Region: w.region, InstanceID: w.id})
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 1 || hist[0].Result != w.result {
			t.Errorf("%s/%s: history %+v, want exactly one outcome, %s", w.account, w.id, hist, w.result)
		}
	}

	// verify, once for the organization, watches every member's enforcements.
	vs := decodeResponse[struct {
		verifySummary
		AccountRegions int `json:"account_regions"`
	}](t, h.verify.invoke(t, h.ctx, json.RawMessage(`{}`)))
	if vs.AccountRegions != 6 || vs.Watched != 4 || vs.Verifying != 4 || vs.Failed != 0 {
		t.Errorf("verify over the organization: %+v, want 6 account-regions and the 4 enforcements watched, still verifying", vs)
	}
}

// TestOrganizationEventsEndToEnd: events about members' instances reach the hub's detect
// and become units of their account-regions: a burst about one account-region is one
// group, judged together in one invocation; an event about an excluded account is
// reported, not queued; and a member whose role cannot be assumed fails its own units,
// which reach the dead-letter queue after their retries, and no other.
func TestOrganizationEventsEndToEnd(t *testing.T) {
	h := newHub(t, "enforce", 3, nil)
	a, b, excluded := h.members[0], h.members[1], h.members[2]
	// The functions start before the members exist in newHub's hook; restart detect with
	// the exclusion and the refused role (the STS front refuses AssumeRole into b).
	if err := h.detect.proc.Stop(); err != nil {
		t.Fatal(err)
	}
	env := maps.Clone(h.env)
	env["IMDSGUARD_ORG_EXCLUDE_ACCOUNTS"] = excluded
	env["AWS_ENDPOINT_URL_STS"] = testsupport.DenyAssumeRole(t, h.motoURL, b)
	h.detect = h.start("detect", bootstraps.detect, env)

	seededA := h.seed(a, 3, "static-site")
	seededB := h.seed(b, 1, "static-site")
	seededX := h.seed(excluded, 1, "static-site")
	for _, s := range append(append(slices.Clone(seededA), seededB...), seededX...) {
		acct := a
		if slices.ContainsFunc(seededB, func(x demo.Seeded) bool { return x.ID == s.ID }) {
			acct = b
		} else if slices.ContainsFunc(seededX, func(x demo.Seeded) bool { return x.ID == s.ID }) {
			acct = excluded
		}
		sum := decodeResponse[hubSummary](t, h.detect.invoke(t, h.ctx, memberConfigEvent(s.ID, acct)))
		switch acct {
		case excluded:
			if sum.Units != 0 || len(sum.Foreign) != 1 || !strings.Contains(sum.Foreign[0], "excluded") {
				t.Errorf("the event about the excluded account: %+v, want it reported as excluded and no unit", sum)
			}
		default:
			if sum.Units != 1 {
				t.Errorf("the event about %s/%s queued %d units, want 1", acct, s.ID, sum.Units)
			}
		}
	}
	run := h.workUnits(0)
	// a's three events are one group, received together and judged in one invocation
	// (moto hands out a group's messages in one batch); b's unit fails its three receives.
	var aUnits, bFailures int
	for _, u := range run.units {
		if u.AccountID == a {
			aUnits++
		}
	}
	for range run.failed {
		bFailures++
	}
	if aUnits != 3 || bFailures != 3 {
		t.Errorf("a's units handed over %d times, b's failed %d times; want a's 3 once each and b's 3 times", aUnits, bFailures)
	}
	dead, err := sqs.NewFromConfig(h.cfg).ReceiveMessage(h.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(h.unitsDLQ), MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(dead.Messages) != 1 {
		t.Fatalf("%d units on the dead-letter queue, want b's one", len(dead.Messages))
	}
	if u, err := message.ParseUnit(aws.ToString(dead.Messages[0].Body)); err != nil || u.AccountID != b {
		t.Errorf("the dead unit is %+v (%v), want b's", u, err)
	}
	h.remediateQueued()
	for _, s := range seededA {
		if got := h.tokensOf(a, s.ID); got != "required" {
			t.Errorf("%s in a: %s, want required", s.ID, got)
		}
	}
	for acct, seeded := range map[string][]demo.Seeded{b: seededB, excluded: seededX} {
		for _, s := range seeded {
			if got := h.tokensOf(acct, s.ID); got != "optional" {
				t.Errorf("%s in %s: %s, want it untouched", s.ID, acct, got)
			}
		}
	}
}

// TestOrganizationUnitContinues: a unit that cannot finish before its invocation's
// deadline queues its continuation with the instances it left, in the same group, and
// nothing is deferred for lack of time: across all the parts every instance gets exactly
// one verdict, and each invocation stops judging two minutes before its deadline.
func TestOrganizationUnitContinues(t *testing.T) {
	h := newHub(t, "report", 1, nil)
	member := h.members[0]
	seeded := h.seed(member, 30, "web") // each needs a CloudTrail lookup, 1.8 a second: 17 seconds of them
	sum := decodeResponse[hubSummary](t, h.detect.invoke(t, h.ctx, json.RawMessage(`{"sweep": {}}`)))
	if sum.Units != 2 {
		t.Fatalf("the sweep queued %d units, want 2 (the hub's account and the member)", sum.Units)
	}
	// Each invocation has two minutes and 10 seconds: 10 seconds of judging, at most 19
	// lookups at 1.8 a second, so the member's 30 need at least two parts however fast
	// the rest is.
	run := h.workUnits(2*time.Minute + 10*time.Second)
	parts := map[int]bool{}
	for _, u := range run.units {
		if u.AccountID == member {
			parts[u.Part] = true
		}
	}
	if len(parts) < 2 || len(run.failed) != 0 {
		t.Errorf("the member's unit ran in parts %v (failed %v), want at least 2 parts and no failure", parts, run.failed)
	}
	verdicts := map[string]int{}
	for _, r := range h.receive(h.queueURL).Records {
		if v, err := message.Parse(r.Body); err == nil {
			verdicts[v.InstanceID]++
			if v.AccountID == member && v.Action == policy.ActionDefer {
				t.Errorf("%s deferred (%v): a unit's continuation must judge it instead", v.InstanceID, v.Reasons)
			}
		}
	}
	for _, s := range seeded {
		if verdicts[s.ID] != 1 {
			t.Errorf("%s got %d verdicts across the parts, want exactly 1", s.ID, verdicts[s.ID])
		}
	}
}

// memberConfigEvent is a Config compliance change about a member's instance, as the
// member's forwarding rule puts it on the hub's bus.
func memberConfigEvent(instanceID, account string) json.RawMessage {
	return json.RawMessage(strings.ReplaceAll(string(configEvent(instanceID)), "123456789012", account))
}

// TestOrganizationUnitWithoutTime: an invocation whose deadline leaves no time to judge
// (less than the unit's reserve) judges nothing and continues nothing: the unit fails,
// to be retried, and after its receives reaches the dead-letter queue; no verdict, least
// of all a defer for lack of time, is queued.
func TestOrganizationUnitWithoutTime(t *testing.T) {
	h := newHub(t, "report", 1, nil)
	member := h.members[0]
	seeded := h.seed(member, 2, "web")
	if _, err := h.queueUnit(member, demo.Region, seeded[0].ID, seeded[1].ID); err != nil {
		t.Fatal(err)
	}
	run := h.workUnits(time.Minute)
	if len(run.failed) != 3 || run.invocations != 3 {
		t.Errorf("%d invocations, %d failures; want the unit failed on each of its 3 receives", run.invocations, len(run.failed))
	}
	if got := h.receive(h.queueURL).Records; len(got) != 0 {
		t.Errorf("%d verdicts queued by units that had no time, want none", len(got))
	}
	dead, err := sqs.NewFromConfig(h.cfg).ReceiveMessage(h.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(h.unitsDLQ), MaxNumberOfMessages: 10})
	if err != nil || len(dead.Messages) != 1 {
		t.Fatalf("dead-letter queue: %d messages (%v), want the unit", len(dead.Messages), err)
	}
}

// queueUnit queues a unit of work about instances of account, as the hub's detect does.
func (h *hub) queueUnit(account, region string, ids ...string) (message.Unit, error) {
	u, err := message.NewUnit(account, region, "direct", "", false, ids, nil, time.Now())
	if err != nil {
		return u, err
	}
	body, err := u.Encode()
	if err != nil {
		return u, err
	}
	return u, h.sendUnit(string(body), u.GroupID(), u.DeduplicationID())
}

func (h *hub) sendUnit(body, group, dedup string) error {
	_, err := sqs.NewFromConfig(h.cfg).SendMessage(h.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(h.unitsURL), MessageBody: aws.String(body),
		MessageGroupId: aws.String(group), MessageDeduplicationId: aws.String(dedup)})
	return err
}

// TestOrganizationRefusesForgedUnits: units that did not come from the hub's own detect
// (the queue's policy lets no one else send, but the guard does not rely on it) are
// refused when they are malformed, name a region outside the organization's, or an
// excluded account, or came in another account-region's message group: each fails
// alone, reaches the dead-letter queue, and nothing is judged or assumed for it; the
// genuine unit beside them is judged.
func TestOrganizationRefusesForgedUnits(t *testing.T) {
	h := newHub(t, "report", 2, nil)
	a, excluded := h.members[0], h.members[1]
	if err := h.detect.proc.Stop(); err != nil {
		t.Fatal(err)
	}
	env := maps.Clone(h.env)
	env["IMDSGUARD_ORG_EXCLUDE_ACCOUNTS"] = excluded
	h.detect = h.start("detect", bootstraps.detect, env)
	seeded := h.seed(a, 1, "static-site")
	if _, err := h.queueUnit(a, demo.Region, seeded[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.queueUnit(a, "eu-west-1", seeded[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.queueUnit(excluded, demo.Region, seeded[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := h.sendUnit(`{"schema":"imdsguard.unit/v1","account_id":"`+a+`","sweep":true,"role":"admin"}`, "forged", "forged-1"); err != nil {
		t.Fatal(err)
	}
	// A genuine body in another account-region's group: it would run beside that group's
	// units, outside the one-at-a-time order of its own.
	misgrouped, err := message.NewUnit(a, demo.Region, "direct", "", false, []string{seeded[0].ID}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := misgrouped.Encode()
	if err := h.sendUnit(string(body), excluded+":"+demo.Region, "misgrouped"); err != nil {
		t.Fatal(err)
	}
	run := h.workUnits(0)
	if len(run.failed) != 4*3 {
		t.Errorf("%d failures, want each of the 4 forged units failed on its 3 receives", len(run.failed))
	}
	verdicts := h.receive(h.queueURL).Records
	if len(verdicts) != 1 {
		t.Errorf("%d verdicts queued, want the genuine unit's one", len(verdicts))
	}
	var dead int
	for {
		got, err := sqs.NewFromConfig(h.cfg).ReceiveMessage(h.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(h.unitsDLQ), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Messages) == 0 {
			break
		}
		for _, m := range got.Messages {
			dead++
			if _, err := sqs.NewFromConfig(h.cfg).DeleteMessage(h.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(h.unitsDLQ), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if dead != 4 {
		t.Errorf("%d units on the dead-letter queue, want the 4 forged ones", dead)
	}
}

// trailRow is one row of the organization trail's query, as Athena returns it.
type trailRow struct {
	account, region, instance, delivery, eventName, userAgent, sourceIP string
	deliveries                                                          int
	coverage                                                            bool
}

// setTrailResults gives moto the rows the next Athena query returns (moto runs no SQL:
// its results are set through its own API), with the header row Athena puts first.
func (h *hub) setTrailResults(rows []trailRow) {
	h.t.Helper()
	cell := func(v string) map[string]string { return map[string]string{"VarCharValue": v} }
	header := []map[string]string{}
	for _, c := range []string{"account_id", "region", "instance_id", "delivery", "event_name", "user_agent", "source_ip", "deliveries", "last_event", "coverage"} {
		header = append(header, cell(c))
	}
	data := []map[string]any{{"Data": header}}
	last := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	for _, r := range rows {
		coverage := "0"
		if r.coverage {
			coverage = "31"
		}
		data = append(data, map[string]any{"Data": []map[string]string{cell(r.account), cell(r.region), cell(r.instance), cell(r.delivery),
			cell(r.eventName), cell(r.userAgent), cell(r.sourceIP), cell(fmt.Sprint(r.deliveries)), cell(last), cell(coverage)}})
	}
	body := mustJSON(h.t, map[string]any{"account_id": account, "region": demo.Region, "results": []map[string]any{{"rows": data}}})
	resp, err := http.Post(h.motoDirect+"/moto-api/static/athena/query-results", "application/json", bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		h.t.Fatalf("setting moto's Athena results: %s", resp.Status)
	}
}

// TestOrganizationAthenaEvidence: with the organization trail's table configured, the
// sweep starts one Athena query and each unit reads its account-region's rows from it:
// the instance whose credentials were delivered over IMDSv1 is ticketed, naming the
// software, the clean ones are remediated, and no LookupEvents is made. An
// account-region the trail holds no event of defers its instances that need CloudTrail
// (cloudtrail-unavailable) rather than read "no delivery" as "no IMDSv1".
func TestOrganizationAthenaEvidence(t *testing.T) {
	h := newHub(t, "report", 2, map[string]string{"IMDSGUARD_TRAIL_DATABASE": "trail", "IMDSGUARD_TRAIL_TABLE": "cloudtrail_org"})
	covered, uncovered := h.members[0], h.members[1]
	web := h.seed(covered, 2, "web")
	sdk := h.seed(covered, 1, "sdk-v1")
	dark := h.seed(uncovered, 1, "web")
	rows := []trailRow{
		{account: covered, region: demo.Region, coverage: true},
		{account: account, region: demo.Region, coverage: true},
		{account: covered, region: demo.Region, instance: sdk[0].ID, delivery: "1.0", eventName: "GetObject", userAgent: "aws-sdk-java/1.11.0",
			sourceIP: sdk[0].PrivateIP, deliveries: 3},
		{account: covered, region: demo.Region, instance: sdk[0].ID, delivery: "2.0", deliveries: 40},
	}
	for _, s := range web {
		rows = append(rows, trailRow{account: covered, region: demo.Region, instance: s.ID, delivery: "2.0", deliveries: 12})
	}
	h.setTrailResults(rows)
	before := h.ct.Requests()

	sum := decodeResponse[hubSummary](t, h.detect.invoke(t, h.ctx, json.RawMessage(`{"sweep": {}}`)))
	if sum.Units != 3 {
		t.Fatalf("the sweep queued %d units, want 3", sum.Units)
	}
	run := h.workUnits(0)
	for _, u := range run.units {
		if u.TrailQuery == nil || u.TrailQuery.End.Sub(u.TrailQuery.Start) != 14*24*time.Hour {
			t.Errorf("unit %s/%s: trail query %+v, want the sweep's over the 14-day lookback", u.AccountID, u.Region, u.TrailQuery)
		}
	}
	if len(run.failed) != 0 {
		t.Errorf("failed units %v", run.failed)
	}
	if n := h.ct.Requests() - before; n != 0 {
		t.Errorf("%d LookupEvents requests with the trail's table configured, want none", n)
	}
	got := map[string]message.Verdict{}
	for _, r := range h.receive(h.queueURL).Records {
		if v, err := message.Parse(r.Body); err == nil {
			got[v.InstanceID] = v
		}
	}
	for _, s := range web {
		if v := got[s.ID]; v.Action != policy.ActionRemediate {
			t.Errorf("%s (clean in the trail): %s %v, want remediate", s.ID, v.Action, v.Reasons)
		}
	}
	if v := got[sdk[0].ID]; v.Action != policy.ActionTicket || v.Reasons[0].Code != policy.ReasonIMDSv1UsedCloudTrail ||
		!slices.Contains(v.Evidence.CloudTrail.UserAgents, "aws-sdk-java/1.11.0") {
		t.Errorf("%s (IMDSv1 in the trail): %+v, want a ticket for imdsv1-used-cloudtrail naming aws-sdk-java/1.11.0", sdk[0].ID, v)
	}
	if v := got[dark[0].ID]; v.Action != policy.ActionDefer || v.Reasons[0].Code != policy.ReasonCloudTrailUnavailable ||
		!strings.Contains(v.Reasons[0].Detail, "holds no event of "+uncovered) {
		t.Errorf("%s (its account-region not in the trail): %+v, want a defer for cloudtrail-unavailable saying so", dark[0].ID, v)
	}
}

// TestOrganizationLateUnitsQueuedAgain: a batch holds more account-regions than an
// invocation judges at once (4); those whose turn comes when less than a minute of its
// judging time is left are queued again as they are, not judged on no time and failed.
// Across the invocations every instance gets exactly one verdict, and no unit fails.
func TestOrganizationLateUnitsQueuedAgain(t *testing.T) {
	h := newHub(t, "report", 6, map[string]string{"IMDSGUARD_ORG_EXCLUDE_ACCOUNTS": account})
	var seeded []demo.Seeded
	for _, member := range h.members {
		seeded = append(seeded, h.seed(member, 10, "web")...)
	}
	if sum := decodeResponse[hubSummary](t, h.detect.invoke(t, h.ctx, json.RawMessage(`{"sweep": {}}`))); sum.Units != 6 {
		t.Fatalf("the sweep queued %d units, want one per member", sum.Units)
	}
	// 63 seconds of judging time: the first four account-regions start with more than a
	// minute of it, and take at least 5 seconds of lookups (10 at 1.8 a second), so the
	// last two start with less than a minute left.
	run := h.workUnits(2*time.Minute + 63*time.Second)
	if len(run.failed) != 0 {
		t.Errorf("failed units %v", run.failed)
	}
	again := 0
	for _, u := range run.units {
		if u.Part > 0 && u.Sweep {
			again++
		}
	}
	if again == 0 {
		t.Errorf("no unit was queued again: %d units handed over in %d invocations", len(run.units), run.invocations)
	}
	verdicts := map[string]int{}
	for _, r := range h.receive(h.queueURL).Records {
		if v, err := message.Parse(r.Body); err == nil {
			verdicts[v.InstanceID]++
		}
	}
	for _, s := range seeded {
		if verdicts[s.ID] != 1 {
			t.Errorf("%s got %d verdicts, want exactly 1", s.ID, verdicts[s.ID])
		}
	}
}
