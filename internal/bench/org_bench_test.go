package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// BenchmarkOrganization (make bench-org) sweeps an organization from its hub with the
// built detect and remediate bootstraps, twice: with LookupEvents, then with the
// organization trail's Athena query. The hub's account is moto's default; the members
// are accounts moto's Organizations makes, reached through AssumeRole, each with its own
// EC2 state. IMDSGUARD_BENCH_ORG=AxRxN sets the accounts, regions per account and
// instances per account-region (default 50x2x100, every instance with an instance
// profile, one in ten using IMDSv1 by CloudTrail).
//
// The event source mappings are played by pollers: orgDetectPollers detect processes
// on the FIFO units queue (one message group at a time, as Lambda's FIFO mapping) and
// orgRemediatePollers remediate processes on the verdict queue, each invocation with
// Lambda's 900-second timeout. The functions' AWS calls are counted by proxies in front
// of moto and the CloudWatch and CloudTrail stand-ins; the pollers' own receives and
// deletes, which the event source mappings make, are not.
func BenchmarkOrganization(b *testing.B) {
	accounts, regionsPer, perRegion := orgScale(b)
	// The full size took 24 minutes on 2 cores; the limit leaves room for slower machines.
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Minute)
	defer cancel()
	root := moduleRoot(b)
	// moto's TransactWriteItems deep-copies the whole ledger table once per item, which
	// at this size costs seconds and gigabytes a call: testdata/motopatch makes it back up
	// only the items it names (see its sitecustomize.py).
	patch := filepath.Join(root, "internal", "bench", "testdata", "motopatch")
	if p := os.Getenv("PYTHONPATH"); p != "" {
		patch += string(os.PathListSeparator) + p
	}
	b.Setenv("PYTHONPATH", patch)
	moto := startMoto(b)
	// The ledger and the queues have a moto of their own: one moto_server routes every
	// request under one lock, and the remediate phase alone makes tens of thousands.
	queues := startMoto(b)
	dir := b.TempDir()
	detectBin, err := fakeaws.BuildLambda(ctx, filepath.Join(root, "functions", "detect"), filepath.Join(dir, "detect"))
	if err != nil {
		b.Fatal(err)
	}
	remediateBin, err := fakeaws.BuildLambda(ctx, filepath.Join(root, "functions", "remediate"), filepath.Join(dir, "remediate"))
	if err != nil {
		b.Fatal(err)
	}

	o := seedOrganization(b, ctx, moto, queues, accounts, orgRegions[:regionsPer], perRegion)
	defer o.close()
	fmt.Printf("organization: %d member accounts x %d regions x %d instances = %d instances, seeded in %s\n",
		accounts, regionsPer, perRegion, len(o.instances), o.seedTime.Round(time.Second))

	if os.Getenv(orgRemediateEnv) == "0" {
		remediateBin = ""
		fmt.Println("remediate left out (" + orgRemediateEnv + "=0): every instance is checked for exactly one decision per sweep")
	}
	lookups := o.run(b, ctx, "LookupEvents", detectBin, remediateBin, nil)
	o.setTrailResults(b)
	athenaRun := o.run(b, ctx, "Athena", detectBin, remediateBin, map[string]string{
		"IMDSGUARD_TRAIL_DATABASE": "trail", "IMDSGUARD_TRAIL_TABLE": "cloudtrail_org"})
	printOrgTable(os.Stdout, len(o.instances), []*orgResult{lookups, athenaRun})
	for _, r := range []*orgResult{lookups, athenaRun} {
		if r.problems != "" {
			b.Errorf("%s sweep: %s", r.name, r.problems)
		}
	}
}

// orgRegions are the regions of the members, in the order IMDSGUARD_BENCH_ORG takes them.
var orgRegions = []string{"us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2"}

const (
	orgScaleEnv = "IMDSGUARD_BENCH_ORG"
	// orgRemediateEnv=0 leaves remediate out: each instance is then checked for exactly
	// one decision of detect's per sweep, for a quicker run of detect's side alone.
	orgRemediateEnv     = "IMDSGUARD_BENCH_ORG_REMEDIATE"
	orgDetectPollers    = 10
	orgRemediatePollers = 8
	// lambdaTimeout is the functions' timeout in template.yaml; deadlineMargin is how
	// close to it no invocation may come (issue 11).
	lambdaTimeout  = 900 * time.Second
	deadlineMargin = 60 * time.Second
	// slowInvocation is how long an invocation runs before its log is printed: a detect
	// invocation of ten account-regions of 100 lookups each takes about three minutes.
	slowInvocation = 5 * time.Minute
)

func orgScale(b *testing.B) (accounts, regions, instances int) {
	b.Helper()
	v := os.Getenv(orgScaleEnv)
	if v == "" {
		return 50, 2, 100
	}
	parts := strings.Split(v, "x")
	if len(parts) == 3 {
		a, err1 := strconv.Atoi(parts[0])
		r, err2 := strconv.Atoi(parts[1])
		n, err3 := strconv.Atoi(parts[2])
		if err1 == nil && err2 == nil && err3 == nil && a >= 1 && a <= 200 && r >= 1 && r <= len(orgRegions) && n >= 10 && n <= 1000 {
			return a, r, n
		}
	}
	b.Fatalf("%s=%q: want ACCOUNTSxREGIONSxINSTANCES, as 50x2x100 (1-200 accounts, 1-%d regions, 10-1000 instances)", orgScaleEnv, v, len(orgRegions))
	return 0, 0, 0
}

// orgInstance is one seeded instance and what it must end as.
type orgInstance struct {
	fakeaws.SeededInstance
	account, region string
	v1              bool // its credentials were delivered over IMDSv1: a ticket
}

// org is the seeded organization and the hub's resources.
type org struct {
	moto       *fakeaws.MotoServer
	queues     *fakeaws.MotoServer // the ledger's, the queues' and the topic's
	hubCfg     aws.Config
	queuesCfg  aws.Config
	members    []string
	regions    []string
	instances  map[string]*orgInstance
	cloudWatch *fakeaws.CloudWatch
	cloudTrail *fakeaws.CloudTrail
	res        demo.Resources
	unitsURL   string
	unitsARN   string
	seedTime   time.Duration

	mu      sync.Mutex
	lookups []lookupAt
}

type lookupAt struct {
	at       time.Time
	instance string
}

func (o *org) observeLookup(r fakeaws.LookupRequest) *fakeaws.APIError {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lookups = append(o.lookups, lookupAt{at: time.Now(), instance: r.AttributeValue})
	return nil
}

func (o *org) close() {
	o.cloudWatch.Close()
	o.cloudTrail.Close()
}

// seedOrganization makes the organization with its member accounts, seeds perRegion
// instances in each of their regions, their metrics in a CloudWatch stand-in and their
// credential deliveries in a CloudTrail stand-in, and the hub's resources in moto.
func seedOrganization(b *testing.B, ctx context.Context, moto, queues *fakeaws.MotoServer, accounts int, regions []string, perRegion int) *org {
	b.Helper()
	start := time.Now()
	hub := fakeaws.AWSConfig(region)
	hub.BaseEndpoint = aws.String(moto.DirectURL)
	queuesCfg := fakeaws.AWSConfig(region)
	queuesCfg.BaseEndpoint = aws.String(queues.DirectURL)
	o := &org{moto: moto, queues: queues, hubCfg: hub, queuesCfg: queuesCfg, regions: regions, instances: map[string]*orgInstance{}}
	orgs := organizations.NewFromConfig(hub)
	if _, err := orgs.CreateOrganization(ctx, &organizations.CreateOrganizationInput{FeatureSet: orgtypes.OrganizationFeatureSetAll}); err != nil {
		b.Fatal(err)
	}
	for i := range accounts {
		created, err := orgs.CreateAccount(ctx, &organizations.CreateAccountInput{
			AccountName: aws.String(fmt.Sprintf("member-%03d", i)), Email: aws.String(fmt.Sprintf("member-%03d@example.com", i))})
		if err != nil {
			b.Fatal(err)
		}
		status, err := orgs.DescribeCreateAccountStatus(ctx, &organizations.DescribeCreateAccountStatusInput{CreateAccountRequestId: created.CreateAccountStatus.Id})
		if err != nil {
			b.Fatal(err)
		}
		o.members = append(o.members, aws.ToString(status.CreateAccountStatus.AccountId))
	}
	o.cloudWatch = fakeaws.NewCloudWatch()
	o.cloudTrail = fakeaws.NewCloudTrail()
	o.cloudTrail.SetFault(o.observeLookup) // observes only: never fails a request
	now := time.Now().UTC()
	hour := now.Truncate(time.Hour)
	var events []fakeaws.Event
	for _, account := range o.members {
		for _, r := range regions {
			cfg := hub.Copy()
			cfg.Region = r
			cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(hub),
				fmt.Sprintf("arn:aws:iam::%s:role/bench-seed", account)))
			seeded, err := fakeaws.SeedInstances(ctx, ec2.NewFromConfig(cfg), fakeaws.InstanceSpec{Count: perRegion,
				HttpTokens: policy.TokensOptional, HopLimit: 1, InstanceProfileName: instanceProfile})
			if err != nil {
				b.Fatalf("seeding %s/%s: %v", account, r, err)
			}
			for i, s := range seeded {
				inst := &orgInstance{SeededInstance: s, account: account, region: r, v1: i%10 == 9}
				o.instances[s.ID] = inst
				o.cloudWatch.PutPoints(fakeaws.MetadataNoTokenNamespace, fakeaws.MetadataNoTokenMetric,
					map[string]string{fakeaws.MetadataNoTokenDimension: s.ID}, fakeaws.HourlyPoints(hour.Add(time.Hour), 336, zeros))
				version := "2.0"
				if inst.v1 {
					version = "1.0"
				}
				events = append(events, fakeaws.RoleDeliveryEvent(fakeaws.RoleDelivery{InstanceID: s.ID, RoleName: instanceProfile,
					Delivery: version, EventName: "GetObject", UserAgent: userAgent(version), SourceIP: s.PrivateIP, Time: now.Add(-2 * time.Hour)}))
			}
		}
	}
	slices.SortStableFunc(events, func(a, b fakeaws.Event) int { return a.EventTime.Compare(b.EventTime) })
	for _, ev := range events {
		o.cloudTrail.AddEvent(ev)
	}
	res, err := demo.CreateResources(ctx, demo.ResourceClients{SQS: sqs.NewFromConfig(queuesCfg), DynamoDB: dynamodb.NewFromConfig(queuesCfg), SNS: sns.NewFromConfig(queuesCfg)})
	if err != nil {
		b.Fatal(err)
	}
	o.res = res
	q := sqs.NewFromConfig(queuesCfg)
	// The queues' visibility timeouts outlast any invocation (SQS's default of 30 seconds
	// handed verdicts that slow invocations still held to others, which found them
	// claimed), but are shorter than template.yaml's six times the function's timeout: a
	// receive whose reply moto lost under this load leaves its messages in flight, and a
	// full-size run once waited on 32 such verdicts with nothing else to do. They come
	// back after the timeout, as from SQS, and are counted as redelivered.
	if _, err := q.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(res.QueueURL),
		Attributes: map[string]string{"VisibilityTimeout": fmt.Sprint(int(benchVisibility["remediate"].Seconds()))}}); err != nil {
		b.Fatal(err)
	}
	units, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("imdsguard-units.fifo"), Attributes: map[string]string{
		"FifoQueue": "true", "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId",
		"VisibilityTimeout": fmt.Sprint(int(benchVisibility["detect"].Seconds()))}})
	if err != nil {
		b.Fatal(err)
	}
	o.unitsURL = aws.ToString(units.QueueUrl)
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: units.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		b.Fatal(err)
	}
	o.unitsARN = attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	o.seedTime = time.Since(start)
	return o
}

// setTrailResults gives moto's Athena the organization trail's answer for the next
// query (moto runs no SQL): a coverage row per member account-region and a row per
// instance and delivery kind, as the query groups them.
func (o *org) setTrailResults(b *testing.B) {
	b.Helper()
	cell := func(v string) map[string]string { return map[string]string{"VarCharValue": v} }
	rowOf := func(values ...string) map[string]any {
		data := make([]map[string]string, len(values))
		for i, v := range values {
			data[i] = cell(v)
		}
		return map[string]any{"Data": data}
	}
	last := time.Now().UTC().Add(-2 * time.Hour).Format(time.RFC3339)
	rows := []map[string]any{rowOf("account_id", "region", "instance_id", "delivery", "event_name", "user_agent", "source_ip", "deliveries", "last_event", "coverage")}
	for _, account := range o.members {
		for _, r := range o.regions {
			rows = append(rows, rowOf(account, r, "", "", "", "", "", "1000", last, "31"))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(o.instances)) {
		inst := o.instances[id]
		if inst.v1 {
			rows = append(rows, rowOf(inst.account, inst.region, id, "1.0", "GetObject", userAgent("1.0"), inst.PrivateIP, "1", last, "0"))
		} else {
			rows = append(rows, rowOf(inst.account, inst.region, id, "2.0", "", "", "", "1", last, "0"))
		}
	}
	body, err := json.Marshal(map[string]any{"account_id": "123456789012", "region": region, "results": []map[string]any{{"rows": rows}}})
	if err != nil {
		b.Fatal(err)
	}
	resp, err := http.Post(o.moto.DirectURL+"/moto-api/static/athena/query-results", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("setting moto's Athena results: %s", resp.Status)
	}
}

// orgResult is one sweep of the organization.
type orgResult struct {
	name        string
	wall        time.Duration
	calls       map[string]map[string]int // by function and operation, the functions' own
	invocations map[string]int            // by function
	longest     map[string]time.Duration
	peakLookups int // the most LookupEvents of one account-region in one second
	peakScope   string
	outcomes    map[string]int // results, one per instance
	// redelivered counts the messages received more than once, by function: failed, or
	// lost in flight (see benchVisibility).
	redelivered map[string]int
	problems    string
}

// benchVisibility is each queue's visibility timeout: over the longest invocation a
// healthy run has (remediate's took 85 seconds at 4,000 instances; detect's is its 900
// second timeout), and far under template.yaml's 5,400 seconds.
var benchVisibility = map[string]time.Duration{"remediate": 5 * time.Minute, "detect": lambdaTimeout + time.Minute}

// run sweeps the organization once with fresh function processes and works both queues
// to their end.
func (o *org) run(b *testing.B, ctx context.Context, name, detectBin, remediateBin string, extra map[string]string) *orgResult {
	b.Helper()
	// Each function's calls go through proxies of its own, which count them.
	envOf := map[string]map[string]string{}
	var proxies = map[string][]*fakeaws.FaultProxy{}
	for _, function := range []string{"detect", "remediate"} {
		motoProxy := fakeaws.StartFaultProxy(o.moto.URL, fakeaws.FaultPlan{})
		queuesProxy := fakeaws.StartFaultProxy(o.queues.DirectURL, fakeaws.FaultPlan{})
		cwProxy := fakeaws.StartFaultProxy(o.cloudWatch.URL, fakeaws.FaultPlan{})
		ctProxy := fakeaws.StartFaultProxy(o.cloudTrail.URL, fakeaws.FaultPlan{})
		proxies[function] = []*fakeaws.FaultProxy{motoProxy, queuesProxy, cwProxy, ctProxy}
		for _, p := range proxies[function] {
			defer p.Close()
		}
		env := demo.AWSEnv(motoProxy.URL, ctProxy.URL, b.TempDir())
		env["AWS_ENDPOINT_URL_CLOUDWATCH"] = cwProxy.URL
		for _, service := range []string{"SQS", "DYNAMODB", "SNS"} {
			env["AWS_ENDPOINT_URL_"+service] = queuesProxy.URL
		}
		env["IMDSGUARD_MODE"] = "report"
		env["IMDSGUARD_QUEUE_URL"] = o.res.QueueURL
		env["IMDSGUARD_LEDGER_TABLE"] = o.res.Table
		env["IMDSGUARD_TOPIC_ARN"] = o.res.TopicARN
		env["IMDSGUARD_ORG_REGIONS"] = strings.Join(o.regions, ",")
		env["IMDSGUARD_UNITS_QUEUE_URL"] = o.unitsURL
		// The hub's own account has no instances; it is left out of the sweeps.
		env["IMDSGUARD_ORG_EXCLUDE_ACCOUNTS"] = "123456789012"
		maps.Copy(env, extra)
		envOf[function] = env
	}
	o.mu.Lock()
	lookupsBefore := len(o.lookups)
	o.mu.Unlock()

	detects := startPool(b, ctx, detectBin, envOf["detect"], orgDetectPollers)
	var remediates []*fakeaws.LambdaProcess
	if remediateBin != "" {
		remediates = startPool(b, ctx, remediateBin, envOf["remediate"], orgRemediatePollers)
	}
	defer stopPool(append(slices.Clone(detects), remediates...))
	r := &orgResult{name: name, invocations: map[string]int{}, longest: map[string]time.Duration{}, outcomes: map[string]int{}, redelivered: map[string]int{}}
	var problems []string
	var mu sync.Mutex
	record := func(function string, d time.Duration, problem string) {
		mu.Lock()
		defer mu.Unlock()
		r.invocations[function]++
		r.longest[function] = max(r.longest[function], d)
		if problem != "" && len(problems) < 10 {
			problems = append(problems, problem)
		}
	}

	start := time.Now()
	sweep, err := detects[0].InvokeWithOptions(ctx, []byte(`{"sweep": {}}`), fakeaws.InvokeOptions{Timeout: lambdaTimeout, FunctionARN: hubARN("detect")})
	if err != nil || sweep.Err != nil {
		b.Fatalf("the sweep: %v %+v\n%s", err, sweep.Err, detects[0].Logs())
	}
	record("detect (sweep)", time.Since(start), "")

	var inflight, detecting sync.WaitGroup
	var busy sync.Mutex
	active := map[string]int{} // invocations running, by function
	detectsDone := make(chan struct{})
	q := sqs.NewFromConfig(o.queuesCfg)
	// A poller stops when its queue is empty and none of its function's invocations runs:
	// detect's units come only from the sweep and from detect itself, remediate's verdicts
	// only from detect, so remediate stops only after detect. The queue is asked only
	// then: moto counts a queue's messages by scanning all of them, and ten detect pollers
	// asking about 10,000 waiting verdicts once a second kept its CPU busy, slowing
	// remediate to 2 verdicts a second.
	finished := func(url, function string) bool {
		if function == "remediate" {
			select {
			case <-detectsDone:
			default:
				return false
			}
		}
		busy.Lock()
		idle := active[function] == 0
		busy.Unlock()
		return idle && o.empty(ctx, q, url)
	}
	// moto's ReceiveMessage is not atomic: two at once can both hand out a message of one
	// FIFO group (seen once in a small run: one account-region judged twice at once). SQS
	// and Lambda's FIFO mapping never do, so the units are received one call at a time.
	var receiveUnits sync.Mutex
	poll := func(url, arn string, proc *fakeaws.LambdaProcess, function string) {
		defer inflight.Done()
		for {
			if url == o.unitsURL {
				receiveUnits.Lock()
			}
			got, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
				MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
			if url == o.unitsURL {
				receiveUnits.Unlock()
			}
			if err != nil {
				record(function, 0, err.Error())
				return
			}
			if len(got.Messages) == 0 {
				if finished(url, function) {
					return
				}
				continue
			}
			busy.Lock()
			active[function]++
			for _, m := range got.Messages {
				if m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)] != "1" {
					r.redelivered[function]++
				}
			}
			busy.Unlock()
			var batch events.SQSEvent
			for _, m := range got.Messages {
				batch.Records = append(batch.Records, events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
					Body: aws.ToString(m.Body), Attributes: m.Attributes, EventSource: "aws:sqs", EventSourceARN: arn, AWSRegion: region})
			}
			payload, _ := json.Marshal(batch)
			began := time.Now()
			// An invocation this long is stuck or about to miss the deadline margin: its
			// process's log tells why.
			slow := time.AfterFunc(slowInvocation, func() {
				logs := proc.Logs()
				fmt.Fprintf(os.Stderr, "a %s invocation has run for %s; the end of its process's log:\n%s\n", function,
					time.Since(began).Round(time.Second), logs[max(0, len(logs)-4000):])
			})
			inv, err := proc.InvokeWithOptions(ctx, payload, fakeaws.InvokeOptions{Timeout: lambdaTimeout, FunctionARN: hubARN(function)})
			slow.Stop()
			took := time.Since(began)
			failed := map[string]bool{}
			problem := ""
			switch {
			case err != nil:
				problem = err.Error()
			case inv.Err != nil:
				problem = inv.Err.Type + ": " + inv.Err.Message
			default:
				var resp events.SQSEventResponse
				if err := json.Unmarshal(inv.Response, &resp); err != nil {
					problem = "response: " + err.Error()
				}
				for _, f := range resp.BatchItemFailures {
					failed[f.ItemIdentifier] = true
					problem = fmt.Sprintf("%s reported %d failed messages", function, len(resp.BatchItemFailures))
				}
			}
			record(function, took, problem)
			for _, m := range got.Messages {
				if problem != "" && (err != nil || inv.Err != nil || failed[aws.ToString(m.MessageId)]) {
					_, _ = q.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
					continue
				}
				_, _ = q.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
			}
			busy.Lock()
			active[function]--
			busy.Unlock()
		}
	}
	for _, p := range detects {
		inflight.Add(1)
		detecting.Add(1)
		go func() {
			defer detecting.Done()
			poll(o.unitsURL, o.unitsARN, p, "detect")
		}()
	}
	go func() {
		detecting.Wait()
		close(detectsDone)
	}()
	for _, p := range remediates {
		inflight.Add(1)
		go poll(o.res.QueueURL, o.res.QueueARN, p, "remediate")
	}
	inflight.Wait()
	r.wall = time.Since(start)

	r.calls = map[string]map[string]int{}
	for function, ps := range proxies {
		r.calls[function] = map[string]int{}
		for _, p := range ps {
			for _, op := range p.Ops() {
				r.calls[function][op] += p.Requests(op)
			}
		}
	}
	// The peak of LookupEvents per account-region in any one second, from the stand-in.
	o.mu.Lock()
	seen := slices.Clone(o.lookups[lookupsBefore:])
	o.mu.Unlock()
	byScope := map[string][]time.Time{}
	for _, l := range seen {
		if inst := o.instances[l.instance]; inst != nil {
			byScope[inst.account+"/"+inst.region] = append(byScope[inst.account+"/"+inst.region], l.at)
		}
	}
	for scope, times := range byScope {
		for i := range times {
			n := 1
			for j := i + 1; j < len(times) && times[j].Sub(times[i]) < time.Second; j++ {
				n++
			}
			if n > r.peakLookups {
				r.peakLookups, r.peakScope = n, scope
			}
		}
	}
	// Every instance ends with exactly one more outcome (ledgerRows).
	read, verb := o.outcomes, "reported"
	if remediateBin == "" {
		read, verb = o.decisions, "decided"
	}
	outcomes, err := read(ctx)
	if err != nil {
		b.Fatal(err)
	}
	want := 1
	if name != "LookupEvents" {
		want = 2
	}
	wrong := 0
	for id, inst := range o.instances {
		h := outcomes[id]
		if len(h) != want {
			wrong++
			continue
		}
		last := h[len(h)-1]
		if last.Result == "" {
			last.Result = verb
		}
		r.outcomes[last.Action+" "+last.Result]++
		if (last.Action == string(policy.ActionTicket)) != inst.v1 {
			wrong++
		}
	}
	if wrong > 0 {
		problems = append(problems, fmt.Sprintf("%d instances without exactly one new outcome of the action their evidence calls for", wrong))
	}
	for function, d := range r.longest {
		if d > lambdaTimeout-deadlineMargin {
			problems = append(problems, fmt.Sprintf("a %s invocation took %s, within %s of its deadline", function, d, deadlineMargin))
		}
	}
	if r.peakLookups > awsLookupsPerSecond {
		problems = append(problems, fmt.Sprintf("%d LookupEvents in one second in %s, above the quota of %d", r.peakLookups, r.peakScope, awsLookupsPerSecond))
	}
	if name != "LookupEvents" && len(seen) > 0 {
		problems = append(problems, fmt.Sprintf("%d LookupEvents with the trail's table", len(seen)))
	}
	r.problems = strings.Join(problems, "; ")
	return r
}

// outcomeRow is what the bench reads of an outcome, or of a decision, in the ledger.
type outcomeRow struct {
	SK         string `dynamodbav:"sk"`
	DecisionID string `dynamodbav:"decision_id"`
	InstanceID string `dynamodbav:"instance_id"`
	Action     string `dynamodbav:"action"`
	Result     string `dynamodbav:"result"`
}

// outcomes reads every outcome in the ledger, by instance, oldest first.
func (o *org) outcomes(ctx context.Context) (map[string][]outcomeRow, error) {
	return o.ledgerRows(ctx, "sk", "OUTCOME#", func(r outcomeRow) string { return r.SK })
}

// decisions reads every decision detect recorded in the ledger, by instance, oldest
// first (a decision id sorts by its time), as outcome rows without a result.
func (o *org) decisions(ctx context.Context) (map[string][]outcomeRow, error) {
	out, err := o.ledgerRows(ctx, "pk", "DECISION#", func(r outcomeRow) string { return r.DecisionID })
	for _, rows := range out {
		for i := range rows {
			rows[i].Result = ""
		}
	}
	return out, err
}

// ledgerRows reads the ledger's items whose key attribute begins with prefix, with one
// Scan (moto answers a Query by reading the whole table, which 10,000 would each pay),
// by instance, in the order of orderBy.
func (o *org) ledgerRows(ctx context.Context, attribute, prefix string, orderBy func(outcomeRow) string) (map[string][]outcomeRow, error) {
	out := map[string][]outcomeRow{}
	pages := dynamodb.NewScanPaginator(dynamodb.NewFromConfig(o.queuesCfg), &dynamodb.ScanInput{
		TableName:                 aws.String(o.res.Table),
		FilterExpression:          aws.String("begins_with(#key, :prefix)"),
		ExpressionAttributeNames:  map[string]string{"#key": attribute},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":prefix": &ddbtypes.AttributeValueMemberS{Value: prefix}},
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		var rows []outcomeRow
		if err := attributevalue.UnmarshalListOfMaps(page.Items, &rows); err != nil {
			return nil, err
		}
		for _, r := range rows {
			out[r.InstanceID] = append(out[r.InstanceID], r)
		}
	}
	for _, rows := range out {
		slices.SortFunc(rows, func(a, b outcomeRow) int { return strings.Compare(orderBy(a), orderBy(b)) })
	}
	return out, nil
}

// empty reports whether the queue holds no message, visible or in flight.
func (o *org) empty(ctx context.Context, q *sqs.Client, url string) bool {
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		return false
	}
	return out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)] == "0" &&
		out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)] == "0"
}

func hubARN(function string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:123456789012:function:imdsguard-%s", region, function)
}

// startPool starts n processes of a function's bootstrap, each with its runtime API.
func startPool(b *testing.B, ctx context.Context, bin string, env map[string]string, n int) []*fakeaws.LambdaProcess {
	b.Helper()
	var out []*fakeaws.LambdaProcess
	for range n {
		api, err := fakeaws.NewRuntimeAPI()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(api.Close)
		p, err := fakeaws.StartLambda(ctx, bin, api, env)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func stopPool(procs []*fakeaws.LambdaProcess) {
	for _, p := range procs {
		_ = p.Stop()
	}
}

func printOrgTable(w io.Writer, instances int, results []*orgResult) {
	tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nsweep\twall\tcalls/instance detect + remediate\tLookupEvents\tpeak LookupEvents/s (account-region)\tlongest detect / remediate (deadline %s)\tinvocations detect / remediate\toutcomes\n", lambdaTimeout)
	for _, r := range results {
		sum := func(function string) int {
			total := 0
			for _, n := range r.calls[function] {
				total += n
			}
			return total
		}
		var outcomes []string
		for _, k := range slices.Sorted(maps.Keys(r.outcomes)) {
			outcomes = append(outcomes, fmt.Sprintf("%s %d", k, r.outcomes[k]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f + %.2f\t%d\t%d (%s)\t%s / %s\t%d / %d\t%s\n", r.name, r.wall.Round(time.Second),
			float64(sum("detect"))/float64(instances), float64(sum("remediate"))/float64(instances), r.calls["detect"][opLookupEvents], r.peakLookups, r.peakScope,
			r.longest["detect"].Round(100*time.Millisecond), r.longest["remediate"].Round(100*time.Millisecond),
			r.invocations["detect"], r.invocations["remediate"], strings.Join(outcomes, ", "))
	}
	tw.Flush()
	for _, r := range results {
		fmt.Fprintf(w, "%s sweep: messages received again (failed, or lost in flight for the visibility timeout): detect %d, remediate %d\n",
			r.name, r.redelivered["detect"], r.redelivered["remediate"])
	}
	for _, r := range results {
		for _, function := range []string{"detect", "remediate"} {
			fmt.Fprintf(w, "\n%s sweep, %s's calls by operation (per instance):\n", r.name, function)
			for _, op := range slices.Sorted(maps.Keys(r.calls[function])) {
				fmt.Fprintf(w, "  %-45s %7d  %.3f\n", op, r.calls[function][op], float64(r.calls[function][op])/float64(instances))
			}
		}
	}
}
