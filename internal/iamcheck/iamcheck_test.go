package iamcheck

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/imdsguard/imdsguard/internal/lambdaenv"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// functionPackages are the package each function of template.yaml is built from (the
// Makefile's build-<Function> targets, which SAM's makefile build method runs).
var functionPackages = map[string]string{
	"DetectFunction":    "./functions/detect",
	"RemediateFunction": "./functions/remediate",
	"VerifyFunction":    "./functions/verify",
}

// linkedNotCalled are actions the scan finds in a package a function links but that the
// function never calls, each with the reason; the scan works by package, so it cannot
// tell. Each is a package that should be split, so that the exception can go.
var linkedNotCalled = map[string]map[string]string{
	"VerifyFunction": {
		"cloudtrail:LookupEvents": "internal/evidence holds the CloudTrail reader beside the inventory and metric readers verify uses; verify reads no CloudTrail",
	},
}

// grantedNotCalled are actions a function is granted although its code never calls them,
// each with the reason. Anything else granted and not called is least-privilege drift.
var grantedNotCalled = map[string]map[string]string{
	"DetectFunction": {
		"sqs:ReceiveMessage":      "the event source mapping DetectUnits reads the hub's units of work with the function's role",
		"sqs:DeleteMessage":       "the event source mapping DetectUnits deletes the units of work it handed over",
		"sqs:GetQueueAttributes":  "the event source mapping DetectUnits reads the units queue's attributes",
		"glue:GetDatabase":        "Athena reads the organization trail's table from the Glue Data Catalog with the caller's permissions",
		"glue:GetTable":           "Athena reads the organization trail's table from the Glue Data Catalog with the caller's permissions",
		"glue:GetPartitions":      "Athena reads the organization trail's table from the Glue Data Catalog with the caller's permissions",
		"s3:GetObject":            "Athena reads the organization trail's logs, and writes and reads the query's results, with the caller's permissions",
		"s3:ListBucket":           "Athena lists the organization trail's logs and the results location with the caller's permissions",
		"s3:GetBucketLocation":    "Athena finds the trail's and the results' buckets with the caller's permissions",
		"s3:PutObject":            "Athena writes the query's results to TrailResultsBucket with the caller's permissions",
		"s3:AbortMultipartUpload": "Athena abandons a failed upload of the query's results with the caller's permissions",
	},
	"RemediateFunction": {
		"kms:GenerateDataKey": "sns:Publish to the topic encrypted with the customer managed key NotificationsKey: SNS calls KMS with the publisher's permissions",
		"kms:Decrypt":         "sns:Publish to the topic encrypted with the customer managed key NotificationsKey: SNS calls KMS with the publisher's permissions",
	},
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func loadTemplate(t *testing.T) *Template {
	t.Helper()
	tpl, err := LoadTemplate(filepath.Join(moduleRoot(t), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// ---------------------------------------------------------------- the scanner, on fixtures

func TestScanFindsSDKOperations(t *testing.T) {
	root, err := filepath.Abs("testdata/fakemod")
	if err != nil {
		t.Fatal(err)
	}
	pkgs := []Package{
		{ImportPath: "example.com/fake/clients", Dir: filepath.Join(root, "clients"), GoFiles: []string{"clients.go"}},
		// direct_test.go is listed to show that test files are skipped even when given.
		{ImportPath: "example.com/fake/direct", Dir: filepath.Join(root, "direct"), GoFiles: []string{"direct.go", "direct_test.go"}},
		// other/ stands for a package outside the module: ModuleDeps leaves such out.
	}
	calls, err := Scan(root, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	wantOps := []string{
		"cloudtrail:LookupEvents",
		"cloudwatch:GetMetricData",
		"dynamodb:ConditionCheckItem",
		"dynamodb:PutItem",
		"dynamodb:TransactWriteItems",
		"ec2:DescribeInstances",
		"ec2:ModifyInstanceMetadataOptions",
		"sns:Publish",
		"sqs:SendMessageBatch",
		"sts:AssumeRole",
		"sts:GetCallerIdentity",
	}
	if got := calls.Operations(); !slices.Equal(got, wantOps) {
		t.Errorf("operations:\n got %v\nwant %v", got, wantOps)
	}
	for _, c := range calls {
		if !strings.HasPrefix(c.Pos, "clients/") && !strings.HasPrefix(c.Pos, "direct/direct.go:") {
			t.Errorf("call %+v: position not relative to the module root, or in a test file", c)
		}
	}
	if where := calls.Where("ec2:DescribeInstances"); len(where) != 2 {
		t.Errorf("ec2:DescribeInstances found at %v, want the interface method and the waiter", where)
	}

	required, err := RequiredActions(calls)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for a := range required {
		actions = append(actions, a)
	}
	sort.Strings(actions)
	wantActions := []string{
		"cloudtrail:LookupEvents",
		"cloudwatch:GetMetricData",
		"dynamodb:ConditionCheckItem",
		"dynamodb:PutItem",
		"ec2:DescribeInstances",
		"ec2:ModifyInstanceMetadataOptions",
		"sns:Publish",
		"sqs:SendMessage",
		"sts:AssumeRole",
	}
	if !slices.Equal(actions, wantActions) {
		t.Errorf("IAM actions:\n got %v\nwant %v", actions, wantActions)
	}
}

func TestScanRejectsUnknownWaiterAndUnresolvedTransaction(t *testing.T) {
	dir := t.TempDir()
	src := `package p

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

func f(ctx context.Context, d *dynamodb.Client, e *ec2.Client) {
	_, _ = d.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items()})
	_ = ec2.NewVolumeAvailableWaiter(e)
}
`
	if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	calls, err := Scan(dir, []Package{{ImportPath: "example.com/p", Dir: dir, GoFiles: []string{"p.go"}}})
	if err == nil || !strings.Contains(err.Error(), "NewVolumeAvailableWaiter") {
		t.Errorf("Scan error = %v, want one naming the unknown waiter", err)
	}
	if _, err := RequiredActions(calls); err == nil || !strings.Contains(err.Error(), "TransactWriteItems") {
		t.Errorf("RequiredActions error = %v, want one saying the transaction's items are unknown", err)
	}
}

func TestScanFindsTagOnCreate(t *testing.T) {
	dir := t.TempDir()
	src := `package p

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

func untagged(ctx context.Context, c *ssm.Client) {
	_, _ = c.CreateOpsItem(ctx, &ssm.CreateOpsItemInput{Title: aws.String("t"), Source: aws.String("s")})
	_, _ = c.UpdateOpsItem(ctx, &ssm.UpdateOpsItemInput{OpsItemId: aws.String("oi-1")})
}
`
	tagged := `package p

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

func tagged(ctx context.Context, c *ssm.Client) {
	_, _ = c.CreateOpsItem(ctx, &ssm.CreateOpsItemInput{
		Title: aws.String("t"),
		Tags:  []ssmtypes.Tag{{Key: aws.String("k"), Value: aws.String("v")}},
	})
}
`
	for _, f := range []struct{ name, src string }{{"untagged.go", src}, {"tagged.go", tagged}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	calls, err := Scan(dir, []Package{{ImportPath: "example.com/p", Dir: dir, GoFiles: []string{"untagged.go"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := calls.Operations(), []string{"ssm:CreateOpsItem", "ssm:UpdateOpsItem"}; !slices.Equal(got, want) {
		t.Errorf("without Tags: operations %v, want %v", got, want)
	}
	calls, err = Scan(dir, []Package{{ImportPath: "example.com/p", Dir: dir, GoFiles: []string{"tagged.go"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := calls.Operations(), []string{"ssm:AddTagsToResource", "ssm:CreateOpsItem"}; !slices.Equal(got, want) {
		t.Errorf("with Tags: operations %v, want %v (tagging on create needs ssm:AddTagsToResource)", got, want)
	}
	if where := calls.Where("ssm:AddTagsToResource"); len(where) != 1 || !strings.Contains(where[0], "tagged.go:12") {
		t.Errorf("ssm:AddTagsToResource found at %v, want the CreateOpsItemInput literal at tagged.go:12", where)
	}
}

func TestModuleDepsKeepsOnlyModulePackages(t *testing.T) {
	// cmd/imdsguard exists and reads EC2, CloudWatch and CloudTrail through internal/evidence.
	root := moduleRoot(t)
	pkgs, err := ModuleDeps(root, "./cmd/imdsguard")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, p := range pkgs {
		if !strings.HasPrefix(p.ImportPath, "github.com/imdsguard/imdsguard/") {
			t.Errorf("%s is not a package of the module", p.ImportPath)
		}
		paths = append(paths, p.ImportPath)
	}
	for _, want := range []string{"github.com/imdsguard/imdsguard/cmd/imdsguard", "github.com/imdsguard/imdsguard/internal/evidence"} {
		if !slices.Contains(paths, want) {
			t.Errorf("%s missing from %v", want, paths)
		}
	}
	calls, err := Scan(root, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	ops := calls.Operations()
	for _, want := range []string{"ec2:DescribeInstances", "cloudwatch:GetMetricData", "cloudtrail:LookupEvents"} {
		if !slices.Contains(ops, want) {
			t.Errorf("%s not found in cmd/imdsguard's code; found %v", want, ops)
		}
	}
}

// ------------------------------------------------------- the template checks, on a fixture

func TestTemplateChecksCatchEveryMistake(t *testing.T) {
	tpl, err := LoadTemplate("testdata/bad-template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	all := AllStatements(tpl.Root)
	var sids []string
	for _, s := range all {
		sids = append(sids, s.Sid)
	}
	wantSids := []string{"WildcardService", "NoCondition", "WrongCondition", "GoodCondition", "NoHopBound", "EndpointAllowed", "InIfBranch", "Opaque", "DenyIsFine", "", "RoleInline", "Attached", "SingleStatementMapping"}
	if !slices.Equal(sids, wantSids) {
		t.Errorf("statements found: %q\nwant %q", sids, wantSids)
	}

	wildcards := WildcardProblems(all)
	for _, want := range [][2]string{
		{"Sid WildcardService", `grants the wildcard action "ec2:*"`},
		{"Sid InIfBranch", `grants the wildcard action "s3:Get*"`},
		{"Sid Opaque", "has an Action that is not a literal"},
		{"Sid Attached", "allows NotAction"},
		{"Sid SingleStatementMapping", `grants the wildcard action "sqs:*"`},
	} {
		if !hasProblem(wildcards, want[0], want[1]) {
			t.Errorf("wildcard problems miss %s %s:\n%s", want[0], want[1], strings.Join(wildcards, "\n"))
		}
	}
	if hasProblem(wildcards, "Sid DenyIsFine", "") || len(wildcards) != 5 {
		t.Errorf("want exactly the five problems above (a Deny of * is not a grant):\n%s", strings.Join(wildcards, "\n"))
	}

	fn, _ := tpl.Resource("SamFunction")
	stmts, problems := tpl.FunctionStatements(fn)
	joined := strings.Join(problems, "\n")
	for _, want := range []string{`managed policy "AWSLambdaExecute"`, "Policies[1]", `SAM policy template "SQSSendMessagePolicy"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("function policy problems miss %s:\n%s", want, joined)
		}
	}
	tokens := TokenConditionProblems(stmts)
	wantTokens := [][2]string{
		{"Sid NoCondition", "without the condition StringEquals ec2:MetadataHttpTokens = required"},
		{"Sid NoCondition", "on every resource"},
		{"Sid NoCondition", "without bounding the hop limit"},
		{"Sid NoCondition", "to set the endpoint"},
		{"Sid WrongCondition", "without the condition"},
		{"Sid WrongCondition", "without bounding the hop limit"},
		{"Sid WrongCondition", "to set the endpoint"},
		{"Sid NoHopBound", "without bounding the hop limit"},
		{"Sid EndpointAllowed", "to set the endpoint"},
	}
	for _, want := range wantTokens {
		if !hasProblem(tokens, want[0], want[1]) {
			t.Errorf("token condition problems miss %s %s:\n%s", want[0], want[1], strings.Join(tokens, "\n"))
		}
	}
	if hasProblem(tokens, "Sid GoodCondition", "") || len(tokens) != len(wantTokens) {
		t.Errorf("want exactly the %d problems above (GoodCondition is fine: condition keys are case-insensitive):\n%s", len(wantTokens), strings.Join(tokens, "\n"))
	}

	roleFn, _ := tpl.Resource("RoleFunction")
	roleStmts, roleProblems := tpl.FunctionStatements(roleFn)
	var roleSids []string
	for _, s := range roleStmts {
		roleSids = append(roleSids, s.Sid)
	}
	if !slices.Equal(roleSids, []string{"RoleInline", "Attached"}) {
		t.Errorf("role statements %q, want RoleInline and Attached", roleSids)
	}
	if len(roleProblems) != 1 || !strings.Contains(roleProblems[0], "ManagedPolicyArns") {
		t.Errorf("role problems %q, want the managed policy", roleProblems)
	}
}

func TestBackendConditionChecks(t *testing.T) {
	tpl, err := LoadTemplate("testdata/backend-grants.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fn, _ := tpl.Resource("SamFunction")
	stmts, problems := tpl.FunctionStatements(fn)
	// An !If on a Policies entry is read through; a managed policy inside one is still one.
	if len(problems) != 1 || !strings.Contains(problems[0], `managed policy "AWSLambdaExecute"`) || !strings.Contains(problems[0], "Policies[4](if UseJira)") {
		t.Errorf("function policy problems %q, want only the managed policy in Policies[4](if UseJira)", problems)
	}
	guards := map[string][]Guard{}
	for _, s := range stmts {
		guards[s.Sid] = s.Guards
	}
	for sid, want := range map[string][]Guard{
		"WrongUnconditionalOpsItems":    nil,
		"WrongOpsItemsWhenNotOpsCenter": {{"UseOpsCenter", false}},
		"GuardedOpsItems":               {{"UseOpsCenter", true}},
		"GuardedSecret":                 {{"UseJira", true}},
		"NestedGuardedTagging":          {{"Always", true}, {"UseOpsCenter", true}},
		"WrongSecretWhenNotJira":        {{"NotJira", true}},
	} {
		got, ok := guards[sid]
		if !ok {
			t.Errorf("statement %s not found among the function's statements", sid)
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("statement %s: guards %v, want %v", sid, got, want)
		}
	}
	// A guarded grant is a grant (the check that every called action is granted).
	if !slices.ContainsFunc(stmts, func(s Statement) bool { return s.Sid == "GuardedSecret" && s.Allows("secretsmanager:GetSecretValue") }) {
		t.Error("the statement of the Policies entry under !If [UseJira, ...] does not count as granting secretsmanager:GetSecretValue")
	}

	wantProblems := [][2]string{
		{"Sid WrongUnconditionalOpsItems", `grants ssm:CreateOpsItem unconditionally: grant it only under !If [UseOpsCenter`},
		{"Sid WrongUnconditionalOpsItems", `grants SSM:updateopsitem unconditionally`},
		{"Sid WrongUnconditionalSecret", `grants secretsmanager:GetSecretValue unconditionally: grant it only under !If [UseJira`},
		{"Sid WrongOpsItemsUnderJira", `grants ssm:DescribeOpsItems under UseJira=true`},
		{"Sid WrongOpsItemsWhenNotOpsCenter", `grants ssm:GetOpsItem under UseOpsCenter=false`},
		{"Sid WrongSecretWhenNotJira", `grants secretsmanager:GetSecretValue under NotJira=true`},
	}
	for name, got := range map[string][]string{
		"FunctionStatements": BackendConditionProblems(stmts),
		"AllStatements":      BackendConditionProblems(AllStatements(tpl.Root)),
	} {
		for _, want := range wantProblems {
			if !hasProblem(got, want[0], want[1]) {
				t.Errorf("%s: backend condition problems miss %s %s:\n%s", name, want[0], want[1], strings.Join(got, "\n"))
			}
		}
		if len(got) != len(wantProblems) {
			t.Errorf("%s: want exactly the %d problems above (Guarded*, DenyIsFine and OtherSsmIsFine are fine):\n%s", name, len(wantProblems), strings.Join(got, "\n"))
		}
	}

	roleFn, _ := tpl.Resource("RoleFunction")
	roleStmts, roleProblems := tpl.FunctionStatements(roleFn)
	if len(roleProblems) != 0 {
		t.Errorf("role problems %q, want none", roleProblems)
	}
	var roleSids []string
	for _, s := range roleStmts {
		roleSids = append(roleSids, s.Sid)
	}
	if !slices.Equal(roleSids, []string{"GuardedRolePolicy", "GuardedAttachedPolicy"}) {
		t.Errorf("role statements %q, want GuardedRolePolicy and GuardedAttachedPolicy", roleSids)
	}
	if p := BackendConditionProblems(roleStmts); len(p) != 0 {
		t.Errorf("a role policy under !If and a policy resource with Condition are guarded, but:\n%s", strings.Join(p, "\n"))
	}

	if !tpl.ConditionRequiresEquals("UseOpsCenter", "TicketBackend", "opscenter") ||
		!tpl.ConditionRequiresEquals("UseJira", "TicketBackend", "jira") ||
		tpl.ConditionRequiresEquals("NotJira", "TicketBackend", "jira") ||
		tpl.ConditionRequiresEquals("UseJira", "TicketBackend", "opscenter") {
		t.Error("ConditionRequiresEquals: want UseOpsCenter to need TicketBackend=opscenter, UseJira to need jira, and NotJira not to")
	}
}

// hasProblem reports whether one problem names the statement (as "Sid X") and says what.
func hasProblem(problems []string, sid, what string) bool {
	return slices.ContainsFunc(problems, func(p string) bool {
		return strings.Contains(p, "("+sid+")") && strings.Contains(p, what)
	})
}

// ------------------------------------------------------------------ the real template

func TestNoWildcardActions(t *testing.T) {
	tpl := loadTemplate(t)
	stmts := AllStatements(tpl.Root)
	if len(stmts) == 0 {
		t.Fatal("no IAM statement found in template.yaml")
	}
	for _, p := range WildcardProblems(stmts) {
		t.Error(p)
	}
}

func TestModifyInstanceMetadataOptionsOnlyTowardsIMDSv2(t *testing.T) {
	tpl := loadTemplate(t)
	var granted, rollback bool
	for _, s := range AllStatements(tpl.Root) {
		if !s.Allows(ModifyMetadataAction) {
			continue
		}
		if s.Sid == RollbackSid {
			// The one grant towards IMDSv1, verify's only, narrowly conditioned.
			rollback = true
			if !strings.HasPrefix(s.Where, "Resources.VerifyFunction.") {
				t.Errorf("%s grants the rollback outside VerifyFunction", s)
			}
			for _, p := range RollbackConditionProblems(s) {
				t.Error(p)
			}
			continue
		}
		granted = true
		for _, p := range TokenConditionProblems([]Statement{s}) {
			t.Error(p)
		}
	}
	if !granted {
		t.Errorf("no statement allows %s: remediate cannot enforce", ModifyMetadataAction)
	}
	if !rollback {
		t.Errorf("no statement %s allows verify to roll back", RollbackSid)
	}
}

// TestTicketBackendGrantsOnlyUnderTheirCondition: OpsCenter's permissions exist only
// when TicketBackend=opscenter, the Jira secret's only when TicketBackend=jira, and each
// on the narrowest resource the service allows.
func TestTicketBackendGrantsOnlyUnderTheirCondition(t *testing.T) {
	tpl := loadTemplate(t)
	stmts := AllStatements(tpl.Root)
	for _, p := range BackendConditionProblems(stmts) {
		t.Error(p)
	}
	for cond, value := range map[string]string{OpsCenterCondition: "opscenter", JiraCondition: "jira"} {
		if !tpl.ConditionRequiresEquals(cond, "TicketBackend", value) {
			t.Errorf("condition %s must be !Equals [!Ref TicketBackend, %s] (or an !And with it)", cond, value)
		}
	}

	// Scoped resources: UpdateOpsItem (and GetOpsItem, AddTagsToResource, if granted) name
	// this account-region's OpsItems; GetSecretValue names exactly the JiraSecretArn secret.
	opsItemARN := "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:opsitem/*"
	granted := map[string]bool{}
	for _, s := range stmts {
		if s.Effect != "Allow" {
			continue
		}
		for _, a := range s.Actions {
			granted[strings.ToLower(a)] = true
			switch strings.ToLower(a) {
			case "ssm:updateopsitem", "ssm:getopsitem", "ssm:addtagstoresource":
				if name, arg, ok := Intrinsic(s.Resource); !ok || name != "Sub" || arg.Value != opsItemARN {
					t.Errorf("%s grants %s on %s, want !Sub %s", s, a, describe(s.Resource), opsItemARN)
				}
			case "secretsmanager:getsecretvalue":
				if target, ok := RefTarget(s.Resource); !ok || target != "JiraSecretArn" {
					t.Errorf("%s grants %s on %s, want exactly !Ref JiraSecretArn", s, a, describe(s.Resource))
				}
			}
		}
	}
	for _, a := range []string{"ssm:CreateOpsItem", "ssm:UpdateOpsItem", "secretsmanager:GetSecretValue"} {
		if !granted[strings.ToLower(a)] {
			t.Errorf("nothing grants %s: that ticket backend cannot work", a)
		}
	}
}

// TestTicketParameters: the ticket parameters, and the rule that a jira stack names its
// secret and project.
func TestTicketParameters(t *testing.T) {
	tpl := loadTemplate(t)
	backend := tpl.Parameter("TicketBackend")
	if def, _ := Scalar(Get(backend, "Default")); def != "sns" {
		t.Errorf("parameter TicketBackend: Default = %q, want sns", def)
	}
	if allowed, _ := Scalars(Get(backend, "AllowedValues")); !slices.Equal(allowed, []string{"sns", "opscenter", "jira"}) {
		t.Errorf("parameter TicketBackend: AllowedValues = %q, want sns, opscenter, jira", allowed)
	}
	if def, _ := Scalar(Get(tpl.Parameter("JiraIssueType"), "Default")); def != "Task" {
		t.Errorf("parameter JiraIssueType: Default = %q, want Task", def)
	}

	// AllowedPattern is a Java regular expression; these ones mean the same in Go.
	for name, c := range map[string]struct{ match, reject []string }{
		"JiraSecretArn": {
			match: []string{"", "arn:aws:secretsmanager:us-east-1:123456789012:secret:imdsguard/jira-AbC123",
				"arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:jira-token-x1Y2z3"},
			reject: []string{"imdsguard/jira", "arn:aws:secretsmanager:us-east-1:123456789012:secret:imdsguard/jira",
				"arn:aws:ssm:us-east-1:123456789012:parameter/jira-AbC123", "arn:aws:secretsmanager:us-east-1:123456789012:secret:*"},
		},
		"JiraProject": {match: []string{"", "SEC", "OPS_2", "A1"}, reject: []string{"sec", "S", "1SEC", "ABCDEFGHIJK", "SEC-1"}},
		"JiraLabels":  {match: []string{"", "imdsguard", "imdsguard,security"}, reject: []string{"a b", "a, b", "a,", ",a"}},
	} {
		param := tpl.Parameter(name)
		if param == nil {
			t.Errorf("no parameter %s", name)
			continue
		}
		if def, ok := Scalar(Get(param, "Default")); !ok || def != "" {
			t.Errorf("parameter %s: Default = %q, want empty", name, def)
		}
		pattern, ok := Scalar(Get(param, "AllowedPattern"))
		if !ok {
			t.Errorf("parameter %s: no AllowedPattern", name)
			continue
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			t.Errorf("parameter %s: AllowedPattern %q: %v", name, pattern, err)
			continue
		}
		for _, v := range c.match {
			if !re.MatchString(v) {
				t.Errorf("parameter %s: AllowedPattern %q refuses %q", name, pattern, v)
			}
		}
		for _, v := range c.reject {
			if re.MatchString(v) {
				t.Errorf("parameter %s: AllowedPattern %q accepts %q", name, pattern, v)
			}
		}
	}

	// A rule that, when TicketBackend=jira, asserts JiraSecretArn and JiraProject are not
	// empty: CloudFormation refuses the stack before changing anything.
	asserted := map[string]bool{}
	rules := Get(tpl.Root, "Rules")
	for i := 1; rules != nil && i < len(rules.Content); i += 2 {
		rule := rules.Content[i]
		if !isEquals(Get(rule, "RuleCondition"), "TicketBackend", "jira") {
			continue
		}
		assertions := Get(rule, "Assertions")
		for j := 0; assertions != nil && j < len(assertions.Content); j++ {
			a := assertions.Content[j]
			if desc, _ := Scalar(Get(a, "AssertDescription")); desc == "" {
				t.Errorf("rule %s: assertion %d has no AssertDescription", rules.Content[i-1].Value, j)
			}
			if name, arg, ok := Intrinsic(Get(a, "Assert")); ok && name == "Not" && arg.Kind == yaml.SequenceNode && len(arg.Content) == 1 {
				for _, param := range []string{"JiraSecretArn", "JiraProject"} {
					if isEquals(arg.Content[0], param, "") {
						asserted[param] = true
					}
				}
			}
		}
	}
	for _, param := range []string{"JiraSecretArn", "JiraProject"} {
		if !asserted[param] {
			t.Errorf("no rule with RuleCondition !Equals [!Ref TicketBackend, jira] asserts !Not [!Equals [!Ref %s, \"\"]]", param)
		}
	}
}

// isEquals reports whether n is !Equals [!Ref param, value], in either order.
func isEquals(n *yaml.Node, param, value string) bool {
	name, arg, ok := Intrinsic(n)
	if !ok || name != "Equals" || arg.Kind != yaml.SequenceNode || len(arg.Content) != 2 {
		return false
	}
	for i := range 2 {
		ref, isRef := RefTarget(arg.Content[i])
		v, isScalar := Scalar(arg.Content[1-i])
		if isRef && ref == param && isScalar && v == value {
			return true
		}
	}
	return false
}

func TestFunctionsAreBuiltFromTheirPackages(t *testing.T) {
	tpl := loadTemplate(t)
	root := moduleRoot(t)
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	fns := tpl.ResourcesOfType("AWS::Serverless::Function")
	if len(fns) != len(functionPackages) {
		t.Errorf("template.yaml has %d functions, functionPackages names %d: every function must be checked", len(fns), len(functionPackages))
	}
	for _, fn := range fns {
		pkg, ok := functionPackages[fn.Name]
		if !ok {
			t.Errorf("%s: add the package it is built from to functionPackages, so its IAM is checked", fn.Name)
			continue
		}
		if method, _ := Scalar(Get(Get(fn.Node, "Metadata"), "BuildMethod")); method != "makefile" {
			t.Errorf("%s: Metadata.BuildMethod = %q, want makefile", fn.Name, method)
		}
		if uri, _ := Scalar(Get(fn.Properties(), "CodeUri")); uri != "." {
			t.Errorf("%s: CodeUri = %q, want . (the Makefile is at the module root)", fn.Name, uri)
		}
		target := regexp.MustCompile(`(?m)^build-` + regexp.QuoteMeta(fn.Name) + `:.*\n((?:\t.*\n)+)`).FindSubmatch(makefile)
		if target == nil {
			t.Errorf("Makefile has no build-%s target (sam build runs it)", fn.Name)
			continue
		}
		recipe := string(target[1])
		for _, want := range []string{"$(ARTIFACTS_DIR)/bootstrap", pkg} {
			if !strings.Contains(recipe, want) {
				t.Errorf("Makefile build-%s does not mention %s:\n%s", fn.Name, want, recipe)
			}
		}
	}
}

// TestFunctionGrantsMatchCode is the least-privilege check: each function is granted
// every IAM action its code calls, and nothing else unless grantedNotCalled says why.
func TestFunctionGrantsMatchCode(t *testing.T) {
	tpl := loadTemplate(t)
	root := moduleRoot(t)
	names := make([]string, 0, len(functionPackages))
	for name := range functionPackages {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		pkg := functionPackages[name]
		t.Run(name, func(t *testing.T) {
			fn, ok := tpl.Resource(name)
			if !ok || fn.Type != "AWS::Serverless::Function" {
				t.Fatalf("template.yaml has no AWS::Serverless::Function %s", name)
			}
			stmts, problems := tpl.FunctionStatements(fn)
			for _, p := range problems {
				t.Error(p)
			}
			for _, p := range TokenConditionProblems(stmts) {
				t.Error(p)
			}
			if _, err := os.Stat(filepath.Join(root, pkg)); err != nil {
				t.Fatalf("%s does not exist yet, so the actions %s's code calls cannot be checked against its IAM statements: %v", pkg, name, err)
			}
			required := requiredActionsOf(t, pkg)

			// A statement under !If counts as a grant: the backend's condition (checked in
			// TestTicketBackendGrantsOnlyUnderTheirCondition) says when it applies.
			granted := map[string]string{}       // lower-case action -> as written
			conditional := map[string][]string{} // lower-case action -> guards, when only granted under some
			for _, s := range stmts {
				if s.Effect != "Allow" {
					continue
				}
				for _, a := range s.Actions {
					lower := strings.ToLower(a)
					_, before := granted[lower]
					granted[lower] = a
					switch {
					case len(s.Guards) == 0:
						conditional[lower] = nil
					case !before || conditional[lower] != nil:
						var gs []string
						for _, g := range s.Guards {
							gs = append(gs, g.String())
						}
						conditional[lower] = append(conditional[lower], strings.Join(gs, " and "))
					}
				}
			}
			samAdded := samAddedActions(tpl, fn)

			actions := make([]string, 0, len(required))
			for a := range required {
				actions = append(actions, a)
			}
			sort.Strings(actions)
			t.Logf("%s (%s) calls: %s", name, pkg, strings.Join(actions, ", "))
			for _, action := range actions {
				if _, ok := granted[strings.ToLower(action)]; ok {
					if when := conditional[strings.ToLower(action)]; when != nil {
						t.Logf("%s calls %s, granted only when %s", name, action, strings.Join(when, ", or "))
					}
					continue
				}
				if why, ok := samAdded[strings.ToLower(action)]; ok {
					t.Logf("%s calls %s, granted by SAM (%s), not by template.yaml's statements", name, action, why)
					continue
				}
				if why, ok := linkedNotCalled[name][action]; ok {
					t.Logf("%s links %s, not granted: %s", name, action, why)
					continue
				}
				t.Errorf("%s calls %s (at %s) but template.yaml does not grant it to %s: add it to the function's Policies",
					name, action, strings.Join(required[action], "; "), name)
			}

			requiredLower := map[string]bool{}
			for a := range required {
				requiredLower[strings.ToLower(a)] = true
			}
			var extra []string
			for lower, a := range granted {
				if !requiredLower[lower] {
					extra = append(extra, a)
				}
			}
			sort.Strings(extra)
			for _, a := range extra {
				if reason, ok := grantedNotCalled[name][a]; ok {
					t.Logf("%s is granted %s, which its code does not call: allowed, %s", name, a, reason)
					continue
				}
				t.Errorf("least-privilege drift: %s is granted %s, which its code never calls: remove it, or add it to grantedNotCalled with the reason", name, a)
			}
			for a := range grantedNotCalled[name] {
				if _, ok := granted[strings.ToLower(a)]; !ok {
					t.Errorf("grantedNotCalled names %s for %s, which template.yaml does not grant: remove the entry", a, name)
				}
			}
		})
	}
}

// samAddedActions are the actions SAM itself grants a function's generated role, with why:
// AWSLambdaBasicExecutionRole always, AWSLambdaSQSQueueExecutionRole for an SQS event, and
// the send permission of an SQS or SNS asynchronous-invocation destination.
func samAddedActions(tpl *Template, fn Resource) map[string]string {
	added := map[string]string{
		"logs:createloggroup":  "AWSLambdaBasicExecutionRole",
		"logs:createlogstream": "AWSLambdaBasicExecutionRole",
		"logs:putlogevents":    "AWSLambdaBasicExecutionRole",
	}
	if Get(fn.Properties(), "Role") != nil {
		return map[string]string{}
	}
	events := Get(fn.Properties(), "Events")
	if events != nil && events.Kind == yaml.MappingNode {
		for i := 1; i < len(events.Content); i += 2 {
			if typ, _ := Scalar(Get(events.Content[i], "Type")); typ == "SQS" {
				for _, a := range []string{"sqs:receivemessage", "sqs:deletemessage", "sqs:getqueueattributes"} {
					added[a] = "AWSLambdaSQSQueueExecutionRole, for the SQS event " + events.Content[i-1].Value
				}
			}
		}
	}
	dest := Get(Get(fn.Properties(), "EventInvokeConfig"), "DestinationConfig")
	for _, which := range []string{"OnFailure", "OnSuccess"} {
		switch typ, _ := Scalar(Get(Get(dest, which), "Type")); typ {
		case "SQS":
			added["sqs:sendmessage"] = "the EventInvokeConfig " + which + " destination"
		case "SNS":
			added["sns:publish"] = "the EventInvokeConfig " + which + " destination"
		}
	}
	return added
}

// ------------------------------------------------------- settings and environment

func TestEnvironmentCoversSettings(t *testing.T) {
	tpl := loadTemplate(t)
	extra := map[string]map[string]string{ // function -> env -> resource it must refer to
		"DetectFunction": {
			"IMDSGUARD_QUEUE_URL":    "RemediationQueue",
			"IMDSGUARD_LEDGER_TABLE": "LedgerTable", // open tickets of instances now compliant
		},
		"VerifyFunction": {
			"IMDSGUARD_QUEUE_URL":    "RemediationQueue", // the tickets of rollbacks
			"IMDSGUARD_LEDGER_TABLE": "LedgerTable",
		},
		"RemediateFunction": {
			"IMDSGUARD_LEDGER_TABLE": "LedgerTable",
			"IMDSGUARD_TOPIC_ARN":    "NotificationsTopic",
			"IMDSGUARD_CLAIM_TTL":    "", // a literal, checked in TestRemediationQueueOutlastsRemediate
		},
	}
	// The function-only settings, each passed to the function that reads it.
	functionSpecs := map[string][]lambdaenv.Spec{
		"DetectFunction":    lambdaenv.DetectSpecs,
		"RemediateFunction": lambdaenv.RemediateSpecs,
		"VerifyFunction":    lambdaenv.VerifySpecs,
	}

	for _, fn := range tpl.ResourcesOfType("AWS::Serverless::Function") {
		env := tpl.FunctionEnvironment(fn)
		known := map[string]bool{}
		type setting struct{ env, param, def, what string }
		var settings []setting
		for _, spec := range policy.SettingSpecs {
			settings = append(settings, setting{spec.Env, spec.Param, spec.Default, "setting " + spec.Flag})
		}
		for _, spec := range functionSpecs[fn.Name] {
			settings = append(settings, setting{spec.Env, spec.Param, spec.Default, "function setting " + spec.Param})
		}
		for _, s := range settings {
			known[s.env] = true
			node, ok := env[s.env]
			if !ok {
				t.Errorf("%s: environment variable %s (%s) is not set", fn.Name, s.env, s.what)
				continue
			}
			if got, _ := RefTarget(node); got != s.param {
				t.Errorf("%s: %s = %s, want !Ref %s", fn.Name, s.env, describe(node), s.param)
				continue
			}
			param := refParameter(t, tpl, fn.Name, s.env, node)
			if param == nil {
				continue
			}
			def, ok := Scalar(Get(param, "Default"))
			if !ok || def != s.def {
				t.Errorf("%s: %s's parameter Default = %q, want the setting's default %q", fn.Name, s.env, def, s.def)
			}
		}
		for envName, target := range extra[fn.Name] {
			known[envName] = true
			node, ok := env[envName]
			if !ok {
				t.Errorf("%s: environment variable %s is not set", fn.Name, envName)
				continue
			}
			if target == "" {
				continue
			}
			if got, _ := RefTarget(node); got != target {
				t.Errorf("%s: %s = %s, want !Ref %s", fn.Name, envName, describe(node), target)
			}
		}
		// The hub's organization (lambdaenv.LoadHub), from the Member* parameters, in every
		// function; detect's units queue exists only on a hub.
		hubEnv := map[string]string{
			lambdaenv.EnvOrgRegions: "MemberRegions", lambdaenv.EnvOrgUnits: "MemberOrganizationalUnitIds",
			lambdaenv.EnvOrgInclude: "MemberIncludeAccounts", lambdaenv.EnvOrgExclude: "MemberExcludeAccounts",
		}
		if fn.Name == "DetectFunction" {
			hubEnv[lambdaenv.EnvUnitsQueueURL] = "UnitsQueue"
			hubEnv[lambdaenv.EnvTrailDatabase] = "TrailDatabase"
			hubEnv[lambdaenv.EnvTrailTable] = "TrailTable"
			hubEnv[lambdaenv.EnvTrailWorkGroup] = "TrailWorkGroup"
			hubEnv[lambdaenv.EnvTrailOutput] = "TrailResultsBucket"
		}
		for envName, from := range hubEnv {
			known[envName] = true
			node, ok := env[envName]
			if !ok {
				t.Errorf("%s: environment variable %s (the hub's) is not set", fn.Name, envName)
				continue
			}
			text, err := yaml.Marshal(node)
			if err != nil || !strings.Contains(string(text), from) {
				t.Errorf("%s: %s = %s, want it made of %s", fn.Name, envName, text, from)
			}
			if envName == lambdaenv.EnvOrgRegions || envName == lambdaenv.EnvUnitsQueueURL {
				if name, arg, ok := Intrinsic(node); !ok || name != "If" || len(arg.Content) == 0 || arg.Content[0].Value != "IsHub" {
					t.Errorf("%s: %s = %s, want it set only under IsHub (empty: no hub)", fn.Name, envName, text)
				}
			}
		}
		for envName := range env {
			if strings.HasPrefix(envName, "IMDSGUARD_") && !known[envName] {
				t.Errorf("%s: environment variable %s is neither a setting it reads (policy.SettingSpecs, lambdaenv.%sSpecs) nor one this test knows",
					fn.Name, envName, strings.TrimSuffix(fn.Name, "Function"))
			}
		}
	}
}

// refParameter returns the parameter an environment variable is !Ref to.
func refParameter(t *testing.T, tpl *Template, fn, env string, node *yaml.Node) *yaml.Node {
	t.Helper()
	name, ok := RefTarget(node)
	if !ok {
		t.Errorf("%s: %s = %s, want !Ref to a parameter", fn, env, describe(node))
		return nil
	}
	param := tpl.Parameter(name)
	if param == nil {
		t.Errorf("%s: %s refers to %s, which is not a parameter", fn, env, name)
	}
	return param
}

func describe(n *yaml.Node) string {
	if name, arg, ok := Intrinsic(n); ok {
		if s, ok := Scalar(arg); ok {
			return fmt.Sprintf("!%s %s", name, s)
		}
		return "!" + name + " ..."
	}
	if s, ok := Scalar(n); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("a YAML node of kind %d (line %d)", n.Kind, n.Line)
}

// ------------------------------------------------------------------ queue and remediate

func TestRemediationQueueOutlastsRemediate(t *testing.T) {
	tpl := loadTemplate(t)
	fn, ok := tpl.Resource("RemediateFunction")
	if !ok {
		t.Fatal("no RemediateFunction")
	}
	timeout := intScalar(t, "RemediateFunction Timeout", tpl.FunctionProperty(fn, "Timeout"))
	queue, ok := tpl.Resource("RemediationQueue")
	if !ok {
		t.Fatal("no RemediationQueue")
	}
	visibility := intScalar(t, "RemediationQueue VisibilityTimeout", Get(queue.Properties(), "VisibilityTimeout"))
	if visibility < 6*timeout {
		t.Errorf("RemediationQueue VisibilityTimeout %ds < 6 x RemediateFunction Timeout %ds (AWS guidance for SQS event sources)", visibility, timeout)
	}
	// The ledger claim must outlast an invocation and expire before a redelivery.
	claim, ok := Scalar(tpl.FunctionEnvironment(fn)["IMDSGUARD_CLAIM_TTL"])
	if !ok {
		t.Fatal("RemediateFunction: IMDSGUARD_CLAIM_TTL is not a literal duration")
	}
	ttl, err := time.ParseDuration(claim)
	if err != nil {
		t.Fatalf("RemediateFunction: IMDSGUARD_CLAIM_TTL = %q: %v", claim, err)
	}
	if ttl < time.Duration(timeout)*time.Second || ttl > time.Duration(visibility)*time.Second {
		t.Errorf("IMDSGUARD_CLAIM_TTL %v must be from the function timeout %ds to the queue's visibility timeout %ds", ttl, timeout, visibility)
	}
	var sqsEvents int
	events := Get(fn.Properties(), "Events")
	for i := 1; events != nil && i < len(events.Content); i += 2 {
		ev := events.Content[i]
		if typ, _ := Scalar(Get(ev, "Type")); typ != "SQS" {
			continue
		}
		sqsEvents++
		if q, _, _ := GetAttTarget(Get(Get(ev, "Properties"), "Queue")); q != "RemediationQueue" {
			t.Errorf("RemediateFunction's SQS event reads %s, want RemediationQueue", q)
		}
		if types, _ := Scalars(Get(Get(ev, "Properties"), "FunctionResponseTypes")); !slices.Equal(types, []string{"ReportBatchItemFailures"}) {
			t.Errorf("RemediateFunction's SQS event FunctionResponseTypes = %q, want [ReportBatchItemFailures]", types)
		}
	}
	if sqsEvents != 1 {
		t.Errorf("RemediateFunction has %d SQS events, want 1", sqsEvents)
	}
}

func intScalar(t *testing.T, what string, n *yaml.Node) int {
	t.Helper()
	s, ok := Scalar(n)
	if !ok {
		t.Fatalf("%s is not a literal number", what)
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s = %q: %v", what, s, err)
	}
	return v
}

// TestOnlyDetectSendsVerdicts: the remediation queue's policy denies sqs:SendMessage to
// every principal but detect's role (DESIGN.md section 7), so a forged verdict cannot
// even reach the queue from inside the account.
// TestOnlyDetectAndVerifySendVerdicts: the remediation queue refuses every sender but the
// two functions that make verdicts: detect, and verify for the ticket of a rollback.
func TestOnlyDetectAndVerifySendVerdicts(t *testing.T) {
	tpl := loadTemplate(t)
	var found bool
	for _, res := range tpl.ResourcesOfType("AWS::SQS::QueuePolicy") {
		queues := Get(res.Properties(), "Queues")
		if queues == nil || queues.Kind != yaml.SequenceNode || len(queues.Content) != 1 {
			continue
		}
		if target, ok := RefTarget(queues.Content[0]); !ok || target != "RemediationQueue" {
			continue
		}
		for _, s := range AllStatements(res.Node) {
			principal, _ := Scalar(s.Principal)
			arns := Get(Get(s.Condition, "ArnNotEquals"), "aws:PrincipalArn")
			if s.Effect != "Deny" || principal != "*" || !slices.Contains(s.Actions, "sqs:SendMessage") || arns == nil || arns.Kind != yaml.SequenceNode {
				continue
			}
			var roles []string
			for _, arn := range arns.Content {
				if role, attr, ok := GetAttTarget(arn); ok && attr == "Arn" {
					roles = append(roles, role)
				}
			}
			slices.Sort(roles)
			if slices.Equal(roles, []string{"DetectFunctionRole", "VerifyFunctionRole"}) && len(roles) == len(arns.Content) {
				found = true
			}
		}
	}
	if !found {
		t.Error("no AWS::SQS::QueuePolicy on RemediationQueue denies sqs:SendMessage to Principal \"*\" " +
			"unless ArnNotEquals aws:PrincipalArn [!GetAtt DetectFunctionRole.Arn, !GetAtt VerifyFunctionRole.Arn]")
	}
}

// TestDetectWritesOnlyDecisions: detect's one write to the ledger is a new decision: its
// dynamodb:PutItem is limited to DECISION# partitions, so it can change no snapshot,
// outcome or ticket.
func TestDetectWritesOnlyDecisions(t *testing.T) {
	tpl := loadTemplate(t)
	fn, ok := tpl.Resource("DetectFunction")
	if !ok {
		t.Fatal("no DetectFunction")
	}
	stmts, problems := tpl.FunctionStatements(fn)
	for _, p := range problems {
		t.Error(p)
	}
	granted := false
	for _, s := range stmts {
		if !s.Allows("dynamodb:PutItem") {
			continue
		}
		granted = true
		keys, ok := Scalars(Get(Get(s.Condition, "ForAllValues:StringLike"), "dynamodb:LeadingKeys"))
		if !ok || !slices.Equal(keys, []string{decisionlog.PartitionPrefix + "*"}) {
			t.Errorf("%s grants detect dynamodb:PutItem without ForAllValues:StringLike dynamodb:LeadingKeys [%s*]", s, decisionlog.PartitionPrefix)
		}
	}
	if !granted {
		t.Error("detect is not granted dynamodb:PutItem: it cannot record its decisions")
	}
}

// TestProductionBinariesLinkNoTestCode: what is deployed or installed links neither the
// testing package nor the test doubles: the Lambda bootstraps (built as `sam build`
// builds them) and the imdsguard CLI. The stand-ins package itself (fakeaws), which the
// demo links, must not link testing either.
func TestProductionBinariesLinkNoTestCode(t *testing.T) {
	root := moduleRoot(t)
	const module = "github.com/imdsguard/imdsguard/"
	forbidden := []string{"testing", module + "internal/testsupport", module + "internal/fakeaws", module + "internal/demo"}
	deps := func(t *testing.T, env []string, pkg string) []string {
		t.Helper()
		cmd := exec.Command("go", "list", "-deps", "-tags", LambdaBuildTags, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	check := func(t *testing.T, pkg string, got, forbidden []string) {
		t.Helper()
		if len(got) < 10 {
			t.Fatalf("go list -deps %s listed only %v", pkg, got)
		}
		for _, dep := range got {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s links %s", pkg, dep)
				}
			}
		}
	}
	for fn, pkg := range functionPackages {
		t.Run(fn, func(t *testing.T) { check(t, pkg, deps(t, LambdaBuildEnv, pkg), forbidden) })
	}
	t.Run("cmd/imdsguard", func(t *testing.T) { check(t, "./cmd/imdsguard", deps(t, nil, "./cmd/imdsguard"), forbidden) })
	t.Run("internal/fakeaws", func(t *testing.T) {
		check(t, "./internal/fakeaws", deps(t, nil, "./internal/fakeaws"), []string{"testing", module + "internal/testsupport"})
	})
}
