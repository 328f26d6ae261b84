package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/report"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

// memberConfig is an AWS configuration for account, through a session of the role, as
// plan makes one: moto keeps each account's resources apart by the session's account.
func memberConfig(motoURL, account, role string) aws.Config {
	base := fakeaws.AWSConfig(demo.Region)
	base.BaseEndpoint = aws.String(motoURL)
	cfg := base.Copy()
	cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(base),
		fmt.Sprintf("arn:aws:iam::%s:role/%s", account, role), func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = "seed" }))
	return cfg
}

// seedMember seeds the named kinds of the sample fleet in account.
func (w *world) seedMember(t *testing.T, account string, kinds ...string) []demo.Seeded {
	t.Helper()
	cfg := memberConfig(w.moto.URL, account, DefaultRoleName)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seeded, err := demo.Seed(ctx, demo.Clients{EC2: ec2.NewFromConfig(cfg), CloudWatch: cloudwatch.NewFromConfig(cfg), CloudTrail: w.cloudTrail},
		demo.KindsNamed(w.now, kinds...), 1, w.now)
	if err != nil {
		t.Fatal(err)
	}
	return seeded
}

// TestPlanAccounts plans two member accounts through their role sessions, in two
// regions, a few scopes at once: every scope names its account, every instance is in its
// own account's scope, each account-region reads its own sources, and the calls include
// one AssumeRole per account.
func TestPlanAccounts(t *testing.T) {
	w := newWorld(t, "already-v2")
	a := w.seedMember(t, "222222222222", "web", "legacy-v1")
	b := w.seedMember(t, "333333333333", "static-site")
	p := w.plan(t, "--accounts", "222222222222,333333333333", "--region", demo.Region, "--region", "eu-west-1", "--concurrency", "3")

	var scopes []string
	for _, s := range p.Scopes {
		if s.AccountID == nil || s.Status != report.ScopeOK {
			t.Errorf("scope %+v: want its account named, and ok", s)
			continue
		}
		scopes = append(scopes, *s.AccountID+"/"+s.Region)
	}
	if want := []string{"222222222222/us-east-1", "222222222222/eu-west-1", "333333333333/us-east-1", "333333333333/eu-west-1"}; !slices.Equal(scopes, want) {
		t.Errorf("scopes %v, want %v in that order", scopes, want)
	}
	accountOf := map[string]string{}
	for _, in := range p.Instances {
		accountOf[in.InstanceID] = in.AccountID
	}
	for account, seeded := range map[string][]demo.Seeded{"222222222222": a, "333333333333": b} {
		for _, s := range seeded {
			if accountOf[s.ID] != account {
				t.Errorf("%s (%s) planned in account %q, want %s", s.ID, s.Kind.Name, accountOf[s.ID], account)
			}
		}
	}
	if len(p.Instances) != len(a)+len(b) {
		t.Errorf("%d instances, want the members' %d (the configured account's own are not planned)", len(p.Instances), len(a)+len(b))
	}
	if p.APICalls["sts:AssumeRole"] != 2 || p.APICalls["ec2:DescribeInstances"] != 4 || p.APICalls["ec2:GetInstanceMetadataDefaults"] != 4 {
		t.Errorf("api_calls %v, want one AssumeRole per account and one inventory and defaults read per account-region", p.APICalls)
	}
	defaults := 0
	for _, s := range p.Sources {
		if s.Kind == "account-defaults" {
			defaults++
		}
	}
	if defaults != 4 {
		t.Errorf("%d account-defaults sources, want one per account-region", defaults)
	}
}

// TestPlanAccountWithoutRole: an account whose role cannot be assumed fails its own
// scopes, visibly, and no other.
func TestPlanAccountWithoutRole(t *testing.T) {
	w := newWorld(t)
	w.seedMember(t, "222222222222", "web")
	t.Setenv("AWS_ENDPOINT_URL_STS", testsupport.DenyAssumeRole(t, w.moto.URL, "333333333333"))
	code, stdout, stderr := w.run(t, "plan", "--accounts", "222222222222,333333333333", "--region", demo.Region, "--format", "json", "--cloudtrail-rps", "100")
	if code != ExitFailure {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	p := decodePlan(t, stdout)
	for _, s := range p.Scopes {
		failed := s.Status == report.ScopeFailed
		if (*s.AccountID == "333333333333") != failed || (failed && !strings.Contains(s.Error, "AccessDenied")) {
			t.Errorf("scope %s: %s %q; want only 333333333333 failed, on AccessDenied", s.Label(), s.Status, s.Error)
		}
	}
	if len(p.Instances) != 1 || p.Instances[0].AccountID != "222222222222" {
		t.Errorf("instances %+v, want the one of 222222222222", p.Instances)
	}
	if !strings.Contains(stderr, "scope us-east-1 (account 333333333333) failed") {
		t.Errorf("stderr does not name the failed scope: %s", stderr)
	}
}

// TestPlanOrganization plans every active account of the organization, in every region
// EC2 says is enabled.
func TestPlanOrganization(t *testing.T) {
	w := newWorld(t)
	cfg := fakeaws.AWSConfig(demo.Region)
	cfg.BaseEndpoint = aws.String(w.moto.URL)
	org := organizations.NewFromConfig(cfg)
	ctx := context.Background()
	if _, err := org.CreateOrganization(ctx, &organizations.CreateOrganizationInput{FeatureSet: orgtypes.OrganizationFeatureSetAll}); err != nil {
		t.Fatal(err)
	}
	created, err := org.CreateAccount(ctx, &organizations.CreateAccountInput{AccountName: aws.String("workloads"), Email: aws.String("workloads@example.com")})
	if err != nil {
		t.Fatal(err)
	}
	status, err := org.DescribeCreateAccountStatus(ctx, &organizations.DescribeCreateAccountStatusInput{CreateAccountRequestId: created.CreateAccountStatus.Id})
	if err != nil {
		t.Fatal(err)
	}
	member := aws.ToString(status.CreateAccountStatus.AccountId)
	seeded := w.seedMember(t, member, "web")

	p := w.plan(t, "--org", "--all-regions", "--concurrency", "8")
	accounts, regions := map[string]bool{}, map[string]bool{}
	for _, s := range p.Scopes {
		accounts[*s.AccountID], regions[s.Region] = true, true
		if s.Status != report.ScopeOK {
			t.Errorf("scope %s %s: %s", s.Label(), s.Status, s.Error)
		}
	}
	if len(accounts) != 2 || !accounts[member] || !accounts["123456789012"] || len(regions) < 10 || !regions["eu-west-1"] {
		t.Errorf("planned accounts %v in %d regions, want the management account and %s in every enabled region", accounts, len(regions), member)
	}
	found := false
	for _, in := range p.Instances {
		found = found || (in.InstanceID == seeded[0].ID && in.AccountID == member)
	}
	if !found {
		t.Errorf("the member's instance %s is not planned in its account", seeded[0].ID)
	}
}

// TestPlanAccountFlagsMisuse: flags that do not go together are refused before any AWS
// call.
func TestPlanAccountFlagsMisuse(t *testing.T) {
	w := newWorld(t)
	for _, args := range [][]string{
		{"--accounts", "12345"},
		{"--accounts", "222222222222", "--org"},
		{"--role-name", "x"},
		{"--all-regions", "--region", "us-east-1"},
		{"--accounts", "222222222222", "--role-name", "bad name"},
		{"--concurrency", "0"},
	} {
		code, _, stderr := w.run(t, append([]string{"plan"}, args...)...)
		if code != ExitUsage || stderr == "" {
			t.Errorf("plan %v: exit %d, stderr %q; want a usage error", args, code, stderr)
		}
	}
}

// TestGuardrailsAccounts judges the readiness of two member accounts through their role
// sessions: the one whose instances are all compliant is ready, the one with an IMDSv1
// user is not, and the report says which.
func TestGuardrailsAccounts(t *testing.T) {
	w := newWorld(t)
	w.seedMember(t, "222222222222", "already-v2")
	w.seedMember(t, "333333333333", "already-v2", "legacy-v1")
	r := w.guardrailsJSON(t, "--accounts", "222222222222,333333333333")
	if r.code != ExitFailure {
		t.Fatalf("exit %d, want 1 (one account is not ready): %s", r.code, r.stderr)
	}
	ready := map[string]bool{}
	for _, a := range r.doc.Accounts {
		ready[a.AccountID] = a.Ready
	}
	if len(ready) != 2 || !ready["222222222222"] || ready["333333333333"] {
		t.Errorf("readiness %v, want 222222222222 ready and 333333333333 not", ready)
	}
	if !strings.Contains(r.stderr, "1 of 2 accounts is not ready") && !strings.Contains(r.stderr, "1 of 2 accounts are not ready") {
		t.Errorf("stderr does not say how many accounts are not ready: %s", r.stderr)
	}
}
