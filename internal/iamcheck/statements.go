package iamcheck

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Guard is one Fn::If a statement is inside: the statement exists only when the template
// condition Condition is Branch (true for the If's second argument, false for its third).
type Guard struct {
	Condition string
	Branch    bool
}

func (g Guard) String() string { return fmt.Sprintf("%s=%t", g.Condition, g.Branch) }

// Statement is one IAM policy statement found in the template.
type Statement struct {
	// Where names the statement: its path in the template, with its Sid.
	Where  string
	Line   int
	Sid    string
	Effect string
	// Guards are the conditions the statement exists under, outermost first: the Fn::If it
	// is inside (on the statement, its policy document or a Policies entry) and the
	// Condition of the resource it is in. None means it is always granted.
	Guards []Guard
	// Actions are the literal actions; ActionsOpaque is set when Action is an intrinsic
	// function (or holds one) and so cannot be checked.
	Actions       []string
	ActionsOpaque bool
	// NotAction is set when the statement uses NotAction.
	NotAction bool
	Principal *yaml.Node // resource policies only
	Resource  *yaml.Node
	Condition *yaml.Node
}

// Allows reports whether the statement allows action (IAM compares actions without
// regard to case).
func (s Statement) Allows(action string) bool {
	if s.Effect != "Allow" {
		return false
	}
	return slices.ContainsFunc(s.Actions, func(a string) bool { return strings.EqualFold(a, action) })
}

func (s Statement) String() string { return fmt.Sprintf("%s (line %d)", s.Where, s.Line) }

// GrantedOnlyWhen reports whether the statement exists only when the template condition
// is true: one of its guards is the true branch of an Fn::If on that condition.
func (s Statement) GrantedOnlyWhen(condition string) bool {
	return slices.Contains(s.Guards, Guard{Condition: condition, Branch: true})
}

// ifBranches returns the condition name and the two branches of an Fn::If (!If [cond,
// then, else]); false for anything else.
func ifBranches(n *yaml.Node) (cond string, then, els *yaml.Node, ok bool) {
	name, arg, isFn := Intrinsic(n)
	if !isFn || name != "If" || arg.Kind != yaml.SequenceNode || len(arg.Content) != 3 {
		return "", nil, nil, false
	}
	cond, ok = Scalar(arg.Content[0])
	return cond, resolve(arg.Content[1]), resolve(arg.Content[2]), ok
}

// withGuard returns guards with g appended, without sharing guards' backing array.
func withGuard(guards []Guard, g Guard) []Guard {
	return append(slices.Clip(guards), g)
}

// withResourceCondition adds the guard of a resource's Condition (a mapping with a Type
// and a Condition that name them) to guards.
func withResourceCondition(n *yaml.Node, guards []Guard) []Guard {
	if _, isResource := Scalar(Get(n, "Type")); !isResource {
		return guards
	}
	if cond, ok := Scalar(Get(n, "Condition")); ok {
		return withGuard(guards, Guard{cond, true})
	}
	return guards
}

// isNoValue reports whether n is !Ref AWS::NoValue.
func isNoValue(n *yaml.Node) bool {
	target, ok := RefTarget(n)
	return ok && target == "AWS::NoValue"
}

// AllStatements finds every IAM policy statement anywhere in the template: function
// Policies, roles, managed policies, queue, topic and key policies, trust policies, and
// both branches of an !If, with the !If around them as their Guards (and a resource's
// Condition as a guard of the statements in it). A statement is a mapping with an Effect
// inside a Statement key.
func AllStatements(root *yaml.Node) []Statement {
	var out []Statement
	var walk func(n *yaml.Node, path string, guards []Guard)
	walk = func(n *yaml.Node, path string, guards []Guard) {
		n = resolve(n)
		if n == nil {
			return
		}
		if cond, then, els, ok := ifBranches(n); ok {
			walk(then, path+"(if "+cond+")", withGuard(guards, Guard{cond, true}))
			walk(els, path+"(if not "+cond+")", withGuard(guards, Guard{cond, false}))
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			guards := withResourceCondition(n, guards)
			for i := 0; i+1 < len(n.Content); i += 2 {
				key, val := n.Content[i].Value, resolve(n.Content[i+1])
				if key == "Statement" {
					if stmts := statementsIn(val, path+".Statement", guards); len(stmts) > 0 {
						out = append(out, stmts...)
						continue
					}
				}
				walk(val, path+"."+key, guards)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i), guards)
			}
		}
	}
	walk(root, "", nil)
	return out
}

// statementsIn parses the value of a Statement key: one statement or a list of them.
// Entries that are !If are expanded into both branches, each with its guard added to
// guards (those of the policy the Statement key is in).
func statementsIn(n *yaml.Node, path string, guards []Guard) []Statement {
	var out []Statement
	var add func(n *yaml.Node, path string, guards []Guard)
	add = func(n *yaml.Node, path string, guards []Guard) {
		n = resolve(n)
		if cond, then, els, ok := ifBranches(n); ok {
			add(then, path+"(if "+cond+")", withGuard(guards, Guard{cond, true}))
			add(els, path+"(if not "+cond+")", withGuard(guards, Guard{cond, false}))
			return
		}
		if n == nil || IsIntrinsic(n) {
			return
		}
		if n.Kind == yaml.SequenceNode {
			for i, c := range n.Content {
				add(c, fmt.Sprintf("%s[%d]", path, i), guards)
			}
			return
		}
		if n.Kind != yaml.MappingNode || Get(n, "Effect") == nil {
			return
		}
		out = append(out, parseStatement(n, path, guards))
	}
	add(n, path, guards)
	return out
}

func parseStatement(n *yaml.Node, path string, guards []Guard) Statement {
	s := Statement{Line: n.Line, Principal: Get(n, "Principal"), Resource: Get(n, "Resource"), Condition: Get(n, "Condition"), Guards: guards}
	s.Sid, _ = Scalar(Get(n, "Sid"))
	s.Effect, _ = Scalar(Get(n, "Effect"))
	s.Where = strings.TrimPrefix(path, ".")
	if s.Sid != "" {
		s.Where += " (Sid " + s.Sid + ")"
	}
	if Get(n, "NotAction") != nil {
		s.NotAction = true
	}
	if a := Get(n, "Action"); a != nil {
		s.Actions, s.ActionsOpaque = actionsOf(a)
	}
	return s
}

// actionsOf reads an Action value; opaque reports that some of it is an intrinsic
// function, whose value cannot be known from the template.
func actionsOf(n *yaml.Node) (actions []string, opaque bool) {
	n = resolve(n)
	if IsIntrinsic(n) {
		return nil, true
	}
	if s, ok := Scalar(n); ok {
		return []string{s}, false
	}
	if n.Kind != yaml.SequenceNode {
		return nil, true
	}
	for _, c := range n.Content {
		s, ok := Scalar(c)
		if !ok {
			opaque = true
			continue
		}
		actions = append(actions, s)
	}
	return actions, opaque
}

// WildcardProblems names every statement that grants, or could grant, a wildcard action:
// an action containing "*", NotAction with Allow, or an action that is an intrinsic
// function and so cannot be checked.
func WildcardProblems(stmts []Statement) []string {
	var problems []string
	for _, s := range stmts {
		for _, a := range s.Actions {
			if strings.Contains(a, "*") && s.Effect == "Allow" {
				problems = append(problems, fmt.Sprintf("%s grants the wildcard action %q", s, a))
			}
		}
		if s.NotAction && s.Effect == "Allow" {
			problems = append(problems, fmt.Sprintf("%s allows NotAction, which grants every other action", s))
		}
		if s.ActionsOpaque {
			problems = append(problems, fmt.Sprintf("%s has an Action that is not a literal, so it cannot be checked", s))
		}
		if s.Effect != "Allow" && s.Effect != "Deny" {
			problems = append(problems, fmt.Sprintf("%s has Effect %q: want Allow or Deny, literally", s, s.Effect))
		}
	}
	return problems
}

// FunctionStatements returns the IAM statements that apply to a serverless function's
// execution role: the inline statements of its Policies, or, when it names its own Role
// (!GetAtt R.Arn), that role's inline policies and the AWS::IAM::Policy and
// AWS::IAM::ManagedPolicy resources attached to it. A Policies entry that is an !If
// contributes the statements of both branches, guarded by it (!Ref AWS::NoValue
// contributes none). problems names what is not allowed here (managed policies, SAM
// policy templates) or cannot be read.
func (t *Template) FunctionStatements(fn Resource) (stmts []Statement, problems []string) {
	props := fn.Properties()
	if role := Get(props, "Role"); role != nil {
		roleName, _, ok := GetAttTarget(role)
		if !ok {
			if name, isRef := RefTarget(role); isRef {
				roleName, ok = name, true
			}
		}
		r, found := t.Resource(roleName)
		if !ok || !found || r.Type != "AWS::IAM::Role" {
			return nil, []string{fmt.Sprintf("%s: Role must be !GetAtt <an AWS::IAM::Role of this template>.Arn to be checked", fn.Name)}
		}
		return t.roleStatements(r, withResourceCondition(fn.Node, nil))
	}
	policies := Get(props, "Policies")
	if policies == nil {
		return nil, nil
	}
	items := []*yaml.Node{policies}
	if policies.Kind == yaml.SequenceNode && !IsIntrinsic(policies) {
		items = policies.Content
	}
	var entry func(item *yaml.Node, path string, guards []Guard)
	entry = func(item *yaml.Node, path string, guards []Guard) {
		item = resolve(item)
		if cond, then, els, ok := ifBranches(item); ok {
			entry(then, path+"(if "+cond+")", withGuard(guards, Guard{cond, true}))
			entry(els, path+"(if not "+cond+")", withGuard(guards, Guard{cond, false}))
			return
		}
		switch {
		case isNoValue(item):
		case item.Kind == yaml.ScalarNode || IsIntrinsic(item):
			v := item.Value
			problems = append(problems, fmt.Sprintf("%s (line %d) is a managed policy %q: use inline statements", path, item.Line, v))
		case Get(item, "Statement") != nil:
			stmts = append(stmts, statementsIn(Get(item, "Statement"), path+".Statement", guards)...)
		default:
			name := ""
			if item.Kind == yaml.MappingNode && len(item.Content) > 0 {
				name = item.Content[0].Value
			}
			problems = append(problems, fmt.Sprintf("%s (line %d) is the SAM policy template %q: use inline statements", path, item.Line, name))
		}
	}
	for i, item := range items {
		entry(item, fmt.Sprintf("Resources.%s.Properties.Policies[%d]", fn.Name, i), withResourceCondition(fn.Node, nil))
	}
	return stmts, problems
}

func (t *Template) roleStatements(role Resource, guards []Guard) (stmts []Statement, problems []string) {
	guards = withResourceCondition(role.Node, guards)
	props := role.Properties()
	if arns := Get(props, "ManagedPolicyArns"); arns != nil {
		problems = append(problems, fmt.Sprintf("Resources.%s.Properties.ManagedPolicyArns (line %d): use inline statements", role.Name, arns.Line))
	}
	if pols := Get(props, "Policies"); pols != nil && pols.Kind == yaml.SequenceNode {
		var policy func(p *yaml.Node, path string, guards []Guard)
		policy = func(p *yaml.Node, path string, guards []Guard) {
			if cond, then, els, ok := ifBranches(p); ok {
				policy(then, path+"(if "+cond+")", withGuard(guards, Guard{cond, true}))
				policy(els, path+"(if not "+cond+")", withGuard(guards, Guard{cond, false}))
				return
			}
			stmts = append(stmts, statementsIn(Get(Get(p, "PolicyDocument"), "Statement"), path+".PolicyDocument.Statement", guards)...)
		}
		for i, p := range pols.Content {
			policy(p, fmt.Sprintf("Resources.%s.Properties.Policies[%d]", role.Name, i), guards)
		}
	}
	for _, r := range t.Resources() {
		if r.Type != "AWS::IAM::Policy" && r.Type != "AWS::IAM::ManagedPolicy" {
			continue
		}
		roles := Get(r.Properties(), "Roles")
		if roles == nil || roles.Kind != yaml.SequenceNode {
			continue
		}
		for _, ref := range roles.Content {
			if name, ok := RefTarget(ref); ok && name == role.Name {
				path := fmt.Sprintf("Resources.%s.Properties.PolicyDocument.Statement", r.Name)
				stmts = append(stmts, statementsIn(Get(Get(r.Properties(), "PolicyDocument"), "Statement"), path, withResourceCondition(r.Node, guards))...)
			}
		}
	}
	return stmts, problems
}

// ConditionRequires reports whether a statement's Condition has operator op (as
// StringEquals) with key (compared without regard to case, as IAM does) equal to exactly
// the one value want.
func (s Statement) ConditionRequires(op, key, want string) bool {
	values, ok := Scalars(s.conditionValue(op, key))
	return ok && len(values) == 1 && values[0] == want
}

// conditionValue is the value of key (compared without regard to case) under operator
// op of the statement's Condition, or nil.
func (s Statement) conditionValue(op, key string) *yaml.Node {
	cond := Get(s.Condition, op)
	if cond == nil || cond.Kind != yaml.MappingNode || IsIntrinsic(cond) {
		return nil
	}
	for i := 0; i+1 < len(cond.Content); i += 2 {
		if strings.EqualFold(cond.Content[i].Value, key) {
			return cond.Content[i+1]
		}
	}
	return nil
}

// ModifyMetadataAction is the one write the guard makes to instances.
const ModifyMetadataAction = "ec2:ModifyInstanceMetadataOptions"

// TokenConditionProblems names every statement that allows ec2:ModifyInstanceMetadataOptions
// other than towards IMDSv2: each such statement must carry the condition
// StringEquals ec2:MetadataHttpTokens = required, and name instance ARNs rather than "*".
func TokenConditionProblems(stmts []Statement) []string {
	// The rollback's statement (RollbackSid) is held to its own conditions instead.
	var problems []string
	for _, s := range stmts {
		if !s.Allows(ModifyMetadataAction) {
			continue
		}
		if s.Sid == RollbackSid {
			problems = append(problems, RollbackConditionProblems(s)...)
			continue
		}
		if !s.ConditionRequires("StringEquals", "ec2:MetadataHttpTokens", "required") {
			problems = append(problems, fmt.Sprintf("%s allows %s without the condition StringEquals ec2:MetadataHttpTokens = required", s, ModifyMetadataAction))
		}
		if resources, ok := Scalars(s.Resource); ok && slices.Contains(resources, "*") {
			problems = append(problems, fmt.Sprintf("%s allows %s on every resource: name the instances (arn:...:ec2:...:instance/*)", s, ModifyMetadataAction))
		}
		if !s.ConditionRefsExactly("NumericLessThanEqualsIfExists", "ec2:MetadataHttpPutResponseHopLimit", HopLimitParameters...) {
			problems = append(problems, fmt.Sprintf("%s allows %s without bounding the hop limit: NumericLessThanEqualsIfExists ec2:MetadataHttpPutResponseHopLimit [!Ref %s]",
				s, ModifyMetadataAction, strings.Join(HopLimitParameters, ", !Ref ")))
		}
		if !s.ConditionRequires("Null", "ec2:MetadataHttpEndpoint", "true") {
			problems = append(problems, fmt.Sprintf("%s allows %s to set the endpoint: add the condition Null ec2:MetadataHttpEndpoint = true", s, ModifyMetadataAction))
		}
	}
	return problems
}

// RollbackSid is the one statement that may grant ec2:ModifyInstanceMetadataOptions
// towards IMDSv1: verify's rollback to the snapshot (DESIGN.md section 8).
const RollbackSid = "RollBackToSnapshot"

// RollbackConditionProblems says what is wrong with the rollback's grant: it may only
// set HttpTokens=optional (imdsguard enforces only instances that had it optional), never
// the endpoint, and only on this account-region's instances.
func RollbackConditionProblems(s Statement) []string {
	var problems []string
	if !s.ConditionRequires("StringEquals", "ec2:MetadataHttpTokens", "optional") {
		problems = append(problems, fmt.Sprintf("%s allows %s without the condition StringEquals ec2:MetadataHttpTokens = optional", s, ModifyMetadataAction))
	}
	if !s.ConditionRequires("Null", "ec2:MetadataHttpEndpoint", "true") {
		problems = append(problems, fmt.Sprintf("%s allows %s to set the endpoint: add the condition Null ec2:MetadataHttpEndpoint = true", s, ModifyMetadataAction))
	}
	if resources, ok := Scalars(s.Resource); ok && slices.Contains(resources, "*") {
		problems = append(problems, fmt.Sprintf("%s allows %s on every resource: name the instances (arn:...:ec2:...:instance/*)", s, ModifyMetadataAction))
	}
	return problems
}

// HopLimitParameters are the template parameters whose values bound the hop limit an
// enforcement may set: the hop limit and the container hosts' one.
var HopLimitParameters = []string{"HopLimit", "ContainerHopLimit"}

// ConditionRefsExactly reports whether a statement's Condition has operator op with key
// (compared without regard to case) set to a list of exactly the !Refs to the given
// parameters, in any order.
func (s Statement) ConditionRefsExactly(op, key string, params ...string) bool {
	values := s.conditionValue(op, key)
	if values == nil {
		return false
	}
	values = resolve(values)
	if values.Kind != yaml.SequenceNode || len(values.Content) != len(params) {
		return false
	}
	var refs []string
	for _, v := range values.Content {
		target, ok := RefTarget(v)
		if !ok {
			return false
		}
		refs = append(refs, target)
	}
	slices.Sort(refs)
	return slices.Equal(refs, slices.Sorted(slices.Values(params)))
}

// Ticket backend conditions: the template conditions under which each ticket backend's
// permissions may be granted.
const (
	OpsCenterCondition = "UseOpsCenter"
	JiraCondition      = "UseJira"
)

// BackendCondition returns the template condition an action may be granted only under,
// because only one ticket backend needs it: the OpsCenter OpsItem actions (ssm:*OpsItem*,
// and ssm:AddTagsToResource, which tagging an OpsItem on creation needs) only under
// UseOpsCenter, and secretsmanager:GetSecretValue (the Jira credentials) only under
// UseJira. Actions are compared without regard to case, as IAM does.
func BackendCondition(action string) (condition string, ok bool) {
	a := strings.ToLower(action)
	switch {
	case strings.HasPrefix(a, "ssm:") && strings.Contains(a, "opsitem"), a == "ssm:addtagstoresource":
		return OpsCenterCondition, true
	case a == "secretsmanager:getsecretvalue":
		return JiraCondition, true
	}
	return "", false
}

// BackendConditionProblems names every Allow statement that grants an action of one
// ticket backend (BackendCondition) other than only under that backend's condition: the
// statement, its policy or its Policies entry must be the true branch of an !If on the
// condition (or the policy a resource with that Condition).
func BackendConditionProblems(stmts []Statement) []string {
	var problems []string
	for _, s := range stmts {
		if s.Effect != "Allow" {
			continue
		}
		for _, a := range s.Actions {
			cond, ok := BackendCondition(a)
			if !ok || s.GrantedOnlyWhen(cond) {
				continue
			}
			guards := "unconditionally"
			if len(s.Guards) > 0 {
				var gs []string
				for _, g := range s.Guards {
					gs = append(gs, g.String())
				}
				guards = "under " + strings.Join(gs, ", ")
			}
			problems = append(problems, fmt.Sprintf("%s grants %s %s: grant it only under !If [%s, <statement>, !Ref AWS::NoValue]", s, a, guards, cond))
		}
	}
	return problems
}
