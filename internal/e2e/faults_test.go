package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/cli"
	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/detect"
	"github.com/imdsguard/imdsguard/internal/emf"
	"github.com/imdsguard/imdsguard/internal/enforce"
	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/remediate"
	"github.com/imdsguard/imdsguard/internal/report"
	"github.com/imdsguard/imdsguard/internal/testsupport"
	"github.com/imdsguard/imdsguard/internal/testsupport/fleetwant"
	"github.com/imdsguard/imdsguard/internal/testsupport/schematest"
	"github.com/imdsguard/imdsguard/internal/ticket"
)

// faultSeeds is how many seeded fault plans each invariant test runs.
const faultSeeds = 8

// faultyKinds are the faults injected at random: every way a reply can be wrong, slow or
// missing, and a reply lost after the call took effect.
var faultyKinds = []fakeaws.FaultKind{
	fakeaws.FaultThrottle, fakeaws.FaultInternalError, fakeaws.FaultUnavailable, fakeaws.FaultReset,
	fakeaws.FaultResetAfterUpstream, fakeaws.FaultDelay, fakeaws.FaultTruncate, fakeaws.FaultTruncateEOF,
	fakeaws.FaultTruncateReset, fakeaws.FaultGarble, fakeaws.FaultEmpty200, fakeaws.FaultMissingResult,
	fakeaws.FaultBareResponse,
}

// randomPlan gives each operation key three fault kinds drawn from faultyKinds, with
// probabilities adding up to at most rate: some calls get through after retries, some
// fail for good, and which ones depends on the seed.
func randomPlan(seed uint64, rate float64, keys ...string) fakeaws.FaultPlan {
	rng := rand.New(rand.NewPCG(seed, 0x1d5))
	plan := fakeaws.FaultPlan{Seed: seed, Ops: map[string]fakeaws.OpFaults{}}
	for _, key := range keys {
		probs := map[fakeaws.FaultKind]float64{}
		for range 3 {
			probs[faultyKinds[rng.IntN(len(faultyKinds))]] += rate / 3
		}
		plan.Ops[key] = fakeaws.OpFaults{Probabilities: probs, Delay: 20 * time.Millisecond}
	}
	return plan
}

// faultWorld is the sample fleet, one instance of every kind, in moto (EC2, DynamoDB,
// SQS, SNS), the CloudWatch stand-in (metrics) and the CloudTrail stand-in.
type faultWorld struct {
	ctx   context.Context
	moto  *fakeaws.MotoServer
	cw    *fakeaws.CloudWatch
	ct    *fakeaws.CloudTrail
	now   time.Time
	fleet map[string]demo.Seeded // by instance id
	kinds map[string]demo.Kind   // by kind name
}

func newFaultWorld(t *testing.T) *faultWorld {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	w := &faultWorld{ctx: ctx, moto: testsupport.Moto(t), cw: fakeaws.NewCloudWatch(), ct: fakeaws.NewCloudTrail(),
		now: time.Now().UTC(), fleet: map[string]demo.Seeded{}, kinds: map[string]demo.Kind{}}
	t.Cleanup(w.cw.Close)
	t.Cleanup(w.ct.Close)
	cfg := fakeaws.AWSConfig(demo.Region)
	seeded, err := demo.Seed(ctx, demo.Clients{
		EC2:        ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(w.moto.URL) }),
		CloudWatch: cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(w.cw.URL) }),
		CloudTrail: w.ct,
	}, append(demo.Kinds(w.now), demo.GroupKinds()...), 1, w.now)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range seeded {
		w.fleet[s.ID] = s
		w.kinds[s.Kind.Name] = s.Kind
	}
	return w
}

// remediable reports whether the guard remediates the instance without faults.
func (w *faultWorld) remediable(id string) bool {
	return fleetwant.For(w.fleet[id].Kind.Name).Action == policy.ActionRemediate
}

// TestPlanUnderFaults runs `imdsguard plan` through fault proxies in front of every
// service, over many seeds, and holds it to its promise: it never says remediate for an
// instance that fault-free says otherwise, loses no instance, lists each once, and shows
// every fault that got through as a named evidence reason or a failed scope with exit 1.
func TestPlanUnderFaults(t *testing.T) {
	w := newFaultWorld(t)
	dir := t.TempDir()
	run := func(t *testing.T, ec2URL, cwURL, ctURL string) (int, *report.Plan, []byte, string) {
		t.Helper()
		for k, v := range demo.AWSEnv(ec2URL, ctURL, dir) {
			t.Setenv(k, v)
		}
		t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH", cwURL)
		out := filepath.Join(dir, "plan.json")
		os.Remove(out)
		var stdout, stderr bytes.Buffer
		code := cli.Main(w.ctx, []string{"plan", "--format", "json", "--cloudtrail-rps", "1000", "-o", out}, cli.Env{
			Stdout: &stdout, Stderr: &stderr, LookupEnv: os.LookupEnv, Now: func() time.Time { return w.now },
			AWS: testRetries,
		})
		doc, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("exit %d and no plan written: %v\n%s", code, err, stderr.String())
		}
		var plan report.Plan
		if err := json.Unmarshal(doc, &plan); err != nil {
			t.Fatalf("plan JSON: %v\n%s", err, doc)
		}
		return code, &plan, doc, stderr.String()
	}

	code, baseline, _, stderr := run(t, w.moto.URL, w.cw.URL, w.ct.URL)
	if code != cli.ExitOK {
		t.Fatalf("fault-free plan exited %d: %s", code, stderr)
	}
	want := map[string]report.Instance{}
	for _, in := range baseline.Instances {
		want[in.InstanceID] = in
		if (in.Action == policy.ActionRemediate) != w.remediable(in.InstanceID) {
			t.Fatalf("fault-free plan: %s (%s) is %s", in.InstanceID, w.fleet[in.InstanceID].Kind.Name, in.Action)
		}
	}
	if len(want) != len(w.fleet) {
		t.Fatalf("fault-free plan lists %d of %d instances", len(want), len(w.fleet))
	}
	fixedFaultFree := map[string]bool{}
	for _, s := range baseline.Sources {
		fixedFaultFree[s.ID] = s.Action == policy.SourceFix
	}
	if len(baseline.Sources) == 0 || !slices.ContainsFunc(baseline.Sources, func(s report.Source) bool { return s.Action == policy.SourceFix }) {
		t.Fatalf("fault-free plan: sources %+v, want web-lt's fix among them", baseline.Sources)
	}

	for seed := range uint64(faultSeeds) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			plan := randomPlan(seed, 0.35, "ec2:*", "cloudwatch:*", "cloudtrail:*")
			ec2p := testsupport.FaultProxyFor(t, w.moto.URL, plan)
			cwp := testsupport.FaultProxyFor(t, w.cw.URL, plan)
			ctp := testsupport.FaultProxyFor(t, w.ct.URL, plan)
			code, got, doc, stderr := run(t, ec2p.URL, cwp.URL, ctp.URL)
			schematest.ValidateAgainstSchema(t, "plan.schema.json", doc)

			failed := slices.ContainsFunc(got.Scopes, func(s report.Scope) bool { return s.Status == report.ScopeFailed })
			switch {
			case failed && code != cli.ExitFailure:
				t.Errorf("a failed scope, exit %d", code)
			case !failed && code != cli.ExitOK:
				t.Errorf("no failed scope, exit %d: %s", code, stderr)
			case failed && !strings.Contains(stderr, demo.Region):
				t.Errorf("the failed scope is not named on stderr: %s", stderr)
			}
			if failed {
				if len(got.Instances) != 0 {
					t.Errorf("a failed sweep lists %d instances", len(got.Instances))
				}
				return
			}
			// A source is fixed under faults only where it is fault-free; a sources read
			// that failed leaves them all out, and says so.
			for _, s := range got.Sources {
				if s.Action == policy.SourceFix && !fixedFaultFree[s.ID] {
					t.Errorf("UNSAFE: %s %s fix under faults, %s without", s.Kind, s.ID, "no fix")
				}
			}
			if len(got.Sources) == 0 && (len(got.Scopes) != 1 || got.Scopes[0].SourcesError == "") {
				t.Errorf("no sources and no sources_error: %+v", got.Scopes)
			}
			seen := map[string]int{}
			for _, in := range got.Instances {
				seen[in.InstanceID]++
				base, known := want[in.InstanceID]
				switch {
				case !known:
					t.Errorf("%s is not in the fleet", in.InstanceID)
				case in.Action == policy.ActionRemediate && base.Action != policy.ActionRemediate:
					t.Errorf("UNSAFE: %s (%s) remediate under faults, %s without", in.InstanceID, w.fleet[in.InstanceID].Kind.Name, base.Action)
				case in.Action != base.Action && !deferredOnEvidence(in):
					t.Errorf("%s (%s): %s under faults, %s without, and not deferred on evidence: %+v",
						in.InstanceID, w.fleet[in.InstanceID].Kind.Name, in.Action, base.Action, in.Reasons)
				}
			}
			for id := range want {
				if seen[id] != 1 {
					t.Errorf("%s (%s) is listed %d times", id, w.fleet[id].Kind.Name, seen[id])
				}
			}
		})
	}
}

func deferredOnEvidence(in report.Instance) bool {
	return in.Action == policy.ActionDefer && len(in.Reasons) > 0 &&
		(in.Reasons[0].Code == policy.ReasonEvidenceError || in.Reasons[0].Code == policy.ReasonCloudTrailUnavailable)
}

// testRetries keeps the production retryer but caps its backoff, so that a run with
// dozens of injected faults takes seconds.
var testRetries = awsapi.Options{RetryMaxBackoff: 20 * time.Millisecond}

// TestPipelineUnderFaults runs detect and remediate, in process and in enforce mode,
// with every AWS service they call behind a fault proxy, over many seeds. SQS delivery
// is simulated: a failed message is delivered again, up to the queue's receive limit,
// and then counts as on the dead-letter queue. Whatever the faults: no instance is
// enforced that fault-free is not remediated, every queued decision ends in exactly one
// outcome in the ledger or on the dead-letter queue, and no decision is recorded twice.
func TestPipelineUnderFaults(t *testing.T) {
	enforced := 0
	for seed := range uint64(faultSeeds) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			w := newFaultWorld(t)
			enforced += runPipelineUnderFaults(t, w, seed).enforced
		})
	}
	requireEnforcements(t, enforced)
}

// requireEnforcements fails a fault run that enforced nothing in any seed: its safety
// checks would then hold of a pipeline that never reaches ModifyInstanceMetadataOptions
// (as when remediate had no enforcement budget and deferred everything).
func requireEnforcements(t *testing.T, enforced int) {
	t.Helper()
	if enforced == 0 {
		t.Error("no seed enforced any instance: the run never tested enforcement under faults")
	}
	t.Logf("%d instances enforced over all seeds", enforced)
}

// maxReceives is the remediation queue's maxReceiveCount (template.yaml).
const maxReceives = 5

func runPipelineUnderFaults(t *testing.T, w *faultWorld, seed uint64) runTally {
	ctx := w.ctx
	direct := fakeaws.AWSConfig(demo.Region)
	direct.BaseEndpoint = aws.String(w.moto.URL)
	directEC2, directSQS, directDB := ec2.NewFromConfig(direct), sqs.NewFromConfig(direct), dynamodb.NewFromConfig(direct)
	res, err := demo.CreateResources(ctx, demo.ResourceClients{SQS: directSQS, DynamoDB: directDB, SNS: sns.NewFromConfig(direct)})
	if err != nil {
		t.Fatal(err)
	}
	dryRun, err := fakeaws.NewEC2DryRun(w.moto.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dryRun.Close)

	plan := randomPlan(seed, 0.25, "ec2:*", "cloudwatch:*", "cloudtrail:*", "dynamodb:*", "sqs:*", "sns:*")
	awsProxy := testsupport.FaultProxyFor(t, w.moto.URL, plan)
	ec2Proxy := testsupport.FaultProxyFor(t, dryRun.URL, plan)
	cwProxy := testsupport.FaultProxyFor(t, w.cw.URL, plan)
	ctProxy := testsupport.FaultProxyFor(t, w.ct.URL, plan)
	cfg := fakeaws.AWSConfig(demo.Region)
	cfg.BaseEndpoint = aws.String(awsProxy.URL)
	ec2Client := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(ec2Proxy.URL) })
	clients := guard.Clients{
		EC2:           ec2Client,
		CloudWatch:    cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(cwProxy.URL) }),
		CloudTrail:    cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) { o.BaseEndpoint = aws.String(ctProxy.URL) }),
		LookupLimiter: evidence.NewLookupLimiter(1000),
	}
	db := dynamodb.NewFromConfig(cfg)
	settings := policy.DefaultSettings()
	settings.Mode = policy.ModeEnforce
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	metrics := &emf.Emitter{W: io.Discard, Now: time.Now}
	clock := w.now
	now := func() time.Time { return clock }
	detector := &detect.Handler{
		Settings: settings, RuleMatch: "ec2-imdsv2-check", Region: demo.Region, Clients: clients,
		Queue: sqs.NewFromConfig(cfg), QueueURL: res.QueueURL, Decisions: &decisionlog.Log{API: db, Table: res.Table},
		Now: now, Log: log, Metrics: metrics,
	}
	remediator := &remediate.Handler{
		Settings: settings, Limits: policy.RecheckLimits{MaxAge: time.Hour, MaxClockSkew: time.Minute},
		ClaimTTL: 15 * time.Minute, Region: demo.Region, Clients: clients,
		Rollout:  policy.RolloutSettings{MaxPerHour: 100},
		Enforcer: &enforce.Enforcer{EC2: ec2Client, MaxWait: 5 * time.Second, FirstDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
		Ledger:   &ledger.Ledger{API: db, Table: res.Table},
		Tickets:  &ticket.SNS{API: sns.NewFromConfig(cfg), TopicARN: res.TopicARN},
		Now:      now, Log: log, Metrics: metrics,
	}
	defer func() {
		if t.Failed() {
			t.Logf("handler logs:\n%s", logs.String())
		}
	}()

	// detect: an asynchronous invocation that fails is retried twice by Lambda.
	for attempt := range 3 {
		if _, err := detector.Handle(ctx, account, json.RawMessage(`{"sweep": {}}`)); err == nil {
			break
		} else {
			t.Logf("detect attempt %d: %v", attempt+1, err)
		}
	}

	// remediate: every message on the queue, each redelivered after a failure, until the
	// receive limit; the SQS event source itself works (it is not imdsguard's code).
	var queued []events.SQSMessage
	for {
		batch, err := demo.Receive(ctx, directSQS, res.QueueURL, res.QueueARN, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch.Records) == 0 {
			break
		}
		queued = append(queued, batch.Records...)
	}
	pending, receives := queued, 0
	for receives < maxReceives && len(pending) > 0 {
		receives++
		var failed []events.SQSMessage
		for batch := range slices.Chunk(pending, 10) {
			resp, err := remediator.Handle(ctx, account, events.SQSEvent{Records: batch})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range resp.BatchItemFailures {
				i := slices.IndexFunc(batch, func(m events.SQSMessage) bool { return m.MessageId == f.ItemIdentifier })
				failed = append(failed, batch[i])
			}
		}
		pending = failed
		// SQS redelivers after the visibility timeout, by when any claim has expired.
		clock = clock.Add(remediator.ClaimTTL)
	}
	// The invariants, read straight from moto and the ledger, past the proxies.
	book := &ledger.Ledger{API: directDB, Table: res.Table}
	kinds := map[string]demo.Kind{}
	for id, s := range w.fleet {
		kinds[id] = s.Kind
	}
	tally := checkRun(t, kinds, queued, pending, func(id string) []ledger.Outcome {
		hist, err := book.History(ctx, ledger.Ref{AccountID: account, Region: demo.Region, InstanceID: id})
		if err != nil {
			t.Fatal(err)
		}
		return hist
	}, func(id string) string {
		out, err := directEC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		return string(out.Reservations[0].Instances[0].MetadataOptions.HttpTokens)
	})
	t.Logf("seed %d: %d messages queued, %d decisions recorded (%d enforced), %d on the dead-letter queue after %d receives; faults injected: %d",
		seed, len(queued), tally.recorded, tally.enforced, tally.onDLQ, receives,
		awsProxy.Faults("", fakeaws.FaultNone)+ec2Proxy.Faults("", fakeaws.FaultNone)+
			cwProxy.Faults("", fakeaws.FaultNone)+ctProxy.Faults("", fakeaws.FaultNone))
	return tally
}

// runTally counts what a run under faults came to.
type runTally struct {
	recorded int // decisions with an outcome
	onDLQ    int // decisions on the dead-letter queue
	enforced int // enforced outcomes
}

// checkRun holds a run under faults to the pipeline's invariants, given the fault-free
// kind of each instance, the messages detect queued and those still failing after the
// receive limit (on the dead-letter queue), and each instance's history and HttpTokens
// as they are now: no instance is enforced that fault-free is not remediated, every
// queued decision ends in exactly one outcome or on the dead-letter queue, no outcome
// belongs to a decision never queued.
func checkRun(t *testing.T, kinds map[string]demo.Kind, queued, dead []events.SQSMessage,
	history func(id string) []ledger.Outcome, tokens func(id string) string) runTally {
	t.Helper()
	// The sources the messages are about, by ledger subject, with their names.
	sourceNames := map[string]string{}
	decisionsOf := func(msgs []events.SQSMessage) map[string]int {
		out := map[string]int{}
		for _, m := range msgs {
			if message.SchemaOf(m.Body) == message.SourceSchema {
				v, err := message.ParseSource(m.Body)
				if err != nil {
					t.Fatalf("detect queued a source message remediate cannot parse: %v", err)
				}
				sourceNames[v.Subject()] = v.Name
				out[v.DecisionID]++
				continue
			}
			v, err := message.Parse(m.Body)
			if err != nil {
				t.Fatalf("detect queued a message remediate cannot parse: %v", err)
			}
			out[v.DecisionID]++
		}
		return out
	}
	// A reply lost after SendMessageBatch worked queues a message twice: copies > 1.
	copies, dlq := decisionsOf(queued), decisionsOf(dead)
	outcomes, enforced := map[string]int{}, 0
	t.Logf("%d sources in the queued messages: %v", len(sourceNames), sourceNames)
	for subject, name := range sourceNames {
		for _, o := range history(subject) {
			outcomes[o.DecisionID]++
			// Fault-free, only web-lt's instances all prove IMDSv1 unused.
			if o.Result == ledger.ResultSourceFixed && name != "web-lt" {
				t.Errorf("UNSAFE: %s (%s) fixed under faults; fault-free it is not", subject, name)
			}
		}
	}
	for id, kind := range kinds {
		expected := fleetwant.For(kind.Name)
		remediable := expected.Action == policy.ActionRemediate
		for _, o := range history(id) {
			outcomes[o.DecisionID]++
			if o.Result == ledger.ResultEnforced {
				enforced++
			}
			if o.Result == ledger.ResultEnforced && !remediable {
				t.Errorf("UNSAFE: %s (%s) enforced under faults; fault-free it is %s", id, kind.Name, expected.Action)
			}
		}
		if tokens(id) == policy.TokensRequired && !remediable && kind.Spec.HttpTokens != policy.TokensRequired {
			t.Errorf("UNSAFE: %s (%s) has HttpTokens required after the run; fault-free it is %s", id, kind.Name, expected.Action)
		}
	}
	for decision, n := range copies {
		switch got := outcomes[decision]; {
		case got > 1:
			t.Errorf("decision %s has %d outcomes", decision, got)
		case got == 1 && dlq[decision] > 0 && n == 1:
			t.Errorf("decision %s has an outcome and is on the dead-letter queue", decision)
		case got == 0 && dlq[decision] == 0:
			t.Errorf("decision %s was lost: no outcome and not on the dead-letter queue", decision)
		}
	}
	for decision := range outcomes {
		if copies[decision] == 0 {
			t.Errorf("an outcome for decision %s, which was never queued", decision)
		}
	}
	return runTally{recorded: len(outcomes), onDLQ: len(dlq), enforced: enforced}
}

// TestBootstrapsUnderFaults runs the built detect and remediate bootstraps, under the
// Runtime API harness and with their production AWS configuration, with every endpoint
// behind a fault proxy: the same invariants as TestPipelineUnderFaults, on the binaries
// as deployed. Fewer faults than in process: the production retryer backs off for real.
func TestBootstrapsUnderFaults(t *testing.T) {
	enforced := 0
	for seed := range uint64(2) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			plan := randomPlan(100+seed, 0.12, "ec2:*", "cloudwatch:*", "cloudtrail:*", "dynamodb:*", "sqs:*", "sns:*")
			var proxies []*fakeaws.FaultProxy
			p := newPipelineWith(t, "enforce", func(p *pipeline, env map[string]string) {
				dryRun, err := fakeaws.NewEC2DryRun(p.motoURL)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(dryRun.Close)
				others := testsupport.FaultProxyFor(t, p.motoURL, plan)
				ec2p := testsupport.FaultProxyFor(t, dryRun.URL, plan)
				ctp := testsupport.FaultProxyFor(t, env["AWS_ENDPOINT_URL_CLOUDTRAIL"], plan)
				proxies = append(proxies, others, ec2p, ctp)
				env["AWS_ENDPOINT_URL"] = others.URL
				env["AWS_ENDPOINT_URL_EC2"] = ec2p.URL
				env["AWS_ENDPOINT_URL_CLOUDTRAIL"] = ctp.URL
				// SQS redelivers after the visibility timeout, by when a claim has expired; the
				// test redelivers at once, so the claim lasts a millisecond.
				env["IMDSGUARD_CLAIM_TTL"] = "1ms"
			}, "web", "legacy-v1", "sdk-v1", "stolen-creds", "new", "endpoint-off", "eks-node",
				// Two Auto Scaling groups: web-lt is fixed fault-free, batch-lt never is.
				"asg-web", "asg-batch", "asg-batch-v1")

			for attempt := range 3 {
				if inv := p.detect.invoke(t, p.ctx, json.RawMessage(`{"sweep": {}}`)); inv.Err == nil {
					break
				} else {
					t.Logf("detect attempt %d: %s", attempt+1, inv.Err.Message)
				}
			}
			queued := p.receive(p.queueURL).Records
			pending := queued
			for receive := 0; receive < maxReceives && len(pending) > 0; receive++ {
				inv := p.remediate.invoke(t, p.ctx, events.SQSEvent{Records: pending})
				if inv.Err != nil {
					// The whole invocation failed: SQS delivers the batch again.
					continue
				}
				resp := decodeResponse[events.SQSEventResponse](t, inv)
				var failed []events.SQSMessage
				for _, f := range resp.BatchItemFailures {
					i := slices.IndexFunc(pending, func(m events.SQSMessage) bool { return m.MessageId == f.ItemIdentifier })
					failed = append(failed, pending[i])
				}
				pending = failed
			}

			kinds := map[string]demo.Kind{}
			for _, seeded := range p.fleet {
				kinds[seeded.ID] = seeded.Kind
			}
			tally := checkRun(t, kinds, queued, pending, p.history, func(id string) string {
				tokens, _ := p.options(id)
				return tokens
			})
			enforced += tally.enforced
			injected := 0
			for _, px := range proxies {
				injected += px.Faults("", fakeaws.FaultNone)
			}
			t.Logf("seed %d: %d messages queued, %d decisions recorded (%d enforced), %d on the dead-letter queue; faults injected: %d",
				seed, len(queued), tally.recorded, tally.enforced, tally.onDLQ, injected)
		})
	}
	requireEnforcements(t, enforced)
}

// TestPlanOnBrokenReplies: the symptoms the guard was once fooled by, each made to last
// for every call of one operation. An empty or resultless reply is never "nothing
// found": without DescribeInstances the region fails with exit 1 instead of listing no
// instance; without GetMetricData the instances defer on an evidence error instead of
// "insufficient metrics"; without LookupEvents those with an instance profile defer as
// cloudtrail-unavailable, the IMDSv1 users and the stolen credentials among them, instead
// of being remediated. A stalled endpoint ends at the call timeout.
func TestPlanOnBrokenReplies(t *testing.T) {
	w := newFaultWorld(t)
	dir := t.TempDir()
	always := func(op string, kind fakeaws.FaultKind) fakeaws.FaultPlan {
		return fakeaws.FaultPlan{Ops: map[string]fakeaws.OpFaults{op: {Probabilities: map[fakeaws.FaultKind]float64{kind: 1}}}}
	}
	for _, tc := range []struct {
		op      string
		kind    fakeaws.FaultKind
		exit    int
		deferAs policy.ReasonCode // every instance the fault-free plan remediates defers as this
	}{
		{"ec2:DescribeInstances", fakeaws.FaultEmpty200, cli.ExitFailure, ""},
		{"ec2:DescribeInstances", fakeaws.FaultMissingResult, cli.ExitFailure, ""},
		{"ec2:DescribeInstances", fakeaws.FaultStall, cli.ExitFailure, ""},
		{"cloudwatch:GetMetricData", fakeaws.FaultEmpty200, cli.ExitOK, policy.ReasonEvidenceError},
		{"cloudwatch:GetMetricData", fakeaws.FaultBareResponse, cli.ExitOK, policy.ReasonEvidenceError},
		{"cloudwatch:GetMetricData", fakeaws.FaultTruncate, cli.ExitOK, policy.ReasonEvidenceError},
		{"cloudtrail:LookupEvents", fakeaws.FaultEmpty200, cli.ExitOK, policy.ReasonCloudTrailUnavailable},
		{"cloudtrail:LookupEvents", fakeaws.FaultMissingResult, cli.ExitOK, policy.ReasonCloudTrailUnavailable},
		{"cloudtrail:LookupEvents", fakeaws.FaultGarble, cli.ExitOK, policy.ReasonCloudTrailUnavailable},
		{"cloudtrail:LookupEvents", fakeaws.FaultStall, cli.ExitOK, policy.ReasonCloudTrailUnavailable},
	} {
		t.Run(tc.op+"/"+string(tc.kind), func(t *testing.T) {
			urls := map[string]string{"ec2": w.moto.URL, "cloudwatch": w.cw.URL, "cloudtrail": w.ct.URL}
			service, _, _ := strings.Cut(tc.op, ":")
			urls[service] = testsupport.FaultProxyFor(t, urls[service], always(tc.op, tc.kind)).URL
			ec2URL, cwURL, ctURL := urls["ec2"], urls["cloudwatch"], urls["cloudtrail"]
			for k, v := range demo.AWSEnv(ec2URL, ctURL, dir) {
				t.Setenv(k, v)
			}
			t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH", cwURL)
			var stdout, stderr bytes.Buffer
			code := cli.Main(w.ctx, []string{"plan", "--format", "json", "--cloudtrail-rps", "1000", "--call-timeout", "1s"}, cli.Env{
				Stdout: &stdout, Stderr: &stderr, LookupEnv: os.LookupEnv, Now: func() time.Time { return w.now }, AWS: testRetries,
			})
			if code != tc.exit {
				t.Fatalf("exit %d, want %d: %s", code, tc.exit, stderr.String())
			}
			schematest.ValidateAgainstSchema(t, "plan.schema.json", stdout.Bytes())
			var plan report.Plan
			if err := json.Unmarshal(stdout.Bytes(), &plan); err != nil {
				t.Fatal(err)
			}
			if tc.deferAs == "" {
				if len(plan.Scopes) != 1 || plan.Scopes[0].Status != report.ScopeFailed || len(plan.Instances) != 0 {
					t.Errorf("scopes %+v with %d instances, want the region failed and no instance listed", plan.Scopes, len(plan.Instances))
				}
				if !strings.Contains(stderr.String(), demo.Region) {
					t.Errorf("stderr does not name the failed region: %s", stderr.String())
				}
				return
			}
			if len(plan.Instances) != len(w.fleet) {
				t.Fatalf("%d instances planned, want %d", len(plan.Instances), len(w.fleet))
			}
			for _, in := range plan.Instances {
				kind := w.fleet[in.InstanceID].Kind
				expected := fleetwant.For(kind.Name)
				if in.Action == policy.ActionRemediate && kind.Spec.InstanceProfileName != "" && tc.op == "cloudtrail:LookupEvents" ||
					in.Action == policy.ActionRemediate && tc.op == "cloudwatch:GetMetricData" && expected.Codes[0] != policy.ReasonEndpointDisabled {
					t.Errorf("UNSAFE: %s (%s) remediated without its evidence", in.InstanceID, kind.Name)
				}
				wantDefer := expected.Action == policy.ActionRemediate && expected.Codes[0] == policy.ReasonIMDSv1Unused &&
					(tc.op != "cloudtrail:LookupEvents" || kind.Spec.InstanceProfileName != "")
				if wantDefer && (in.Action != policy.ActionDefer || in.Reasons[0].Code != tc.deferAs) {
					t.Errorf("%s (%s): %s %+v, want defer %s", in.InstanceID, kind.Name, in.Action, in.Reasons, tc.deferAs)
				}
				if tc.op == "cloudtrail:LookupEvents" && (kind.Name == "sdk-v1" || kind.Name == "stolen-creds") &&
					(in.Action != policy.ActionDefer || in.Reasons[0].Code != policy.ReasonCloudTrailUnavailable) {
					t.Errorf("%s, an IMDSv1 user by CloudTrail alone: %s %+v, want cloudtrail-unavailable", kind.Name, in.Action, in.Reasons)
				}
			}
		})
	}
}
