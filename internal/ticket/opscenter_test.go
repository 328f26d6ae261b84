package ticket

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// testAWSSecret is the secret access key of the OpsCenter tests' client: no error may
// show it.
const testAWSSecret = "aws-secret-key-Vq7Xw2"

// newOpsCenter is the backend with a real SSM client against the OpsItems stand-in,
// retrying 3 times with 1ms waits.
func newOpsCenter(t *testing.T) (*fakeaws.OpsItems, *OpsCenter) {
	t.Helper()
	o := fakeaws.NewOpsItems()
	t.Cleanup(o.Close)
	cfg := fakeaws.AWSConfig("us-east-1")
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIDIMDSGUARDTEST", testAWSSecret, "")
	client := ssm.NewFromConfig(cfg, func(opt *ssm.Options) {
		opt.BaseEndpoint = aws.String(o.URL)
		opt.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 3
			so.RateLimiter = ratelimit.None
			so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		})
	})
	return o, &OpsCenter{API: client, Now: func() time.Time { return fixedNow }}
}

func dataValue(t *testing.T, rec fakeaws.OpsItemRecord, key, typ string) string {
	t.Helper()
	d, ok := rec.OperationalData[key]
	if !ok {
		t.Fatalf("OpsItem %s has no operational data %q", rec.OpsItemID, key)
	}
	if d.Type != typ {
		t.Errorf("operational data %q is %q, want %q", key, d.Type, typ)
	}
	return d.Value
}

func TestOpsCenterLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name     string
		v        message.Verdict
		dryRun   bool
		severity string
		arn      string
	}{
		{"metric", metricVerdict(), false, "3", "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc1234def567890"},
		{"cloudtrail", cloudTrailVerdict(), false, "2", "arn:aws:ec2:eu-west-1:123456789012:instance/i-0def1234abc567890"},
		{"theft dry-run", theftVerdict(), true, "1", "arn:aws:ec2:us-east-1:123456789012:instance/i-0fed1234abc567890"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, oc := newOpsCenter(t)
			ctx := testCtx(t)
			tk := NewTicket(tc.v, ComposeOptions{ExemptTag: testTag, DryRun: tc.dryRun})

			ref, err := oc.Open(ctx, tk)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			items := o.Items()
			if len(items) != 1 || items[0].OpsItemID != ref {
				t.Fatalf("after Open: %d OpsItems, want 1 with id %s", len(items), ref)
			}
			rec := items[0]
			if rec.Title != tk.Content.Title || rec.Source != "imdsguard" || rec.Category != "Security" || rec.Severity != tc.severity {
				t.Errorf("OpsItem title %q source %q category %q severity %q; want %q imdsguard Security %s",
					rec.Title, rec.Source, rec.Category, rec.Severity, tk.Content.Title, tc.severity)
			}
			if tc.dryRun != strings.HasPrefix(rec.Title, "[dry-run] ") {
				t.Errorf("title %q: dry-run prefix present = %v, want %v", rec.Title, !tc.dryRun, tc.dryRun)
			}
			if rec.Description != tk.Content.MarkdownWithin(2048) {
				t.Errorf("description is not the ticket's Markdown within 2048 bytes:\n%s", rec.Description)
			}
			if want := `{"dedupString":"` + tk.DedupKey() + `"}`; rec.DedupString != tk.DedupKey() ||
				dataValue(t, rec, "/aws/dedup", "SearchableString") != want {
				t.Errorf("dedup %q / %q, want %s", rec.DedupString, rec.OperationalData["/aws/dedup"].Value, want)
			}
			if len(rec.Resources) != 1 || rec.Resources[0] != tc.arn {
				t.Errorf("related resources %v, want [%s]", rec.Resources, tc.arn)
			}
			if got := dataValue(t, rec, "imdsguard:instance_id", "SearchableString"); got != tc.v.InstanceID {
				t.Errorf("imdsguard:instance_id %q", got)
			}
			if got := dataValue(t, rec, "imdsguard:evidence", "String"); got != tk.Content.Markdown() {
				t.Errorf("imdsguard:evidence is not the full Markdown:\n%s", got)
			}

			// The next sweep: OpsCenter's dedup returns the open OpsItem.
			again, err := oc.Open(ctx, NewTicket(tc.v, ComposeOptions{ExemptTag: testTag, DryRun: tc.dryRun}))
			if err != nil || again != ref {
				t.Fatalf("second Open = %q, %v; want %s", again, err, ref)
			}
			if items := o.Items(); len(items) != 1 || items[0].Duplicates != 1 {
				t.Fatalf("second Open created an OpsItem: %d items, %d duplicates", len(items), items[0].Duplicates)
			}

			// New evidence: a new user agent.
			nv := tc.v
			trail := tc.v.Evidence.Trail()
			trail.UserAgents = append(append([]string{}, trail.UserAgents...), "aws-sdk-php/3.100.0 GuzzleHttp/6")
			nv.Evidence.CloudTrail = &trail
			nt := NewTicket(nv, ComposeOptions{ExemptTag: testTag, DryRun: tc.dryRun})
			if err := oc.Update(ctx, ref, nt); err != nil {
				t.Fatalf("Update: %v", err)
			}
			rec = o.Items()[0]
			if rec.Description != nt.Content.MarkdownWithin(2048) || rec.Description == tk.Content.MarkdownWithin(2048) {
				t.Errorf("Update did not set the new description:\n%s", rec.Description)
			}
			if got := dataValue(t, rec, "imdsguard:evidence", "String"); got != nt.Content.Markdown() || !strings.Contains(got, "aws-sdk-php/3.100.0") {
				t.Errorf("Update did not set the new evidence")
			}
			if got := dataValue(t, rec, "imdsguard:updated_at", "String"); got != "2026-11-23T08:30:00Z" {
				t.Errorf("imdsguard:updated_at %q", got)
			}
			if rec.Status != "Open" || rec.Version != 2 || rec.DedupString != tk.DedupKey() {
				t.Errorf("after Update: status %s version %d dedup %q", rec.Status, rec.Version, rec.DedupString)
			}

			closing := Closing{AccountID: tc.v.AccountID, Region: tc.v.Region, InstanceID: tc.v.InstanceID,
				Why: "HttpTokens is now required.", DecisionID: "0192f0a1b2d00-fedcba9876543210", At: fixedNow, DryRun: tc.dryRun}
			if err := oc.Resolve(ctx, ref, closing); err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			rec = o.Items()[0]
			if rec.Status != "Resolved" {
				t.Errorf("after Resolve: status %s", rec.Status)
			}
			if got := dataValue(t, rec, "imdsguard:resolution", "String"); got != closing.Text() {
				t.Errorf("imdsguard:resolution %q, want %q", got, closing.Text())
			}

			// IMDSv1 comes back: a new OpsItem.
			next, err := oc.Open(ctx, tk)
			if err != nil {
				t.Fatalf("Open after Resolve: %v", err)
			}
			if items := o.Items(); next == ref || len(items) != 2 || items[1].OpsItemID != next || items[1].Status != "Open" {
				t.Fatalf("Open after Resolve = %s (first %s); %d OpsItems", next, ref, len(items))
			}
		})
	}
}

func TestOpsCenterOneItemPerInstance(t *testing.T) {
	o, oc := newOpsCenter(t)
	ctx := testCtx(t)
	refs := map[string]string{}
	for sweep := range 3 {
		for _, f := range fixtures() {
			ref, err := oc.Open(ctx, NewTicket(f.v, ComposeOptions{}))
			if err != nil {
				t.Fatalf("sweep %d, %s: %v", sweep, f.name, err)
			}
			if prev, ok := refs[f.name]; ok && prev != ref {
				t.Errorf("sweep %d, %s: ref %s, earlier %s", sweep, f.name, ref, prev)
			}
			refs[f.name] = ref
		}
	}
	if n := len(o.Items()); n != 3 {
		t.Errorf("%d OpsItems for 3 instances over 3 sweeps", n)
	}
}

// TestOpsCenterDuplicateWithoutID covers a duplicate reported without its OpsItemId:
// the backend finds the open OpsItem of this instance by its dedup string.
func TestOpsCenterDuplicateWithoutID(t *testing.T) {
	o, oc := newOpsCenter(t)
	ctx := testCtx(t)
	other, err := oc.Open(ctx, NewTicket(cloudTrailVerdict(), ComposeOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	tk := NewTicket(metricVerdict(), ComposeOptions{})
	ref, err := oc.Open(ctx, tk)
	if err != nil {
		t.Fatal(err)
	}
	o.SetFault(func(target string, _ map[string]any) *fakeaws.APIError {
		if target == "AmazonSSM.CreateOpsItem" {
			return &fakeaws.APIError{Code: "OpsItemAlreadyExistsException", Message: "The OpsItem already exists."}
		}
		return nil
	})
	got, err := oc.Open(ctx, tk)
	if err != nil || got != ref {
		t.Fatalf("Open = %q, %v; want %s (not %s)", got, err, ref, other)
	}
	if o.Requests("DescribeOpsItems") != 1 {
		t.Errorf("%d DescribeOpsItems calls", o.Requests("DescribeOpsItems"))
	}
	if err := oc.Resolve(ctx, ref, Closing{InstanceID: tk.Verdict.InstanceID, Why: "fixed", At: fixedNow}); err != nil {
		t.Fatal(err)
	}
	if _, err := oc.Open(ctx, tk); err == nil || !strings.Contains(err.Error(), "finds no open OpsItem") {
		t.Errorf("a duplicate of nothing open: %v", err)
	}
}

func TestOpsCenterLimits(t *testing.T) {
	ctx := testCtx(t)
	for _, tc := range []struct {
		name string
		v    message.Verdict
	}{{"30 long user agents", bigVerdict()}, {"and 30 long addresses", hugeVerdict()}} {
		t.Run(tc.name, func(t *testing.T) {
			o, oc := newOpsCenter(t)
			tk := NewTicket(tc.v, ComposeOptions{ExemptTag: testTag, DryRun: true})
			if _, err := oc.Open(ctx, tk); err != nil {
				t.Fatalf("Open: %v", err)
			}
			rec := o.Items()[0]
			if n := utf8.RuneCountInString(rec.Description); n > 2048 || !strings.Contains(rec.Description, tk.Verdict.DecisionID) {
				t.Errorf("description of %d characters, or without the footer", n)
			}
			ev := rec.OperationalData["imdsguard:evidence"].Value
			if len(ev) > 20000 || !strings.Contains(ev, "WARNING: possible credential theft") {
				t.Errorf("evidence of %d bytes, or without the warning", len(ev))
			}
			if full := tk.Content.Markdown(); len(full) > 20000 {
				if !strings.HasSuffix(ev, "operational data limit.\n") {
					t.Errorf("cut evidence does not say so: ...%s", ev[len(ev)-100:])
				}
			} else if ev != full {
				t.Errorf("evidence that fits was cut")
			}
		})
	}
	// A title over OpsCenter's 1024 characters is cut.
	tk := NewTicket(metricVerdict(), ComposeOptions{})
	tk.Content.Title = strings.Repeat("é", 1500)
	o, oc := newOpsCenter(t)
	if _, err := oc.Open(ctx, tk); err != nil {
		t.Fatalf("Open with a long title: %v", err)
	}
	if n := utf8.RuneCountInString(o.Items()[0].Title); n != 1024 {
		t.Errorf("title of %d characters", n)
	}
}

func TestOpsItemSeverity(t *testing.T) {
	unused := metricVerdict()
	unused.Action = policy.ActionRemediate
	unused.Reasons = []policy.Reason{{Code: policy.ReasonIMDSv1Unused}, {Code: policy.ReasonContainerHost}}
	theftOnly := metricVerdict()
	theftOnly.Reasons = append(theftOnly.Reasons, policy.Reason{Code: policy.ReasonPossibleCredentialTheft})
	for _, tc := range []struct {
		name string
		v    message.Verdict
		want string
	}{
		{"theft", theftVerdict(), "1"},
		{"theft after a metric reason", theftOnly, "1"},
		{"cloudtrail", cloudTrailVerdict(), "2"},
		{"metric", metricVerdict(), "3"},
		{"otherwise", unused, "4"},
	} {
		if got := OpsItemSeverity(Ticket{Verdict: tc.v}); got != tc.want {
			t.Errorf("%s: severity %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestInstanceARN(t *testing.T) {
	for _, tc := range []struct{ region, want string }{
		{"us-east-1", "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"},
		{"eu-west-3", "arn:aws:ec2:eu-west-3:123456789012:instance/i-0abc"},
		{"cn-north-1", "arn:aws-cn:ec2:cn-north-1:123456789012:instance/i-0abc"},
		{"cn-northwest-1", "arn:aws-cn:ec2:cn-northwest-1:123456789012:instance/i-0abc"},
		{"us-gov-west-1", "arn:aws-us-gov:ec2:us-gov-west-1:123456789012:instance/i-0abc"},
		{"us-iso-east-1", "arn:aws-iso:ec2:us-iso-east-1:123456789012:instance/i-0abc"},
		{"us-isob-east-1", "arn:aws-iso-b:ec2:us-isob-east-1:123456789012:instance/i-0abc"},
	} {
		if got := InstanceARN("123456789012", tc.region, "i-0abc"); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.region, got, tc.want)
		}
	}
}

func TestOpsCenterOutage(t *testing.T) {
	unavailable := fakeaws.APIError{Code: "ServiceUnavailable", Message: "Service is unavailable.", Status: http.StatusServiceUnavailable}
	tk := NewTicket(theftVerdict(), ComposeOptions{})
	closing := Closing{InstanceID: tk.Verdict.InstanceID, Why: "fixed", At: fixedNow}

	t.Run("503 then success", func(t *testing.T) {
		o, oc := newOpsCenter(t)
		ctx := testCtx(t)
		o.FailNext(1, unavailable)
		ref, err := oc.Open(ctx, tk)
		if err != nil {
			t.Fatalf("Open after one 503: %v", err)
		}
		if o.Requests("CreateOpsItem") != 2 || len(o.Items()) != 1 {
			t.Errorf("%d CreateOpsItem requests, %d OpsItems", o.Requests("CreateOpsItem"), len(o.Items()))
		}
		o.FailNext(2, fakeaws.OpsItemsThrottling)
		if err := oc.Update(ctx, ref, tk); err != nil {
			t.Errorf("Update after two throttles: %v", err)
		}
		o.FailNext(1, fakeaws.OpsItemsInternalError)
		if err := oc.Resolve(ctx, ref, closing); err != nil {
			t.Errorf("Resolve after a 500: %v", err)
		}
	})

	t.Run("persistent failures", func(t *testing.T) {
		o, oc := newOpsCenter(t)
		ctx := testCtx(t)
		ref, err := oc.Open(ctx, tk)
		if err != nil {
			t.Fatal(err)
		}
		calls := []struct {
			call string
			do   func() error
		}{
			{"ssm:CreateOpsItem", func() error { _, err := oc.Open(ctx, tk); return err }},
			{"ssm:UpdateOpsItem (new evidence)", func() error { return oc.Update(ctx, ref, tk) }},
			{"ssm:UpdateOpsItem (resolve)", func() error { return oc.Resolve(ctx, ref, closing) }},
		}
		for _, c := range calls {
			o.SetFault(func(string, map[string]any) *fakeaws.APIError { return &unavailable })
			before := o.Requests("")
			err := c.do()
			o.ClearFaults()
			if err == nil {
				t.Fatalf("%s succeeded through a persistent 503", c.call)
			}
			for _, want := range []string{c.call, tk.Verdict.InstanceID, "503", "ServiceUnavailable"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s error lacks %q: %v", c.call, want, err)
				}
			}
			if n := o.Requests("") - before; n != 3 {
				t.Errorf("%s: %d attempts, want the retryer's 3", c.call, n)
			}
		}
	})

	t.Run("access denied", func(t *testing.T) {
		o, oc := newOpsCenter(t)
		o.FailNext(1, fakeaws.OpsItemsAccessDenied)
		_, err := oc.Open(testCtx(t), tk)
		if err == nil || !strings.Contains(err.Error(), "OpsItemAccessDeniedException") || !strings.Contains(err.Error(), "ssm:CreateOpsItem") {
			t.Fatalf("Open denied: %v", err)
		}
		if strings.Contains(err.Error(), testAWSSecret) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), testAWSSecret) {
			t.Errorf("error shows the secret key: %v", err)
		}
		if o.Requests("CreateOpsItem") != 1 {
			t.Errorf("access denied was retried")
		}
	})
}

func TestOpsCenterEvidenceCut(t *testing.T) {
	tk := NewTicket(hugeVerdict(), ComposeOptions{})
	full := tk.Content.Markdown()
	got := opsItemEvidence(tk.Content)
	if len(full) <= opsItemMaxDataValue {
		t.Fatalf("the huge verdict's Markdown (%d bytes) fits: the test needs a bigger one", len(full))
	}
	if len(got) > opsItemMaxDataValue || !strings.HasPrefix(full, strings.TrimSuffix(got, opsItemEvidenceCutLabel)) {
		t.Errorf("cut evidence of %d bytes is not a prefix of the full one", len(got))
	}
}
