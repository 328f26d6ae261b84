package iamcheck

import (
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/imdsguard/imdsguard/internal/cli"
)

// member.yaml (DESIGN.md section 11) is what each member account of the organization gives
// the hub: imdsguard-read, imdsguard-enforce, and the rules forwarding detect's events to
// the hub's bus. Its checks are functions returning problems, so that
// TestMemberChecksCatchMistakes can show each one failing on a template broken in memory.

// memberRoleServices are the services whose actions the member roles grant.
var memberRoleServices = []string{"ec2", "autoscaling", "cloudwatch", "cloudtrail"}

// The hub's function roles each member role trusts (SAM names the role of function F
// <stack>-FRole-<suffix>).
var memberRoleTrust = map[string][]string{
	"ReadRole":    {"DetectFunction", "RemediateFunction", "VerifyFunction"},
	"EnforceRole": {"RemediateFunction", "VerifyFunction"},
}

// memberRoleNames are the member roles' fixed names: imdsguard plan's default --role-name
// for the read role.
var memberRoleNames = map[string]string{
	"ReadRole":    cli.DefaultRoleName,
	"EnforceRole": "imdsguard-enforce",
}

const (
	hubRoot       = "arn:${AWS::Partition}:iam::${HubAccountId}:root"
	hubBus        = "arn:${AWS::Partition}:events:${HubRegion}:${HubAccountId}:event-bus/default"
	forwardRole   = "ForwardEventsRole"
	operatorsCond = "HasOperators"
)

func loadMember(t *testing.T) *Template {
	t.Helper()
	tpl, err := LoadTemplate(filepath.Join(moduleRoot(t), "member.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// requiredCache holds the actions each package's code needs (ModuleDeps and Scan run once
// per package and test binary).
var requiredCache = map[string]map[string][]string{}

func requiredActionsOf(t *testing.T, pkg string) map[string][]string {
	t.Helper()
	if r, ok := requiredCache[pkg]; ok {
		return r
	}
	root := moduleRoot(t)
	pkgs, err := ModuleDeps(root, pkg)
	if err != nil {
		t.Fatalf("listing the packages of %s: %v", pkg, err)
	}
	calls, err := Scan(root, pkgs)
	if err != nil {
		t.Fatalf("scanning %s: %v", pkg, err)
	}
	required, err := RequiredActions(calls)
	if err != nil {
		t.Fatal(err)
	}
	requiredCache[pkg] = required
	return required
}

func memberService(action string) bool {
	svc, _, _ := strings.Cut(action, ":")
	return slices.Contains(memberRoleServices, svc)
}

// readOnly reports whether an action only reads, by its verb.
func readOnly(action string) bool {
	_, op, _ := strings.Cut(action, ":")
	for _, verb := range []string{"Describe", "Get", "List", "Lookup"} {
		if strings.HasPrefix(op, verb) {
			return true
		}
	}
	return false
}

// readRoleWant: the read-only actions of the member services that imdsguard plan's code
// calls (with --all-regions, ec2:DescribeRegions).
func readRoleWant(t *testing.T) map[string][]string {
	want := map[string][]string{}
	for a, where := range requiredActionsOf(t, "./cmd/imdsguard") {
		if memberService(a) && readOnly(a) {
			want[a] = where
		}
	}
	return want
}

// enforceRoleWant: the actions of the member services that remediate's and verify's code
// call, less what verify links but never calls (linkedNotCalled).
func enforceRoleWant(t *testing.T) map[string][]string {
	want := map[string][]string{}
	for fn, pkg := range map[string]string{"RemediateFunction": functionPackages["RemediateFunction"], "VerifyFunction": functionPackages["VerifyFunction"]} {
		for a, where := range requiredActionsOf(t, pkg) {
			if _, notCalled := linkedNotCalled[fn][a]; notCalled || !memberService(a) {
				continue
			}
			want[a] = append(want[a], where...)
		}
	}
	return want
}

// memberRole returns a role of member.yaml and the statements of its permissions policies.
func memberRole(member *Template, name string) (Resource, []Statement, []string) {
	r, ok := member.Resource(name)
	if !ok || r.Type != "AWS::IAM::Role" {
		return Resource{}, nil, []string{fmt.Sprintf("member.yaml has no AWS::IAM::Role %s", name)}
	}
	stmts, problems := member.roleStatements(r, nil)
	if len(stmts) == 0 {
		problems = append(problems, fmt.Sprintf("%s grants nothing", name))
	}
	return r, stmts, problems
}

// grantsExactly compares a role's granted actions with want (without regard to case, as
// IAM compares them).
func grantsExactly(role string, stmts []Statement, want map[string][]string, what string) []string {
	var problems []string
	wanted := map[string]bool{}
	for a := range want {
		wanted[strings.ToLower(a)] = true
	}
	granted := map[string]bool{}
	for _, s := range stmts {
		if s.Effect != "Allow" {
			continue
		}
		for _, a := range s.Actions {
			granted[strings.ToLower(a)] = true
			if !wanted[strings.ToLower(a)] {
				problems = append(problems, fmt.Sprintf("%s grants %s, which is not one of %s: remove it", s, a, what))
			}
		}
	}
	for _, a := range slices.Sorted(maps.Keys(want)) {
		if !granted[strings.ToLower(a)] {
			problems = append(problems, fmt.Sprintf("%s does not grant %s, one of %s (called at %s)", role, a, what, strings.Join(want[a], "; ")))
		}
	}
	return problems
}

// readRoleProblems: imdsguard-read grants exactly what plan reads in a member, on "*".
func readRoleProblems(member *Template, want map[string][]string) []string {
	r, stmts, problems := memberRole(member, "ReadRole")
	if r.Node == nil {
		return problems
	}
	problems = append(problems, WildcardProblems(stmts)...)
	problems = append(problems, grantsExactly("ReadRole", stmts, want,
		"the read-only ec2, autoscaling, cloudwatch and cloudtrail actions ./cmd/imdsguard calls")...)
	// Unconditional: no Condition, and no guard but the role's own (CreateRoles).
	own := withResourceCondition(r.Node, nil)
	for _, s := range stmts {
		if s.Condition != nil || !slices.Equal(s.Guards, own) {
			problems = append(problems, fmt.Sprintf("%s: the read role's grants are unconditional", s))
		}
	}
	return problems
}

// enforceRoleProblems: imdsguard-enforce grants exactly what remediate and verify call in
// a member.
func enforceRoleProblems(member *Template, want map[string][]string) []string {
	r, stmts, problems := memberRole(member, "EnforceRole")
	if r.Node == nil {
		return problems
	}
	problems = append(problems, WildcardProblems(stmts)...)
	return append(problems, grantsExactly("EnforceRole", stmts, want,
		"the ec2, autoscaling, cloudwatch and cloudtrail actions ./functions/remediate and ./functions/verify call")...)
}

// subString returns the string of !Sub "...".
func subString(n *yaml.Node) (string, bool) {
	name, arg, ok := Intrinsic(n)
	if !ok || name != "Sub" {
		return "", false
	}
	return Scalar(arg)
}

var memberInstanceARN = regexp.MustCompile(`^arn:\$\{AWS::Partition\}:ec2:(\*|\$\{AWS::Region\}):\$\{AWS::AccountId\}:(instance|launch-template)/\*$`)

// enforceConditionProblems: imdsguard-enforce changes metadata options under the hub's
// conditions (towards IMDSv2 only; the rollback to optional only; never the endpoint; the
// hop limit bounded by the member's HopLimit and ContainerHopLimit), and every write it
// grants is limited to the account and to the stack's regions.
func enforceConditionProblems(member *Template) []string {
	r, stmts, problems := memberRole(member, "EnforceRole")
	if r.Node == nil {
		return problems
	}
	problems = append(problems, TokenConditionProblems(stmts)...)
	var enforce, rollback bool
	for _, s := range stmts {
		if s.Allows(ModifyMetadataAction) {
			if s.Sid == RollbackSid {
				rollback = true
			} else {
				enforce = true
			}
		}
		writes := slices.ContainsFunc(s.Actions, func(a string) bool { return !readOnly(a) })
		if !writes || s.Effect != "Allow" {
			continue
		}
		regionBound := s.conditionValue("StringEquals", "aws:RequestedRegion") != nil
		if resources, ok := Scalars(s.Resource); ok && slices.Equal(resources, []string{"*"}) {
			if !regionBound {
				problems = append(problems, fmt.Sprintf("%s grants %v on every resource without a region condition (StringEquals aws:RequestedRegion)", s, s.Actions))
			}
			continue
		}
		arn, ok := subString(s.Resource)
		m := memberInstanceARN.FindStringSubmatch(arn)
		switch {
		case !ok || m == nil:
			problems = append(problems, fmt.Sprintf("%s grants %v on %s: want !Sub arn:${AWS::Partition}:ec2:<region>:${AWS::AccountId}:instance/* (or launch-template/*)", s, s.Actions, describe(s.Resource)))
		case m[1] == "*" && !regionBound:
			problems = append(problems, fmt.Sprintf("%s grants %v in every region: add the condition StringEquals aws:RequestedRegion", s, s.Actions))
		}
	}
	if !enforce {
		problems = append(problems, fmt.Sprintf("EnforceRole does not allow %s towards IMDSv2: remediate cannot enforce", ModifyMetadataAction))
	}
	if !rollback {
		problems = append(problems, fmt.Sprintf("EnforceRole has no statement %s: verify cannot roll back", RollbackSid))
	}
	return problems
}

var hubFunctionRolePattern = regexp.MustCompile(`^arn:\$\{AWS::Partition\}:iam::\$\{HubAccountId\}:role/\$\{HubStackName\}-([A-Za-z0-9]+)Role-\*$`)

// trustProblems: each member role may be assumed only by principals of the hub account,
// of the organization, and only by the hub function roles it is meant for (or, the read
// role, by OperatorRoleArns); every such function is one of the hub's, whose role SAM makes.
func trustProblems(member, hub *Template) []string {
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(memberRoleTrust)) {
		r, ok := member.Resource(name)
		if !ok {
			problems = append(problems, fmt.Sprintf("member.yaml has no %s", name))
			continue
		}
		if got, _ := Scalar(Get(r.Properties(), "RoleName")); got != memberRoleNames[name] {
			problems = append(problems, fmt.Sprintf("%s: RoleName %q, want %q", name, got, memberRoleNames[name]))
		}
		stmts := AllStatements(Get(r.Properties(), "AssumeRolePolicyDocument"))
		if len(stmts) == 0 {
			problems = append(problems, fmt.Sprintf("%s has no trust policy statement", name))
		}
		var functions []string
		operators := 0
		for _, s := range stmts {
			s.Where = name + ".AssumeRolePolicyDocument." + s.Where
			if s.Effect != "Allow" || !slices.Equal(s.Actions, []string{"sts:AssumeRole"}) || s.NotAction {
				problems = append(problems, fmt.Sprintf("%s: want Effect Allow and Action sts:AssumeRole only", s))
			}
			if p := s.Principal; p == nil || p.Kind != yaml.MappingNode || len(p.Content) != 2 || p.Content[0].Value != "AWS" {
				problems = append(problems, fmt.Sprintf("%s: the principal must be the hub account only (Principal: {AWS: !Sub %s})", s, hubRoot))
			} else if arn, ok := subString(p.Content[1]); !ok || arn != hubRoot {
				problems = append(problems, fmt.Sprintf("%s: the principal is %s, want the hub account only (!Sub %s)", s, describe(p.Content[1]), hubRoot))
			}
			if org, ok := RefTarget(s.conditionValue("StringEquals", "aws:PrincipalOrgID")); !ok || org != "OrganizationId" {
				problems = append(problems, fmt.Sprintf("%s does not require StringEquals aws:PrincipalOrgID = !Ref OrganizationId", s))
			}
			arns := s.conditionValue("ArnLike", "aws:PrincipalArn")
			if target, ok := RefTarget(arns); ok {
				if target != "OperatorRoleArns" || name != "ReadRole" || !s.GrantedOnlyWhen(operatorsCond) {
					problems = append(problems, fmt.Sprintf("%s: ArnLike aws:PrincipalArn !Ref %s: only the read role trusts OperatorRoleArns, and only under !If [%s, ...]", s, target, operatorsCond))
				}
				operators++
				continue
			}
			if arns == nil || arns.Kind != yaml.SequenceNode || len(arns.Content) == 0 {
				problems = append(problems, fmt.Sprintf("%s does not limit the principals to the hub's function roles (ArnLike aws:PrincipalArn [...])", s))
				continue
			}
			for _, a := range arns.Content {
				arn, _ := subString(a)
				m := hubFunctionRolePattern.FindStringSubmatch(arn)
				if m == nil {
					problems = append(problems, fmt.Sprintf("%s trusts %s, which is not !Sub arn:${AWS::Partition}:iam::${HubAccountId}:role/${HubStackName}-<Function>Role-*", s, describe(a)))
					continue
				}
				functions = append(functions, m[1])
			}
		}
		sort.Strings(functions)
		if want := memberRoleTrust[name]; !slices.Equal(functions, want) {
			problems = append(problems, fmt.Sprintf("%s trusts the hub functions %v, want exactly %v", name, functions, want))
		}
		if name == "ReadRole" && operators != 1 {
			problems = append(problems, fmt.Sprintf("ReadRole has %d statements trusting OperatorRoleArns, want 1", operators))
		}
		for _, fn := range functions {
			res, ok := hub.Resource(fn)
			switch {
			case !ok || res.Type != "AWS::Serverless::Function":
				problems = append(problems, fmt.Sprintf("%s trusts the role of %s, which is not a function of template.yaml", name, fn))
			case Get(res.Properties(), "Role") != nil:
				problems = append(problems, fmt.Sprintf("%s trusts %sRole, but template.yaml's %s names its own Role: SAM makes no %sRole", name, fn, fn, fn))
			}
		}
	}
	return problems
}

// forwardingProblems: the forwarding role may only put events on the hub's default bus,
// only EventBridge of the member account assumes it, and every rule's one target is that
// bus through that role. Every IAM statement of member.yaml is in its three roles.
func forwardingProblems(member *Template) []string {
	r, stmts, problems := memberRole(member, forwardRole)
	if r.Node == nil {
		return problems
	}
	for _, s := range stmts {
		arn, _ := subString(s.Resource)
		if s.Effect != "Allow" || !slices.Equal(s.Actions, []string{"events:PutEvents"}) || arn != hubBus {
			problems = append(problems, fmt.Sprintf("%s: %s may only Allow events:PutEvents on !Sub %s", s, forwardRole, hubBus))
		}
	}
	trust := AllStatements(Get(r.Properties(), "AssumeRolePolicyDocument"))
	if len(trust) != 1 {
		problems = append(problems, fmt.Sprintf("%s: %d trust statements, want 1", forwardRole, len(trust)))
	}
	for _, s := range trust {
		service, _ := Scalar(Get(s.Principal, "Service"))
		account, _ := RefTarget(s.conditionValue("StringEquals", "aws:SourceAccount"))
		if s.Effect != "Allow" || !slices.Equal(s.Actions, []string{"sts:AssumeRole"}) || service != "events.amazonaws.com" || s.Principal == nil || len(s.Principal.Content) != 2 || account != "AWS::AccountId" {
			problems = append(problems, fmt.Sprintf("%s: %s must trust only events.amazonaws.com, with StringEquals aws:SourceAccount = !Ref AWS::AccountId", s, forwardRole))
		}
	}
	rules := member.ResourcesOfType("AWS::Events::Rule")
	if len(rules) == 0 {
		problems = append(problems, "member.yaml forwards no event (no AWS::Events::Rule)")
	}
	for _, rule := range rules {
		targets := Get(rule.Properties(), "Targets")
		if targets == nil || targets.Kind != yaml.SequenceNode || len(targets.Content) != 1 {
			problems = append(problems, fmt.Sprintf("%s: want exactly one target, the hub's bus", rule.Name))
			continue
		}
		arn, _ := subString(Get(targets.Content[0], "Arn"))
		role, attr, _ := GetAttTarget(Get(targets.Content[0], "RoleArn"))
		if arn != hubBus || role != forwardRole || attr != "Arn" {
			problems = append(problems, fmt.Sprintf("%s: the target must be !Sub %s with RoleArn !GetAtt %s.Arn", rule.Name, hubBus, forwardRole))
		}
	}
	for _, s := range AllStatements(member.Root) {
		if !strings.HasPrefix(s.Where, "Resources.ReadRole.") && !strings.HasPrefix(s.Where, "Resources.EnforceRole.") && !strings.HasPrefix(s.Where, "Resources."+forwardRole+".") {
			problems = append(problems, fmt.Sprintf("%s: member.yaml grants only through ReadRole, EnforceRole and %s", s, forwardRole))
		}
	}
	return problems
}

// decoded is a YAML node's value with its intrinsic functions kept (as {"Fn::Sub": ...},
// whichever form they are written in), for comparing templates' values.
func decoded(n *yaml.Node) any {
	n = resolve(n)
	if n == nil {
		return nil
	}
	if name, arg, ok := Intrinsic(n); ok {
		return map[string]any{"Fn::" + name: decoded(arg)}
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = decoded(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			s = append(s, decoded(c))
		}
		return s
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return fmt.Sprintf("undecodable %q: %v", n.Value, err)
	}
	return v
}

// patternProblems: member.yaml forwards, for each EventBridge rule of the hub's
// DetectFunction (event E), the same pattern in its rule ForwardE, and nothing else.
func patternProblems(member, hub *Template) []string {
	var problems []string
	fn, ok := hub.Resource("DetectFunction")
	if !ok {
		return []string{"template.yaml has no DetectFunction"}
	}
	hubPatterns := map[string]*yaml.Node{}
	events := Get(fn.Properties(), "Events")
	for i := 0; events != nil && i+1 < len(events.Content); i += 2 {
		if typ, _ := Scalar(Get(events.Content[i+1], "Type")); typ == "EventBridgeRule" {
			hubPatterns["Forward"+events.Content[i].Value] = Get(Get(events.Content[i+1], "Properties"), "Pattern")
		}
	}
	if len(hubPatterns) == 0 {
		problems = append(problems, "DetectFunction has no EventBridgeRule event")
	}
	rules := map[string]Resource{}
	for _, r := range member.ResourcesOfType("AWS::Events::Rule") {
		rules[r.Name] = r
		if _, ok := hubPatterns[r.Name]; !ok {
			problems = append(problems, fmt.Sprintf("member.yaml's rule %s forwards what no EventBridgeRule event of DetectFunction matches", r.Name))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(hubPatterns)) {
		r, ok := rules[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("member.yaml has no rule %s forwarding DetectFunction's event %s", name, strings.TrimPrefix(name, "Forward")))
			continue
		}
		got, want := decoded(Get(r.Properties(), "EventPattern")), decoded(hubPatterns[name])
		if want == nil || !reflect.DeepEqual(got, want) {
			problems = append(problems, fmt.Sprintf("member.yaml's %s EventPattern\n  %v\nis not DetectFunction's %s Pattern\n  %v", name, got, strings.TrimPrefix(name, "Forward"), want))
		}
	}
	return problems
}

// stackSetProblems: the hub's MemberStackSet deploys member.yaml as a service-managed,
// auto-deployed StackSet, passing every member parameter without a default, only member
// parameters, the hub's own account and stack name, and each hub parameter of the same
// name (the hop limits, ConfigRuleMatch, OrganizationId) as it is; and the hub's bus
// admits the organization only.
func stackSetProblems(member, hub *Template) []string {
	var problems []string
	ss, ok := hub.Resource("MemberStackSet")
	if !ok || ss.Type != "AWS::CloudFormation::StackSet" {
		return []string{"template.yaml has no AWS::CloudFormation::StackSet MemberStackSet"}
	}
	props := ss.Properties()
	if cond, _ := Scalar(Get(ss.Node, "Condition")); cond != "DeployMembers" {
		problems = append(problems, fmt.Sprintf("MemberStackSet: Condition %q, want DeployMembers", cond))
	}
	if got, _ := Scalar(Get(props, "PermissionModel")); got != "SERVICE_MANAGED" {
		problems = append(problems, fmt.Sprintf("MemberStackSet: PermissionModel %q, want SERVICE_MANAGED", got))
	}
	if got, _ := Scalar(Get(Get(props, "AutoDeployment"), "Enabled")); got != "true" {
		problems = append(problems, "MemberStackSet: AutoDeployment.Enabled must be true (accounts that join the OUs get member.yaml)")
	}
	if caps, _ := Scalars(Get(props, "Capabilities")); !slices.Contains(caps, "CAPABILITY_NAMED_IAM") {
		problems = append(problems, "MemberStackSet: Capabilities must hold CAPABILITY_NAMED_IAM (member.yaml names its roles)")
	}
	for key, param := range map[string]string{"TemplateURL": "MemberTemplateURL", "CallAs": "MemberCallAs"} {
		if target, ok := RefTarget(Get(props, key)); !ok || target != param {
			problems = append(problems, fmt.Sprintf("MemberStackSet: %s must be !Ref %s", key, param))
		}
	}
	groups := Get(props, "StackInstancesGroup")
	if groups == nil || groups.Kind != yaml.SequenceNode || len(groups.Content) != 1 {
		problems = append(problems, "MemberStackSet: want one StackInstancesGroup")
	} else {
		ous, _ := RefTarget(Get(Get(groups.Content[0], "DeploymentTargets"), "OrganizationalUnitIds"))
		regions, _ := RefTarget(Get(groups.Content[0], "Regions"))
		if ous != "MemberOrganizationalUnitIds" || regions != "MemberRegions" {
			problems = append(problems, "MemberStackSet: the StackInstancesGroup must be DeploymentTargets.OrganizationalUnitIds !Ref MemberOrganizationalUnitIds, Regions !Ref MemberRegions")
		}
	}

	// What each member parameter is passed: the hub's account and stack name; a hub list as
	// the comma-separated string a CommaDelimitedList takes; and a parameter the hub has
	// too (the hop limits, ConfigRuleMatch, OrganizationId), the hub's own value.
	want := map[string]*yaml.Node{
		"HubAccountId":     parsedValue("!Ref AWS::AccountId"),
		"HubStackName":     parsedValue("!Ref AWS::StackName"),
		"HubRegion":        parsedValue("!Ref AWS::Region"),
		"Regions":          parsedValue(`!Join [",", !Ref MemberRegions]`),
		"OperatorRoleArns": parsedValue(`!Join [",", !Ref MemberOperatorRoleArns]`),
	}
	mparams := Get(member.Root, "Parameters")
	for i := 0; i+1 < len(mparams.Content); i += 2 {
		name := mparams.Content[i].Value
		if _, ok := want[name]; !ok && hub.Parameter(name) != nil {
			want[name] = parsedValue("!Ref " + name)
		}
		if _, ok := want[name]; !ok && Get(mparams.Content[i+1], "Default") == nil {
			want[name] = nil // passed, as anything
		}
	}
	passed := map[string]bool{}
	params := Get(props, "Parameters")
	for i := 0; params != nil && i < len(params.Content); i++ {
		key, _ := Scalar(Get(params.Content[i], "ParameterKey"))
		value := Get(params.Content[i], "ParameterValue")
		passed[key] = true
		if member.Parameter(key) == nil {
			problems = append(problems, fmt.Sprintf("MemberStackSet passes %s, which is not a parameter of member.yaml", key))
			continue
		}
		if w := want[key]; w != nil && !reflect.DeepEqual(decoded(value), decoded(w)) {
			problems = append(problems, fmt.Sprintf("MemberStackSet passes %s = %v, want %v", key, decoded(value), decoded(w)))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if !passed[name] {
			problems = append(problems, fmt.Sprintf("MemberStackSet does not pass member.yaml's parameter %s", name))
		}
	}

	pol, ok := hub.Resource("MemberEventsBusPolicy")
	if !ok || pol.Type != "AWS::Events::EventBusPolicy" {
		return append(problems, "template.yaml has no AWS::Events::EventBusPolicy MemberEventsBusPolicy")
	}
	stmts := AllStatements(pol.Node)
	if len(stmts) == 0 {
		problems = append(problems, "MemberEventsBusPolicy has no statement")
	}
	for _, s := range stmts {
		arn, _ := subString(s.Resource)
		org, _ := RefTarget(s.conditionValue("StringEquals", "aws:PrincipalOrgID"))
		if !slices.Equal(s.Actions, []string{"events:PutEvents"}) || org != "OrganizationId" ||
			arn != "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default" || !s.GrantedOnlyWhen("DeployMembers") {
			problems = append(problems, fmt.Sprintf("%s: the hub's bus may admit only events:PutEvents on its default bus, with StringEquals aws:PrincipalOrgID = !Ref OrganizationId, under DeployMembers", s))
		}
	}
	return problems
}

// parameterProblems: the member parameters that carry a hub parameter's value accept
// exactly what the hub's does, so that the StackSet never passes a value member.yaml
// refuses, and the member bounds the hop limit as the hub does.
func parameterProblems(member, hub *Template) []string {
	var problems []string
	for memberName, hubName := range map[string]string{
		"HopLimit": "HopLimit", "ContainerHopLimit": "ContainerHopLimit", "ConfigRuleMatch": "ConfigRuleMatch",
		"OperatorRoleArns": "MemberOperatorRoleArns", "Regions": "MemberRegions",
	} {
		m, h := member.Parameter(memberName), hub.Parameter(hubName)
		if m == nil || h == nil {
			problems = append(problems, fmt.Sprintf("member.yaml's %s or template.yaml's %s is missing", memberName, hubName))
			continue
		}
		for _, key := range []string{"Type", "Default", "AllowedPattern", "AllowedValues", "MinLength", "MaxLength", "ConstraintDescription"} {
			mv, hv := decoded(Get(m, key)), decoded(Get(h, key))
			if key == "ConstraintDescription" && memberName == "OperatorRoleArns" {
				continue // "of the hub account" is "of this account" in the hub
			}
			if !reflect.DeepEqual(mv, hv) {
				problems = append(problems, fmt.Sprintf("member.yaml's %s %s is %v, template.yaml's %s has %v", memberName, key, mv, hubName, hv))
			}
		}
	}
	return problems
}

func reportProblems(t *testing.T, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Error(p)
	}
}

// ------------------------------------------------------------------ the real templates

func TestMemberNoWildcardActions(t *testing.T) {
	stmts := AllStatements(loadMember(t).Root)
	if len(stmts) == 0 {
		t.Fatal("no IAM statement found in member.yaml")
	}
	reportProblems(t, WildcardProblems(stmts))
}

// TestMemberReadRoleGrantsWhatPlanReads: imdsguard-read is exactly the read-only EC2, Auto
// Scaling, CloudWatch and CloudTrail actions imdsguard plan calls, ec2:DescribeRegions
// (--all-regions) among them, found in the code.
func TestMemberReadRoleGrantsWhatPlanReads(t *testing.T) {
	want := readRoleWant(t)
	if _, ok := want["ec2:DescribeRegions"]; ok {
		t.Logf("ec2:DescribeRegions is called at %s", strings.Join(want["ec2:DescribeRegions"], "; "))
	}
	t.Logf("the read role must grant: %s", strings.Join(slices.Sorted(maps.Keys(want)), ", "))
	reportProblems(t, readRoleProblems(loadMember(t), want))
}

// TestMemberEnforceRoleGrantsWhatRemediateAndVerifyCall: imdsguard-enforce is exactly the
// EC2, Auto Scaling, CloudWatch and CloudTrail actions remediate's and verify's code call.
func TestMemberEnforceRoleGrantsWhatRemediateAndVerifyCall(t *testing.T) {
	want := enforceRoleWant(t)
	t.Logf("the enforce role must grant: %s", strings.Join(slices.Sorted(maps.Keys(want)), ", "))
	reportProblems(t, enforceRoleProblems(loadMember(t), want))
}

// TestMemberEnforceRoleOnlyTowardsIMDSv2: the member's ec2:ModifyInstanceMetadataOptions
// statements pass the hub's checks, and every write is bounded to the account and regions.
func TestMemberEnforceRoleOnlyTowardsIMDSv2(t *testing.T) {
	reportProblems(t, enforceConditionProblems(loadMember(t)))
}

// TestMemberRolesTrustOnlyTheHub: only the hub's function roles (and, for the read role,
// OperatorRoleArns) in the hub account, within the organization, assume the member roles.
func TestMemberRolesTrustOnlyTheHub(t *testing.T) {
	reportProblems(t, trustProblems(loadMember(t), loadTemplate(t)))
}

// TestMemberForwardsOnlyToTheHubBus: the forwarding role and the rules' targets.
func TestMemberForwardsOnlyToTheHubBus(t *testing.T) {
	reportProblems(t, forwardingProblems(loadMember(t)))
}

// TestMemberForwardsDetectsEvents: the forwarded patterns are DetectFunction's.
func TestMemberForwardsDetectsEvents(t *testing.T) {
	reportProblems(t, patternProblems(loadMember(t), loadTemplate(t)))
}

// TestMemberStackSet: the hub deploys member.yaml with its own parameters, and its bus
// admits the organization only.
func TestMemberStackSet(t *testing.T) {
	reportProblems(t, stackSetProblems(loadMember(t), loadTemplate(t)))
}

// TestMemberParametersMatchTheHub: the parameters the StackSet fills from the hub's accept
// what the hub's accept.
func TestMemberParametersMatchTheHub(t *testing.T) {
	reportProblems(t, parameterProblems(loadMember(t), loadTemplate(t)))
}

// ------------------------------------------------------------------ the checks can fail

// parsedValue parses one YAML value (nil if it does not parse).
func parsedValue(src string) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil || len(doc.Content) != 1 {
		return nil
	}
	return doc.Content[0]
}

// yamlValue parses one YAML value.
func yamlValue(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("%q: %v", src, err)
	}
	return doc.Content[0]
}

// findMapping returns the first mapping under n (depth first) that has key with the
// scalar value, or nil.
func findMapping(n *yaml.Node, key, value string) *yaml.Node {
	n = resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key && n.Content[i+1].Kind == yaml.ScalarNode && n.Content[i+1].Value == value {
				return n
			}
		}
	}
	for _, c := range n.Content {
		if m := findMapping(c, key, value); m != nil {
			return m
		}
	}
	return nil
}

// statementNode returns the statement with the Sid in a resource of tpl.
func statementNode(t *testing.T, tpl *Template, resource, sid string) *yaml.Node {
	t.Helper()
	r, ok := tpl.Resource(resource)
	if !ok {
		t.Fatalf("%s has no resource %s", tpl.Path, resource)
	}
	s := findMapping(r.Node, "Sid", sid)
	if s == nil {
		t.Fatalf("%s: no statement %s in %s", tpl.Path, sid, resource)
	}
	return s
}

// set replaces (or adds) key in mapping m.
func set(m *yaml.Node, key string, value *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = value
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, value)
}

// drop removes key from mapping m.
func drop(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = slices.Delete(m.Content, i, i+2)
			return
		}
	}
}

// TestMemberChecksCatchMistakes breaks member.yaml (or the hub) in memory, one mistake at
// a time, and wants the check that guards against it to say so.
func TestMemberChecksCatchMistakes(t *testing.T) {
	readWant, enforceWant := readRoleWant(t), enforceRoleWant(t)
	type check func(member, hub *Template) []string
	var (
		read    check = func(m, _ *Template) []string { return readRoleProblems(m, readWant) }
		enforce check = func(m, _ *Template) []string { return enforceRoleProblems(m, enforceWant) }
		conds   check = func(m, _ *Template) []string { return enforceConditionProblems(m) }
		trust   check = trustProblems
		forward check = func(m, _ *Template) []string { return forwardingProblems(m) }
		pattern check = patternProblems
		stack   check = stackSetProblems
		params  check = parameterProblems
	)
	for _, c := range []struct {
		name   string
		mutate func(t *testing.T, member, hub *Template)
		check  check
		want   string
	}{
		{"the read role may write", func(t *testing.T, m, _ *Template) {
			s := statementNode(t, m, "ReadRole", "ReadInventorySourcesAndEvidence")
			a := Get(s, "Action")
			a.Content = append(a.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "ec2:ModifyInstanceMetadataOptions"})
		}, read, "grants ec2:ModifyInstanceMetadataOptions, which is not one of"},
		{"the read role cannot list regions", func(t *testing.T, m, _ *Template) {
			a := Get(statementNode(t, m, "ReadRole", "ReadInventorySourcesAndEvidence"), "Action")
			a.Content = slices.DeleteFunc(a.Content, func(n *yaml.Node) bool { return n.Value == "ec2:DescribeRegions" })
		}, read, "does not grant ec2:DescribeRegions"},
		{"the read role reads S3", func(t *testing.T, m, _ *Template) {
			s := statementNode(t, m, "ReadRole", "ReadInventorySourcesAndEvidence")
			Get(s, "Action").Content[0].Value = "s3:GetObject"
		}, read, "grants s3:GetObject"},
		{"the enforce role cannot read CloudTrail", func(t *testing.T, m, _ *Template) {
			set(statementNode(t, m, "EnforceRole", "ReadEvidence"), "Action", yamlValue(t, "[cloudwatch:GetMetricData]"))
		}, enforce, "does not grant cloudtrail:LookupEvents"},
		{"the enforce role may terminate", func(t *testing.T, m, _ *Template) {
			set(statementNode(t, m, "EnforceRole", "ReadInventory"), "Action", yamlValue(t, "[ec2:DescribeInstances, ec2:TerminateInstances]"))
		}, enforce, "grants ec2:TerminateInstances"},
		{"the enforce role may set IMDSv1", func(t *testing.T, m, _ *Template) {
			eq := Get(Get(statementNode(t, m, "EnforceRole", "EnforceIMDSv2Only"), "Condition"), "StringEquals")
			set(eq, "ec2:MetadataHttpTokens", yamlValue(t, "optional"))
		}, conds, "without the condition StringEquals ec2:MetadataHttpTokens = required"},
		{"the enforce role may raise the hop limit", func(t *testing.T, m, _ *Template) {
			drop(Get(statementNode(t, m, "EnforceRole", "EnforceIMDSv2Only"), "Condition"), "NumericLessThanEqualsIfExists")
		}, conds, "without bounding the hop limit"},
		{"the rollback may touch the endpoint", func(t *testing.T, m, _ *Template) {
			drop(Get(statementNode(t, m, "EnforceRole", RollbackSid), "Condition"), "Null")
		}, conds, "to set the endpoint"},
		{"the rollback is gone", func(t *testing.T, m, _ *Template) {
			s := statementNode(t, m, "EnforceRole", RollbackSid)
			set(s, "Sid", yamlValue(t, "Renamed"))
		}, conds, "verify cannot roll back"},
		{"the enforcement is on every instance", func(t *testing.T, m, _ *Template) {
			set(statementNode(t, m, "EnforceRole", "EnforceIMDSv2Only"), "Resource", yamlValue(t, `"*"`))
		}, conds, "on every resource"},
		{"the account defaults in every region", func(t *testing.T, m, _ *Template) {
			drop(statementNode(t, m, "EnforceRole", "FixAccountDefaults"), "Condition")
		}, conds, "without a region condition"},
		{"the launch templates of another account", func(t *testing.T, m, _ *Template) {
			set(statementNode(t, m, "EnforceRole", "FixLaunchTemplates"), "Resource", yamlValue(t, "!Sub arn:${AWS::Partition}:ec2:*:*:launch-template/*"))
		}, conds, "want !Sub arn:${AWS::Partition}:ec2:<region>:${AWS::AccountId}:instance/*"},
		{"the enforce role outside the organization", func(t *testing.T, m, _ *Template) {
			drop(Get(statementNode(t, m, "EnforceRole", "HubRemediateAndVerify"), "Condition"), "StringEquals")
		}, trust, "does not require StringEquals aws:PrincipalOrgID"},
		{"the read role trusts everyone", func(t *testing.T, m, _ *Template) {
			set(statementNode(t, m, "ReadRole", "HubFunctions"), "Principal", yamlValue(t, `{AWS: "*"}`))
		}, trust, "want the hub account only"},
		{"the read role trusts a service", func(t *testing.T, m, _ *Template) {
			set(statementNode(t, m, "ReadRole", "HubFunctions"), "Principal", yamlValue(t, `{Service: lambda.amazonaws.com}`))
		}, trust, "the principal must be the hub account only"},
		{"the enforce role trusts detect", func(t *testing.T, m, _ *Template) {
			arns := Get(Get(Get(statementNode(t, m, "EnforceRole", "HubRemediateAndVerify"), "Condition"), "ArnLike"), "aws:PrincipalArn")
			arns.Content = append(arns.Content, yamlValue(t, "!Sub arn:${AWS::Partition}:iam::${HubAccountId}:role/${HubStackName}-DetectFunctionRole-*"))
		}, trust, "want exactly [RemediateFunction VerifyFunction]"},
		{"the read role trusts any role of the hub", func(t *testing.T, m, _ *Template) {
			drop(Get(statementNode(t, m, "ReadRole", "HubFunctions"), "Condition"), "ArnLike")
		}, trust, "does not limit the principals"},
		{"the enforce role trusts the operators", func(t *testing.T, m, _ *Template) {
			set(Get(Get(statementNode(t, m, "EnforceRole", "HubRemediateAndVerify"), "Condition"), "ArnLike"), "aws:PrincipalArn", yamlValue(t, "!Ref OperatorRoleArns"))
		}, trust, "only the read role trusts OperatorRoleArns"},
		{"a trusted function has its own role", func(t *testing.T, _, h *Template) {
			fn, _ := h.Resource("VerifyFunction")
			set(fn.Properties(), "Role", yamlValue(t, "!GetAtt SomeRole.Arn"))
		}, trust, "SAM makes no VerifyFunctionRole"},
		{"the read role is renamed", func(t *testing.T, m, _ *Template) {
			r, _ := m.Resource("ReadRole")
			set(r.Properties(), "RoleName", yamlValue(t, "imdsguard-reader"))
		}, trust, `want "imdsguard-read"`},
		{"the forwarding role puts events anywhere", func(t *testing.T, m, _ *Template) {
			set(statementNode(t, m, forwardRole, "PutEventsOnTheHubBus"), "Resource", yamlValue(t, `"*"`))
		}, forward, "may only Allow events:PutEvents"},
		{"the forwarding role is any service's", func(t *testing.T, m, _ *Template) {
			drop(statementNode(t, m, forwardRole, "EventBridgeOfThisAccount"), "Condition")
		}, forward, "aws:SourceAccount"},
		{"a rule forwards elsewhere", func(t *testing.T, m, _ *Template) {
			r, _ := m.Resource("ForwardInstanceRunning")
			set(Get(r.Properties(), "Targets").Content[0], "Arn", yamlValue(t, "!Sub arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"))
		}, forward, "ForwardInstanceRunning: the target must be"},
		{"a policy outside the three roles", func(t *testing.T, m, _ *Template) {
			res := Get(m.Root, "Resources")
			res.Content = append(res.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "Extra"}, yamlValue(t,
				"{Type: AWS::IAM::ManagedPolicy, Properties: {PolicyDocument: {Statement: [{Sid: Extra, Effect: Allow, Action: ec2:DescribeInstances, Resource: '*'}]}}}"))
		}, forward, "member.yaml grants only through"},
		{"a forwarded pattern differs", func(t *testing.T, m, _ *Template) {
			r, _ := m.Resource("ForwardInstanceRunning")
			set(Get(Get(r.Properties(), "EventPattern"), "detail"), "state", yamlValue(t, "[running, stopped]"))
		}, pattern, "ForwardInstanceRunning EventPattern"},
		{"the Config rule match is a literal", func(t *testing.T, m, _ *Template) {
			r, _ := m.Resource("ForwardConfigCompliance")
			w := findMapping(r.Node, "wildcard", "*${ConfigRuleMatch}*")
			set(w, "wildcard", yamlValue(t, `"*${ConfigRuleMatch}*"`))
		}, pattern, "ForwardConfigCompliance EventPattern"},
		{"the hub's detect reacts to a new event", func(t *testing.T, _, h *Template) {
			fn, _ := h.Resource("DetectFunction")
			events := Get(fn.Properties(), "Events")
			events.Content = append(events.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "InstanceStopped"},
				yamlValue(t, "{Type: EventBridgeRule, Properties: {Pattern: {source: [aws.ec2], detail: {state: [stopped]}}}}"))
		}, pattern, "no rule ForwardInstanceStopped"},
		{"a member rule the hub does not have", func(t *testing.T, m, _ *Template) {
			res := Get(m.Root, "Resources")
			res.Content = append(res.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "ForwardEverything"},
				yamlValue(t, "{Type: AWS::Events::Rule, Properties: {EventPattern: {source: [{prefix: ''}]}}}"))
		}, pattern, "ForwardEverything forwards what no EventBridgeRule event"},
		{"the StackSet does not pass the hop limit", func(t *testing.T, _, h *Template) {
			ss, _ := h.Resource("MemberStackSet")
			p := Get(ss.Properties(), "Parameters")
			p.Content = slices.DeleteFunc(p.Content, func(n *yaml.Node) bool { v, _ := Scalar(Get(n, "ParameterKey")); return v == "HopLimit" })
		}, stack, "does not pass member.yaml's parameter HopLimit"},
		{"the StackSet passes another hop limit", func(t *testing.T, _, h *Template) {
			ss, _ := h.Resource("MemberStackSet")
			p := findMapping(Get(ss.Properties(), "Parameters"), "ParameterKey", "ContainerHopLimit")
			set(p, "ParameterValue", yamlValue(t, "!Ref HopLimit"))
		}, stack, "ContainerHopLimit = map[Fn::Ref:HopLimit], want map[Fn::Ref:ContainerHopLimit]"},
		{"the StackSet names a parameter member.yaml lacks", func(t *testing.T, m, _ *Template) {
			drop(Get(m.Root, "Parameters"), "ConfigRuleMatch")
		}, stack, "passes ConfigRuleMatch, which is not a parameter of member.yaml"},
		{"the hub's bus admits everyone", func(t *testing.T, _, h *Template) {
			drop(statementNode(t, h, "MemberEventsBusPolicy", "OrganizationPutsEvents"), "Condition")
		}, stack, "aws:PrincipalOrgID"},
		{"the StackSet passes the region list as it is", func(t *testing.T, _, h *Template) {
			ss, _ := h.Resource("MemberStackSet")
			p := findMapping(Get(ss.Properties(), "Parameters"), "ParameterKey", "Regions")
			set(p, "ParameterValue", yamlValue(t, "!Select [0, !Ref MemberRegions]"))
		}, stack, "MemberStackSet passes Regions"},
		{"the StackSet is self-managed", func(t *testing.T, _, h *Template) {
			ss, _ := h.Resource("MemberStackSet")
			set(ss.Properties(), "PermissionModel", yamlValue(t, "SELF_MANAGED"))
		}, stack, "want SERVICE_MANAGED"},
		{"a member hop limit the hub refuses", func(t *testing.T, m, _ *Template) {
			set(m.Parameter("ContainerHopLimit"), "AllowedPattern", yamlValue(t, "'^[0-9]+$'"))
		}, params, "ContainerHopLimit AllowedPattern"},
	} {
		t.Run(c.name, func(t *testing.T) {
			member, hub := loadMember(t), loadTemplate(t)
			if before := c.check(member, hub); len(before) != 0 {
				t.Fatalf("the check already fails on the real templates:\n%s", strings.Join(before, "\n"))
			}
			c.mutate(t, member, hub)
			got := c.check(member, hub)
			if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, c.want) }) {
				t.Errorf("after the mistake, want a problem containing %q; got:\n%s", c.want, strings.Join(got, "\n"))
			}
		})
	}
}
