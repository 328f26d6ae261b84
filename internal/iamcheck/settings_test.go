package iamcheck

// The settings' one definition against template.yaml: the generated blocks (parameters,
// rules, the README's settings table) are exactly what the definitions generate, and the
// template (evaluated as CloudFormation would) accepts exactly the values the functions
// accept at start-up.
//
// After changing a definition (internal/policy.SettingSpecs or CrossRules,
// internal/lambdaenv.Specs or Rules), rewrite the generated blocks with
//
//	go test ./internal/iamcheck -run TestGeneratedBlocks -update

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/imdsguard/imdsguard/internal/lambdaenv"
	"github.com/imdsguard/imdsguard/internal/policy"
)

var update = flag.Bool("update", false, "rewrite the generated blocks of template.yaml and README.md from the settings' definitions")

const regenerate = "go test ./internal/iamcheck -run TestGeneratedBlocks -update"

// definitionParameters are the template parameters the definitions generate, in order.
func definitionParameters() []policy.Parameter {
	var out []policy.Parameter
	for _, spec := range policy.SettingSpecs {
		out = append(out, spec.Parameter())
	}
	for _, spec := range lambdaenv.Specs {
		out = append(out, spec.Parameter())
	}
	return out
}

// definitionRules are the template rules the definitions generate, in order.
func definitionRules() []policy.Rule {
	return append(slices.Clone(lambdaenv.Rules), policy.CrossRules()...)
}

// functionLoaders are each function's start-up validation of its settings: what its
// main.go calls before anything else.
var functionLoaders = map[string]func(lookup func(string) (string, bool)) error{
	"DetectFunction": func(lookup func(string) (string, bool)) error {
		_, err := lambdaenv.LoadDetect(lookup)
		return err
	},
	"RemediateFunction": func(lookup func(string) (string, bool)) error {
		_, err := lambdaenv.LoadRemediate(lookup)
		return err
	},
	"VerifyFunction": func(lookup func(string) (string, bool)) error {
		_, err := lambdaenv.LoadVerify(lookup)
		return err
	},
}

// ------------------------------------------------------------------ generated blocks

type generatedBlock struct {
	file, begin, end string
	content          func() string
}

var generatedBlocks = []generatedBlock{
	{"template.yaml", "  # BEGIN GENERATED parameters", "  # END GENERATED parameters", func() string { return renderParameters(definitionParameters()) }},
	{"template.yaml", "  # BEGIN GENERATED rules", "  # END GENERATED rules", func() string { return renderRules(definitionRules()) }},
	{"README.md", "<!-- BEGIN GENERATED settings -->", "<!-- END GENERATED settings -->", renderSettingsTable},
}

// TestGeneratedBlocks: template.yaml's parameters and rules for the settings, and the
// README's settings table, are exactly what the definitions generate. With -update it
// rewrites them instead.
func TestGeneratedBlocks(t *testing.T) {
	root := moduleRoot(t)
	for _, b := range generatedBlocks {
		path := filepath.Join(root, b.file)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		current, replaced, err := replaceBlock(string(data), b.begin, b.end, b.content())
		if err != nil {
			t.Fatalf("%s: %v", b.file, err)
		}
		if *update {
			if replaced != string(data) {
				if err := os.WriteFile(path, []byte(replaced), 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: rewrote the block %q", b.file, b.begin)
			}
			continue
		}
		if want := b.content(); current != want {
			got, wantLines := strings.Split(current, "\n"), strings.Split(want, "\n")
			i := 0
			for i < len(got) && i < len(wantLines) && got[i] == wantLines[i] {
				i++
			}
			line := func(ls []string) string {
				if i < len(ls) {
					return ls[i]
				}
				return "(end of block)"
			}
			t.Errorf("%s: the block %q is not what the definitions generate; line %d of it is\n\t%q\nwant\n\t%q\nRun: %s",
				b.file, strings.TrimSpace(b.begin), i+1, line(got), line(wantLines), regenerate)
		}
	}
}

// replaceBlock returns the text between the lines begin and end (exclusive), and text
// with it replaced by content.
func replaceBlock(text, begin, end, content string) (current, replaced string, err error) {
	bi := strings.Index(text, "\n"+begin+"\n")
	ei := strings.Index(text, "\n"+end+"\n")
	if bi < 0 || ei < 0 || ei < bi {
		return "", "", fmt.Errorf("no block from the line %q to the line %q", begin, end)
	}
	from, to := bi+len(begin)+2, ei+1
	return text[from:to], text[:from] + content + text[to:], nil
}

// ------------------------------------------------------------------ rendering YAML

const yamlWidth = 100

func renderParameters(params []policy.Parameter) string {
	var b strings.Builder
	b.WriteString("  # Generated from internal/policy.SettingSpecs (the guard's settings, for both functions) and\n" +
		"  # internal/lambdaenv.Specs (read by one function): edit those, then run\n" +
		"  #   " + regenerate + "\n" +
		"  # A function starts with exactly the values these parameters and the Rules accept.\n")
	for _, p := range params {
		b.WriteString("  " + p.Name + ":\n")
		b.WriteString(yamlField(4, "Type", "String"))
		b.WriteString(yamlField(4, "Default", p.Default))
		if len(p.Constraint.AllowedValues) > 0 {
			items := make([]string, len(p.Constraint.AllowedValues))
			for i, v := range p.Constraint.AllowedValues {
				items[i] = flowScalar(v)
			}
			b.WriteString(flowField(4, "AllowedValues", "["+strings.Join(items, ", ")+"]"))
		}
		if p.Constraint.Pattern() != "" {
			b.WriteString("    AllowedPattern: " + singleQuoted(p.Constraint.Pattern()) + "\n")
		}
		if p.Constraint.MaxLength > 0 {
			b.WriteString(fmt.Sprintf("    MaxLength: %d\n", p.Constraint.MaxLength))
		}
		b.WriteString(yamlField(4, "ConstraintDescription", p.ConstraintDescription))
		b.WriteString(yamlField(4, "Description", p.Description))
	}
	return b.String()
}

func renderRules(rules []policy.Rule) string {
	var b strings.Builder
	b.WriteString("  # Generated from internal/lambdaenv.Rules and internal/policy.CrossRules: edit those, then run\n" +
		"  #   " + regenerate + "\n" +
		"  # The functions check the same limits at start-up.\n")
	for _, r := range rules {
		b.WriteString(comment(2, r.Comment))
		b.WriteString("  " + r.Name + ":\n")
		if r.When.Param != "" {
			b.WriteString(flowField(4, "RuleCondition", flowCondition(r.When)))
		}
		b.WriteString("    Assertions:\n")
		for _, a := range r.Assertions {
			b.WriteString(flowField(6, "- Assert", flowCondition(a.Assert)))
			b.WriteString(yamlField(8, "AssertDescription", a.Description))
		}
	}
	return b.String()
}

// comment writes text as YAML comment lines, wrapped to yamlWidth.
func comment(indent int, text string) string {
	if text == "" {
		return ""
	}
	var b strings.Builder
	pad := strings.Repeat(" ", indent) + "# "
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(pad)+len(line)+1+len(w) > yamlWidth {
			b.WriteString(pad + line + "\n")
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	b.WriteString(pad + line + "\n")
	return b.String()
}

// flowCondition writes a condition as a rule function: !Equals for one value,
// Fn::Contains for several, under !Not when negated.
func flowCondition(c policy.Condition) string {
	ref := "!Ref " + c.Param
	var expr string
	if len(c.Values) == 1 {
		expr = "!Equals [" + ref + ", " + flowScalar(c.Values[0]) + "]"
	} else {
		items := make([]string, len(c.Values))
		for i, v := range c.Values {
			items[i] = flowScalar(v)
		}
		expr = `{"Fn::Contains": [[` + strings.Join(items, ", ") + "], " + ref + "]}"
	}
	if c.Not {
		expr = "!Not [" + expr + "]"
	}
	return expr
}

// flowField writes key: expr, a flow expression, wrapped at ", " to yamlWidth with the
// continuation lines indented under the key.
func flowField(indent int, key, expr string) string {
	first := strings.Repeat(" ", indent) + key + ": "
	cont := strings.Repeat(" ", indent+4)
	var b strings.Builder
	line := first
	for i, part := range strings.SplitAfter(expr, ", ") {
		if i > 0 && len(line)+len(strings.TrimRight(part, " ")) > yamlWidth {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line = cont
		}
		line += part
	}
	b.WriteString(line + "\n")
	return b.String()
}

var plainYAMLChars = regexp.MustCompile(`^[A-Za-z0-9(][A-Za-z0-9 _.,;:/()*=+@<>'"-]*$`)

// yamlField writes key: value with value as a plain scalar when YAML reads it back as
// the same string, folded (>-) when it is long, and single-quoted otherwise.
func yamlField(indent int, key, value string) string {
	pad := strings.Repeat(" ", indent)
	switch {
	case value == "":
		return pad + key + ": \"\"\n"
	case isPlainYAML(value) && len(pad)+len(key)+2+len(value) <= yamlWidth:
		return pad + key + ": " + value + "\n"
	case plainYAMLChars.MatchString(value) && !strings.Contains(value, ": ") && len(value) <= 20:
		return pad + key + ": " + strconv.Quote(value) + "\n" // a number or a boolean to YAML
	case isFoldable(value):
		var b strings.Builder
		b.WriteString(pad + key + ": >-\n")
		linePad := pad + "  "
		line := ""
		for _, w := range strings.Split(value, " ") {
			if line != "" && len(linePad)+len(line)+1+len(w) > yamlWidth {
				b.WriteString(linePad + line + "\n")
				line = ""
			}
			if line != "" {
				line += " "
			}
			line += w
		}
		b.WriteString(linePad + line + "\n")
		return b.String()
	}
	return pad + key + ": " + singleQuoted(value) + "\n"
}

func isPlainYAML(s string) bool {
	if !plainYAMLChars.MatchString(s) || strings.Contains(s, ": ") || strings.Contains(s, " #") ||
		strings.HasSuffix(s, ":") || strings.HasSuffix(s, " ") {
		return false
	}
	var m map[string]any
	if err := yaml.Unmarshal([]byte("k: "+s), &m); err != nil {
		return false
	}
	got, ok := m["k"].(string)
	return ok && got == s
}

func isFoldable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsAny(s, "\n\t\r") && !strings.Contains(s, "  ") &&
		strings.TrimSpace(s) == s && !strings.HasPrefix(s, "#")
}

var flowPlainChars = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func singleQuoted(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// flowScalar writes a value inside a flow sequence: plain when that is safe, quoted
// otherwise.
func flowScalar(s string) string {
	if flowPlainChars.MatchString(s) && isPlainYAML(s) {
		return s
	}
	return strconv.Quote(s)
}

// renderSettingsTable is the README's table of the guard's settings.
func renderSettingsTable() string {
	md := strings.NewReplacer("|", `\|`, "*", `\*`, "<", "&lt;")
	var b strings.Builder
	b.WriteString("<!-- Generated from internal/policy.SettingSpecs: edit those, then run " + regenerate + " -->\n")
	b.WriteString("| flag | environment | template parameter | default | meaning | allowed |\n|---|---|---|---|---|---|\n")
	for _, s := range policy.SettingSpecs {
		fmt.Fprintf(&b, "| `--%s` | `%s` | `%s` | `%s` | %s | %s |\n", s.Flag, s.Env, s.Param, s.Default, md.Replace(s.Usage), md.Replace(s.Allowed))
	}
	return b.String()
}

// ------------------------------------------------------------------ parameters, by meaning

// TestTemplateParametersFollowDefinitions reads template.yaml's parameters back and
// compares them with the definitions, key by key: the generated block must also mean
// what it says. Every pattern uses only syntax Go and Java read alike.
func TestTemplateParametersFollowDefinitions(t *testing.T) {
	tpl := loadTemplate(t)
	for _, p := range definitionParameters() {
		node := tpl.Parameter(p.Name)
		if node == nil {
			t.Errorf("template.yaml has no parameter %s", p.Name)
			continue
		}
		want := map[string]string{"Type": "String", "Default": p.Default, "ConstraintDescription": p.ConstraintDescription, "Description": p.Description}
		if p.Constraint.Pattern() != "" {
			want["AllowedPattern"] = p.Constraint.Pattern()
		}
		if p.Constraint.MaxLength > 0 {
			want["MaxLength"] = strconv.Itoa(p.Constraint.MaxLength)
		}
		if len(p.Constraint.AllowedValues) > 0 {
			want["AllowedValues"] = strings.Join(p.Constraint.AllowedValues, "\x00")
		}
		got := map[string]string{}
		for i := 0; i+1 < len(node.Content); i += 2 {
			key, value := node.Content[i].Value, node.Content[i+1]
			if s, ok := Scalars(value); ok {
				got[key] = strings.Join(s, "\x00")
			} else {
				got[key] = "(not a literal)"
			}
		}
		for _, k := range slices.Sorted(keysOf(want, got)) {
			if got[k] != want[k] {
				t.Errorf("parameter %s: %s = %q, want %q (the definition's)", p.Name, k, got[k], want[k])
			}
		}
		if err := portablePattern(p.Constraint.Pattern()); p.Constraint.Pattern() != "" && err != nil {
			t.Errorf("parameter %s: AllowedPattern %q: %v", p.Name, p.Constraint.Pattern(), err)
		}
		if !p.Constraint.Allows(p.Default) {
			t.Errorf("parameter %s: the default %q is not allowed", p.Name, p.Default)
		}
	}
}

func keysOf(ms ...map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range ms {
			for k := range m {
				if !seen[k] {
					seen[k] = true
					if !yield(k) {
						return
					}
				}
			}
		}
	}
}

// TestParameterGroupsListEveryParameter: the console shows every parameter, once.
func TestParameterGroupsListEveryParameter(t *testing.T) {
	tpl := loadTemplate(t)
	groups := Get(Get(Get(tpl.Root, "Metadata"), "AWS::CloudFormation::Interface"), "ParameterGroups")
	if groups == nil || groups.Kind != yaml.SequenceNode {
		t.Fatal("template.yaml has no Metadata AWS::CloudFormation::Interface ParameterGroups")
	}
	listed := map[string]int{}
	for _, g := range groups.Content {
		names, _ := Scalars(Get(g, "Parameters"))
		for _, n := range names {
			listed[n]++
			if tpl.Parameter(n) == nil {
				t.Errorf("ParameterGroups lists %s, which is not a parameter", n)
			}
		}
	}
	params := Get(tpl.Root, "Parameters")
	for i := 0; i+1 < len(params.Content); i += 2 {
		if n := params.Content[i].Value; listed[n] != 1 {
			t.Errorf("parameter %s is listed %d times in ParameterGroups, want once", n, listed[n])
		}
	}
}

// portablePattern reports syntax that Go (RE2) and Java (CloudFormation) may read
// differently, or that only one of them has: ., \s, \w, \d and other escapes than
// \p{L} \p{N} \p{Z} \p{Cc} and escaped punctuation, lookaround and every (? but (?:,
// lazy and possessive quantifiers, nested classes and && (Java), non-ASCII literals.
func portablePattern(p string) error {
	if _, err := syntax.Parse(p, syntax.Perl); err != nil {
		return err
	}
	escape := regexp.MustCompile(`^\\(p\{(L|N|Z|Cc)\}|[.*+?()\[\]{}|^$\\/-])`)
	quantifier := regexp.MustCompile(`^\{[0-9]+(,[0-9]*)?\}`)
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		next := byte(0)
		if i+1 < len(p) {
			next = p[i+1]
		}
		switch {
		case c >= 0x80 || c < 0x20 || c == 0x7f:
			return fmt.Errorf("character %q at %d: write patterns in printable ASCII", c, i)
		case c == '\\':
			m := escape.FindString(p[i:])
			if m == "" {
				return fmt.Errorf("escape at %d (%.4s) is not one Go and Java read alike", i, p[i:])
			}
			i += len(m) - 1
		case inClass:
			switch {
			case c == ']':
				inClass = false
			case c == '[':
				return fmt.Errorf("[ inside a class at %d: Java nests classes", i)
			case c == '&' && next == '&':
				return fmt.Errorf("&& at %d: Java intersects classes", i)
			}
		case c == '[':
			inClass = true
			if next == '^' {
				i++
			}
			if i+1 < len(p) && p[i+1] == ']' {
				return fmt.Errorf("] first in a class at %d", i)
			}
		case c == '(' && next == '?':
			if !strings.HasPrefix(p[i:], "(?:") {
				return fmt.Errorf("(? at %d: only (?: groups are portable", i)
			}
			i += 2
		case c == '.':
			return fmt.Errorf(". at %d: Go and Java disagree on which line terminators it matches", i)
		case c == '{':
			m := quantifier.FindString(p[i:])
			if m == "" {
				return fmt.Errorf("{ at %d is not a quantifier {n}, {n,} or {n,m}", i)
			}
			i += len(m) - 1
			if i+1 < len(p) && (p[i+1] == '?' || p[i+1] == '+') {
				return fmt.Errorf("lazy or possessive quantifier at %d", i+1)
			}
		case c == '*' || c == '+' || c == '?':
			if next == '?' || next == '+' {
				return fmt.Errorf("lazy or possessive quantifier at %d", i+1)
			}
		}
	}
	if inClass {
		return fmt.Errorf("unterminated class")
	}
	return nil
}

func TestPortablePatternRefusesWhatGoAndJavaReadDifferently(t *testing.T) {
	for _, p := range []string{`^a.b$`, `^\s$`, `^\w+$`, `^\d$`, `^(?=a)a$`, `^(a)\1$`, `^a*?$`, `^a++$`, `^a{1,2}?$`,
		`^[a[b]]$`, `^[a-z&&[^b]]$`, `^(?i)a$`, `^é$`, `^\p{Lu}$`, `^\x41$`, `^\bA$`} {
		if err := portablePattern(p); err == nil {
			t.Errorf("portablePattern(%q) = nil, want an error", p)
		}
	}
	for _, p := range []string{`^(?:[1-9]|[1-8][0-9]|90)d$`, `^\p{Z}*[\p{L}\p{N}_.:/=+\-@][\p{Z}\p{L}\p{N}_.:/=+\-@]*\*?$`,
		`^$|^[^,\p{Z}\p{Cc}]+(?:,[^,\p{Z}\p{Cc}]+)*$`, `^[A-Za-z0-9_-]{1,64}$`} {
		if err := portablePattern(p); err != nil {
			t.Errorf("portablePattern(%q) = %v, want nil", p, err)
		}
	}
}

// ------------------------------------------------------------------ the template, evaluated

// paramConstraint is a template parameter's constraints, evaluated as CloudFormation
// does: AllowedValues, AllowedPattern over the whole value, MinLength and MaxLength (in
// UTF-16 code units, Java's length), and for Number parameters MinValue and MaxValue.
type paramConstraint struct {
	typ, def           string
	allowedValues      []string
	pattern            *regexp.Regexp
	minLength          int
	maxLength          int // -1: none
	minValue, maxValue *float64
}

func (p paramConstraint) allows(v string) bool {
	if !utf8.ValidString(v) {
		return false // a CloudFormation value is a Unicode string
	}
	if p.typ == "Number" {
		// A Number parameter takes an integer or a float (an approximation of Java's).
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || (p.minValue != nil && f < *p.minValue) || (p.maxValue != nil && f > *p.maxValue) {
			return false
		}
	}
	if p.allowedValues != nil && !slices.Contains(p.allowedValues, v) {
		return false
	}
	if p.pattern != nil && !p.pattern.MatchString(v) {
		return false
	}
	n := len(utf16.Encode([]rune(v)))
	return n >= p.minLength && (p.maxLength < 0 || n <= p.maxLength)
}

type boolExpr func(values map[string]string) bool

type strExpr func(values map[string]string) string

type compiledRule struct {
	name    string
	when    boolExpr
	asserts []boolExpr
	descs   []string
}

// templateModel is template.yaml evaluated: its parameters' constraints, its Rules, and
// the environment each function gets (variable -> parameter, or a literal).
type templateModel struct {
	params map[string]paramConstraint
	rules  []compiledRule
	env    map[string]map[string]envSource
	fns    []string
}

type envSource struct{ param, literal string }

func loadModel(t *testing.T, tpl *Template) *templateModel {
	t.Helper()
	m := &templateModel{params: map[string]paramConstraint{}, env: map[string]map[string]envSource{}}
	params := Get(tpl.Root, "Parameters")
	for i := 0; i+1 < len(params.Content); i += 2 {
		name, node := params.Content[i].Value, params.Content[i+1]
		p := paramConstraint{maxLength: -1}
		p.typ, _ = Scalar(Get(node, "Type"))
		p.def, _ = Scalar(Get(node, "Default"))
		if av := Get(node, "AllowedValues"); av != nil {
			p.allowedValues, _ = Scalars(av)
			if p.allowedValues == nil {
				p.allowedValues = []string{}
			}
		}
		if pat, ok := Scalar(Get(node, "AllowedPattern")); ok {
			re, err := regexp.Compile(`^(?:` + pat + `)$`)
			if err != nil {
				t.Fatalf("parameter %s: AllowedPattern: %v", name, err)
			}
			p.pattern = re
		}
		for key, dst := range map[string]*int{"MinLength": &p.minLength, "MaxLength": &p.maxLength} {
			if s, ok := Scalar(Get(node, key)); ok {
				n, err := strconv.Atoi(s)
				if err != nil {
					t.Fatalf("parameter %s: %s = %q", name, key, s)
				}
				*dst = n
			}
		}
		for key, dst := range map[string]**float64{"MinValue": &p.minValue, "MaxValue": &p.maxValue} {
			if s, ok := Scalar(Get(node, key)); ok {
				f, err := strconv.ParseFloat(s, 64)
				if err != nil {
					t.Fatalf("parameter %s: %s = %q", name, key, s)
				}
				*dst = &f
			}
		}
		m.params[name] = p
	}
	rules := Get(tpl.Root, "Rules")
	for i := 0; rules != nil && i+1 < len(rules.Content); i += 2 {
		name, node := rules.Content[i].Value, rules.Content[i+1]
		r := compiledRule{name: name, when: func(map[string]string) bool { return true }}
		if cond := Get(node, "RuleCondition"); cond != nil {
			r.when = m.compileBool(t, name+" RuleCondition", cond)
		}
		assertions := Get(node, "Assertions")
		if assertions == nil || assertions.Kind != yaml.SequenceNode || len(assertions.Content) == 0 {
			t.Fatalf("rule %s has no Assertions", name)
		}
		for j, a := range assertions.Content {
			desc, _ := Scalar(Get(a, "AssertDescription"))
			if desc == "" {
				t.Errorf("rule %s: assertion %d has no AssertDescription", name, j)
			}
			r.asserts = append(r.asserts, m.compileBool(t, fmt.Sprintf("%s assertion %d", name, j), Get(a, "Assert")))
			r.descs = append(r.descs, desc)
		}
		m.rules = append(m.rules, r)
	}
	for _, fn := range tpl.ResourcesOfType("AWS::Serverless::Function") {
		env := map[string]envSource{}
		for name, node := range tpl.FunctionEnvironment(fn) {
			if ref, ok := RefTarget(node); ok {
				if _, isParam := m.params[ref]; isParam {
					env[name] = envSource{param: ref}
					continue
				}
			}
			s, ok := Scalar(node)
			if !ok {
				s = "(" + describe(node) + ")" // a resource's name or attribute: no setting reads it
			}
			env[name] = envSource{literal: s}
		}
		m.env[fn.Name] = env
		m.fns = append(m.fns, fn.Name)
		if functionLoaders[fn.Name] == nil {
			t.Errorf("%s: add its start-up validation to functionLoaders, so that its settings are checked against the template", fn.Name)
		}
	}
	sort.Strings(m.fns)
	return m
}

// compileBool compiles a rule function: Fn::Equals, Fn::Not, Fn::And, Fn::Or (2 to 10
// conditions) and Fn::Contains over literal lists; anything else fails the test, so that
// a rule this evaluator cannot read is never taken as passing.
func (m *templateModel) compileBool(t *testing.T, where string, n *yaml.Node) boolExpr {
	t.Helper()
	name, arg, ok := Intrinsic(n)
	if !ok || arg.Kind != yaml.SequenceNode {
		t.Fatalf("%s: %s is not a rule function with a list of arguments", where, describe(n))
	}
	args := arg.Content
	switch name {
	case "Equals":
		if len(args) != 2 {
			t.Fatalf("%s: Fn::Equals takes 2 arguments, not %d", where, len(args))
		}
		a, b := m.compileString(t, where, args[0]), m.compileString(t, where, args[1])
		return func(v map[string]string) bool { return a(v) == b(v) }
	case "Not":
		if len(args) != 1 {
			t.Fatalf("%s: Fn::Not takes 1 argument, not %d", where, len(args))
		}
		c := m.compileBool(t, where, args[0])
		return func(v map[string]string) bool { return !c(v) }
	case "And", "Or":
		if len(args) < 2 || len(args) > 10 {
			t.Fatalf("%s: Fn::%s takes 2 to 10 conditions, not %d", where, name, len(args))
		}
		var cs []boolExpr
		for _, a := range args {
			cs = append(cs, m.compileBool(t, where, a))
		}
		and := name == "And"
		return func(v map[string]string) bool {
			for _, c := range cs {
				if c(v) != and {
					return !and
				}
			}
			return and
		}
	case "Contains":
		if len(args) != 2 {
			t.Fatalf("%s: Fn::Contains takes a list and a string, not %d arguments", where, len(args))
		}
		list, ok := Scalars(args[0])
		if !ok || args[0].Kind != yaml.SequenceNode {
			t.Fatalf("%s: Fn::Contains: the first argument must be a literal list", where)
		}
		set := map[string]bool{}
		for _, s := range list {
			set[s] = true
		}
		s := m.compileString(t, where, args[1])
		return func(v map[string]string) bool { return set[s(v)] }
	}
	t.Fatalf("%s: the rule function %s is not evaluated by this test: extend compileBool", where, name)
	return nil
}

func (m *templateModel) compileString(t *testing.T, where string, n *yaml.Node) strExpr {
	t.Helper()
	if ref, ok := RefTarget(n); ok {
		if _, isParam := m.params[ref]; !isParam {
			t.Fatalf("%s: !Ref %s is not a parameter", where, ref)
		}
		return func(v map[string]string) string { return v[ref] }
	}
	if s, ok := Scalar(n); ok {
		return func(map[string]string) string { return s }
	}
	t.Fatalf("%s: %s is neither !Ref <parameter> nor a literal", where, describe(n))
	return nil
}

// values are every parameter's value: its default, unless overridden.
func (m *templateModel) values(overrides map[string]string) map[string]string {
	v := make(map[string]string, len(m.params))
	for name, p := range m.params {
		v[name] = p.def
	}
	for name, value := range overrides {
		v[name] = value
	}
	return v
}

// templateAccepts reports whether CloudFormation would accept the parameter values:
// every parameter's constraints, then every rule. defaultOK, when not nil, holds the
// result for each parameter's default (a parameter's check depends on its value only).
func (m *templateModel) templateAccepts(v map[string]string, defaultOK map[string]bool) (bool, string) {
	for name, p := range m.params {
		ok, known := defaultOK[name]
		if !known || v[name] != p.def {
			ok = p.allows(v[name])
		}
		if !ok {
			return false, "parameter " + name
		}
	}
	return m.rulesAccept(v)
}

func (m *templateModel) rulesAccept(v map[string]string) (bool, string) {
	for _, r := range m.rules {
		if !r.when(v) {
			continue
		}
		for i, a := range r.asserts {
			if !a(v) {
				return false, "rule " + r.name + ": " + r.descs[i]
			}
		}
	}
	return true, ""
}

// codeAccepts reports whether every function starts with the environment the template
// gives it for these parameter values.
func (m *templateModel) codeAccepts(v map[string]string) (bool, string) {
	for _, fn := range m.fns {
		env := m.env[fn]
		lookup := func(name string) (string, bool) {
			src, ok := env[name]
			if !ok {
				return "", false
			}
			if src.param != "" {
				return v[src.param], true
			}
			return src.literal, true
		}
		if err := functionLoaders[fn](lookup); err != nil {
			return false, fn + ": " + err.Error()
		}
	}
	return true, ""
}

// disagreements checks each case (parameter overrides) both ways and returns those on
// which the template and the functions disagree, at most limit of them, and how many
// values of each parameter the template accepts and rejects.
func (m *templateModel) disagreements(cases []map[string]string, limit int) (found []string, accepted, rejected map[string]int) {
	defaultOK := map[string]bool{}
	v := m.values(nil)
	for name, p := range m.params {
		defaultOK[name] = p.allows(p.def)
	}
	accepted, rejected = map[string]int{}, map[string]int{}
	for _, c := range cases {
		for name, value := range c {
			v[name] = value
		}
		tOK, tWhy := m.templateAccepts(v, defaultOK)
		cOK, cWhy := m.codeAccepts(v)
		for name := range c {
			if tOK {
				accepted[name]++
			} else {
				rejected[name]++
			}
			v[name] = m.params[name].def
		}
		if tOK != cOK {
			found = append(found, fmt.Sprintf("%s: template accepts: %t (%s), functions start: %t (%s)", describeCase(c), tOK, tWhy, cOK, short(cWhy)))
			if len(found) == limit {
				break
			}
		}
	}
	return found, accepted, rejected
}

// short cuts a long text (a 4096-character value in an error) for the test log.
func short(s string) string {
	if len(s) > 300 {
		return fmt.Sprintf("%s...(%d bytes)", s[:300], len(s))
	}
	return s
}

func describeCase(c map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c)) {
		parts = append(parts, fmt.Sprintf("%s=%s", k, short(strconv.Quote(c[k]))))
	}
	return strings.Join(parts, " ")
}

// ------------------------------------------------------------------ corpora

// issueValues are the values of the report that started this: the template accepted
// them and every invocation then failed.
var issueValues = map[string][]string{
	"Lookback":           {"100d", "91d", "2184h", "100h", "2400h", "9999d", "1h", "23h", "90m"},
	"MaxMetricStaleness": {"30m", "59m", "25h", "1h30m", "1d", "1441m", "0h"},
	"MinObservedHours":   {"2161", "3000", "0", "1.5", "01", "+1", " 168"},
	"HopLimit":           {"1.5", "0", "65", "01", "+1", "1e1", " 1", "1 "},
	"ContainerHopLimit":  {"1.5", "0", "65", "01", "2.0"},
	"ExemptTag":          {"   ", " ", "", "\u00a0", "a*"},
	"ContainerTags":      {",,", "*", "a,,b", "a,", ",a", "a,*", " ,a", "**", "*a", "a*b"},
	"CallTimeout":        {"0s", "301s", "6m", "30", "1h", "0m", "30s ", "030s"},
	"MaxVerdictAge":      {"4m", "1441m", "25h", "1h30m", "0h", "3600s", "60"},
	"JiraIssueType":      {"", " Task", "Task ", " ", "Task\n"},
	"JiraLabels":         {"a,", ",a", "a b", "a,,b", "a, b", "a\tb"},
}

func numeralCorpus() []string {
	var out []string
	for n := 0; n <= 2200; n++ {
		out = append(out, strconv.Itoa(n), strconv.Itoa(n)+"h", strconv.Itoa(n)+"m")
		if n <= 400 {
			out = append(out, strconv.Itoa(n)+"d", strconv.Itoa(n)+"s")
		}
	}
	for _, v := range []string{"1", "14", "24", "64", "90", "168", "336", "2160"} {
		for _, s := range []string{"", "d", "h", "m", "s"} {
			out = append(out, "0"+v+s, "00"+v+s, "+"+v+s, "-"+v+s, " "+v+s, v+s+" ", v+s+"\n", "\t"+v+s,
				v+".0"+s, v+".5"+s, v+"e0"+s, v+strings.ToUpper(s), v+s+s, "0x"+v+s, v+"_"+s)
		}
	}
	out = append(out, "1h30m", "2h0m", "1d12h", "14d0h", "1.5", "1.5h", ".5h", "1e1", "1E1", "Inf", "NaN",
		"99999999999", "99999999999h", "١", "１", "٣٣٦h", "３３６h", "336ｈ", "14 d", "14\u00a0d")
	return out
}

func stringCorpus(r *rand.Rand) []string {
	out := []string{
		"", " ", "   ", "\t", "\n", "\u00a0", "\u2028", "\u3000", "a", "A", "Z", "z", "0", "*", ",", ",,", ";",
		"a,", ",a", "a,,b", "a, b", "a,b", "a b", " a", "a ", " a ", "a  b", "a\tb", "a\nb", "a\x00", "\x7f", "a\u0085",
		"é", "日本", "Ω", "𝒜", "١٢", "ⅷ", "😀", "a😀", "\u200b", "\ufeff", "a\u0301",
		"key*", "key**", "*key", "k*y", "* ", " *", "a,*", "*,a", "a*,b*", "a* ,b",
		"aws:eks:cluster-name", "kubernetes.io/cluster/*", "imdsguard:exempt", "imdsguard:exempt ", "Name=x+y@z.-_:/",
		"!", "#", "$", "%", "&", "'", "\"", "(", ")", "~", "[", "]", "{", "}", "<", ">", "?", "|", "\\", "^", "`",
		"report", "Report", "dry-run", "dryrun", "enforce", "enforce ", " report", "sns", "SNS", "jira", "opscenter", "ops",
		"SEC", "sec", "S", "SE", "ABCDEFGHIJ", "ABCDEFGHIJK", "SEC-1", "SEC_1", "1SEC", "S1",
		"Task", "Sub-task", "Bug ", " Bug", "Security Vulnerability", "Épica", "故事", "Task\u00a0", "T",
		"imdsguard", "imdsguard,security", "team!,a$b", "ä,ö", "ec2-imdsv2-check", "securityhub-ec2-imdsv2-check-abc",
		"arn:aws:secretsmanager:us-east-1:123456789012:secret:imdsguard/jira-AbC123",
		"arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:jira-token-x1Y2z3",
		"arn:aws:secretsmanager:us-east-1:123456789012:secret:imdsguard/jira",
		"arn:aws:secretsmanager:us-east-1:12345678901:secret:imdsguard/jira-AbC123",
		"arn:aws:ssm:us-east-1:123456789012:parameter/jira-AbC123", "arn:aws:secretsmanager:us-east-1:123456789012:secret:*",
		" arn:aws:secretsmanager:us-east-1:123456789012:secret:imdsguard/jira-AbC123",
		"arn:aws:secretsmanager:us-east-1:123456789012:secret:imdsguard/jira-AbC123 ",
	}
	// Lengths around every limit, in ASCII and with characters that Java counts twice.
	for _, n := range []int{1, 2, 9, 10, 11, 58, 59, 60, 61, 63, 64, 65, 127, 128, 129, 1023, 1024, 1025} {
		out = append(out, strings.Repeat("a", n), strings.Repeat("a", n-1)+"𝒜", strings.Repeat("𝒜", n/2),
			" "+strings.Repeat("a", n-1), strings.Repeat("A", n), "A"+strings.Repeat("1", n-1))
	}
	for _, total := range []int{4095, 4096, 4097} {
		key := strings.Repeat("k", 127) + "*"
		list := key
		for len(list)+1+len(key) <= total {
			list += "," + key
		}
		list += "," + strings.Repeat("x", total-len(list)-1)
		out = append(out, list, strings.Repeat("a,", total/2)[:total-1], list[:total-2]+"𝒜")
	}
	alphabet := []string{"a", "Z", "0", "9", " ", "\u00a0", "_", ".", ":", "/", "=", "+", "-", "@", "*", ",", "!", "\t",
		"é", "日", "𝒜", "😀", "\n", "A", "h", "d", "m", "s"}
	for range 1500 {
		var b strings.Builder
		for range r.Intn(9) {
			b.WriteString(alphabet[r.Intn(len(alphabet))])
		}
		out = append(out, b.String())
	}
	return out
}

// settingCases give each parameter of the definitions each value of the corpora in
// turn, the others at their defaults.
func settingCases(r *rand.Rand) []map[string]string {
	strs := stringCorpus(r)
	nums := numeralCorpus()
	var cases []map[string]string
	for _, p := range definitionParameters() {
		values := slices.Concat(strs, issueValues[p.Name])
		if p.Default != "" && p.Default[0] >= '0' && p.Default[0] <= '9' {
			values = append(values, nums...)
		}
		slices.Sort(values)
		for _, v := range slices.Compact(values) {
			cases = append(cases, map[string]string{p.Name: v})
		}
	}
	return cases
}

// ------------------------------------------------------------------ agreement

// TestTemplateAndFunctionsAgree: for every setting the template has a parameter for,
// and many values of it (boundaries, the issue's examples, malformed and random ones),
// the template accepts the value exactly when every function starts with it.
func TestTemplateAndFunctionsAgree(t *testing.T) {
	m := loadModel(t, loadTemplate(t))
	cases := settingCases(rand.New(rand.NewSource(1)))
	found, accepted, rejected := m.disagreements(cases, 30)
	for _, d := range found {
		t.Error(d)
	}
	// Each parameter's corpus has values on both sides, so that the check is not vacuous.
	for _, p := range definitionParameters() {
		if accepted[p.Name] == 0 || rejected[p.Name] == 0 {
			t.Errorf("parameter %s: the template accepts %d values of the corpus and rejects %d: want both", p.Name, accepted[p.Name], rejected[p.Name])
		}
		t.Logf("%s: the template accepts %d values and rejects %d", p.Name, accepted[p.Name], rejected[p.Name])
	}
}

// lookbackCorpus and minObservedCorpus are crossed: every Lookback the template or the
// code might accept, and near misses, with every MinObservedHours from 0 to past 2160.
func lookbackCorpus() []string {
	var out []string
	for d := 0; d <= 92; d++ {
		out = append(out, strconv.Itoa(d)+"d", strconv.Itoa(24*d)+"h")
	}
	return append(out, "1h", "23h", "25h", "100h", "335h", "337h", "2159h", "2161h", "2184h", "2400h",
		"", "014d", "+14d", " 14d", "14d ", "14D", "2w", "336H", "100d")
}

func minObservedCorpus() []string {
	var out []string
	for n := 0; n <= 2170; n++ {
		out = append(out, strconv.Itoa(n))
	}
	return append(out, "", "01", "+1", " 168", "168 ", "1.5", "-1", "9999", "0168", "1e2")
}

// TestLookbackAndMinObservedHoursAgree crosses every Lookback with every
// MinObservedHours: the template's generated Rules (with both parameters' patterns)
// accept a pair exactly when the code does. The code side is policy.LoadSettings, which
// both functions run for these two settings (TestCrossSettingsAgreeThroughTheFunctions
// runs the functions' whole start-up on a sample of the pairs).
func TestLookbackAndMinObservedHoursAgree(t *testing.T) {
	m := loadModel(t, loadTemplate(t))
	base := m.values(nil)
	for name, p := range m.params {
		if !p.allows(base[name]) {
			t.Fatalf("parameter %s: the default %q is not allowed", name, base[name])
		}
	}
	lookbacks, minObserved := lookbackCorpus(), minObservedCorpus()
	nOK := make([]bool, len(minObserved))
	for i, n := range minObserved {
		nOK[i] = m.params["MinObservedHours"].allows(n)
	}
	v := maps.Clone(base)
	env := map[string]string{}
	lookup := func(k string) (string, bool) { s, ok := env[k]; return s, ok }
	var pairs, accepted, bad int
	for _, l := range lookbacks {
		lOK := m.params["Lookback"].allows(l)
		for i, mo := range minObserved {
			pairs++
			v["Lookback"], v["MinObservedHours"] = l, mo
			tOK, why := lOK && nOK[i], "a parameter's constraints"
			if tOK {
				tOK, why = m.rulesAccept(v)
			}
			env["IMDSGUARD_LOOKBACK"], env["IMDSGUARD_MIN_OBSERVED_HOURS"] = l, mo
			_, err := policy.LoadSettings(lookup, nil)
			if tOK {
				accepted++
			}
			if tOK != (err == nil) {
				if bad++; bad <= 20 {
					t.Errorf("Lookback=%q MinObservedHours=%q: template accepts: %t (%s); LoadSettings: %v", l, mo, tOK, why, err)
				}
			}
		}
	}
	if bad > 20 {
		t.Errorf("... and %d more pairs on which they disagree", bad-20)
	}
	if accepted == 0 || accepted == pairs {
		t.Errorf("%d of %d pairs accepted: the cross product is not testing anything", accepted, pairs)
	}
	t.Logf("%d pairs, %d accepted", pairs, accepted)
}

// TestCrossSettingsAgreeThroughTheFunctions runs the functions' whole start-up on a
// sample of the crossed settings: Lookback x MinObservedHours at every bucket's edges,
// and the ticket backend with every kind of Jira setting.
func TestCrossSettingsAgreeThroughTheFunctions(t *testing.T) {
	m := loadModel(t, loadTemplate(t))
	var cases []map[string]string
	lookbacks := []string{"0d", "91d", "100h", "2184h", " 7d"}
	for _, d := range []int{1, 2, 7, 8, 13, 14, 30, 45, 46, 47, 89, 90} {
		lookbacks = append(lookbacks, strconv.Itoa(d)+"d", strconv.Itoa(24*d)+"h")
	}
	for _, l := range lookbacks {
		for n := 0; n <= 2165; n++ {
			if n%24 <= 1 || n%24 == 23 || n%97 == 0 {
				cases = append(cases, map[string]string{"Lookback": l, "MinObservedHours": strconv.Itoa(n)})
			}
		}
	}
	arns := []string{"", "arn:aws:secretsmanager:us-east-1:123456789012:secret:imdsguard/jira-AbC123", "arn:aws:secretsmanager:us-east-1:123456789012:secret:jira", " "}
	projects := []string{"", "SEC", "sec", " "}
	for _, backend := range []string{"sns", "opscenter", "jira", "Jira", ""} {
		for _, arn := range arns {
			for _, project := range projects {
				for _, issueType := range []string{"Task", ""} {
					for _, labels := range []string{"", "a,b", "a,"} {
						cases = append(cases, map[string]string{"TicketBackend": backend, "JiraSecretArn": arn, "JiraProject": project,
							"JiraIssueType": issueType, "JiraLabels": labels})
					}
				}
			}
		}
	}
	found, accepted, rejected := m.disagreements(cases, 30)
	for _, d := range found {
		t.Error(d)
	}
	for _, p := range []string{"Lookback", "MinObservedHours", "TicketBackend", "JiraSecretArn", "JiraProject"} {
		if accepted[p] == 0 || rejected[p] == 0 {
			t.Errorf("%s: %d cases accepted and %d rejected: want both", p, accepted[p], rejected[p])
		}
	}
}

// TestAgreementNoticesALooserTemplate: the agreement tests fail when the template
// accepts more than the code, or less: each mutation below puts back one constraint of
// the template before the settings had one definition, or loosens one, and the corpus
// finds a value on which the two disagree.
func TestAgreementNoticesALooserTemplate(t *testing.T) {
	tpl := loadTemplate(t)
	cases := settingCases(rand.New(rand.NewSource(2)))
	for _, l := range lookbackCorpus() {
		for _, n := range []string{"24", "25", "168", "180", "200", "2160"} {
			cases = append(cases, map[string]string{"Lookback": l, "MinObservedHours": n})
		}
	}
	// The cases that set one of the parameters a mutation changes.
	casesOf := func(params ...string) []map[string]string {
		var out []map[string]string
		for _, c := range cases {
			for _, p := range params {
				if _, ok := c[p]; ok {
					out = append(out, c)
					break
				}
			}
		}
		return out
	}
	f := func(v float64) *float64 { return &v }
	setPattern := func(m *templateModel, param, pattern string) {
		p := m.params[param]
		p.pattern = regexp.MustCompile(`^(?:` + pattern + `)$`)
		m.params[param] = p
	}
	mutations := []struct {
		name   string
		params []string
		mutate func(m *templateModel)
	}{
		{"Lookback's old pattern", []string{"Lookback"}, func(m *templateModel) { setPattern(m, "Lookback", `^[1-9][0-9]{0,3}[hd]$`) }},
		{"MaxMetricStaleness's old pattern", []string{"MaxMetricStaleness"}, func(m *templateModel) {
			setPattern(m, "MaxMetricStaleness", `^([1-9][0-9]*[hmd]|[1-9][0-9]*h[0-9]+m)$`)
		}},
		{"HopLimit as the old Number", []string{"HopLimit"}, func(m *templateModel) {
			m.params["HopLimit"] = paramConstraint{typ: "Number", def: "1", minValue: f(1), maxValue: f(64), maxLength: -1}
		}},
		{"MinObservedHours as the old Number", []string{"MinObservedHours"}, func(m *templateModel) {
			m.params["MinObservedHours"] = paramConstraint{typ: "Number", def: "168", minValue: f(1), maxValue: f(2160), maxLength: -1}
		}},
		{"ExemptTag's old lengths only", []string{"ExemptTag"}, func(m *templateModel) {
			m.params["ExemptTag"] = paramConstraint{typ: "String", def: "imdsguard:exempt", minLength: 1, maxLength: 128}
		}},
		{"ContainerTags's old lengths only", []string{"ContainerTags"}, func(m *templateModel) {
			p := m.params["ContainerTags"]
			p.pattern, p.minLength = nil, 1
			m.params["ContainerTags"] = p
		}},
		{"ContainerTags's MaxLength dropped", []string{"ContainerTags"}, func(m *templateModel) {
			p := m.params["ContainerTags"]
			p.maxLength = -1
			m.params["ContainerTags"] = p
		}},
		{"ExemptTag allowing *", []string{"ExemptTag"}, func(m *templateModel) {
			setPattern(m, "ExemptTag", `^\p{Z}*[\p{L}\p{N}_.:/=+\-@*][\p{Z}\p{L}\p{N}_.:/=+\-@*]*$`)
		}},
		{"JiraLabels's old pattern with \\s", []string{"JiraLabels"}, func(m *templateModel) { setPattern(m, "JiraLabels", `^$|^[^\s,]+(,[^\s,]+)*$`) }},
		{"CallTimeout tighter than the code", []string{"CallTimeout"}, func(m *templateModel) { setPattern(m, "CallTimeout", `^[1-9][0-9]?s$`) }},
		{"MaxVerdictAge's old pattern", []string{"MaxVerdictAge"}, func(m *templateModel) {
			setPattern(m, "MaxVerdictAge", `^([1-9][0-9]*[hms]|[1-9][0-9]*h[0-9]+m)$`)
		}},
		{"Mode without enforce", []string{"Mode"}, func(m *templateModel) {
			p := m.params["Mode"]
			p.allowedValues = []string{"report", "dry-run"}
			m.params["Mode"] = p
		}},
		{"no Rules", []string{"Lookback"}, func(m *templateModel) { m.rules = nil }},
		{"one MinObservedHours rule missing", []string{"Lookback"}, func(m *templateModel) {
			m.rules = slices.DeleteFunc(m.rules, func(r compiledRule) bool { return r.name == "MinObservedHours169To192" })
		}},
	}
	for _, mu := range mutations {
		t.Run(mu.name, func(t *testing.T) {
			m := loadModel(t, tpl)
			mu.mutate(m)
			found, _, _ := m.disagreements(casesOf(mu.params...), 1)
			if len(found) == 0 {
				t.Errorf("with %s, no case of the corpus tells the template from the code", mu.name)
			} else {
				t.Logf("caught: %s", found[0])
			}
		})
	}
}

// TestRulesReadAsOperatorsNeed: the generated rules' messages name the setting, the
// values and what they need, and the rule block keeps to CloudFormation's syntax.
func TestRulesReadAsOperatorsNeed(t *testing.T) {
	rules := policy.CrossRules()
	want := "MinObservedHours 193 to 216 needs a Lookback of at least 9d (216h)."
	found := false
	for _, r := range rules {
		for _, a := range r.Assertions {
			if a.Description == want {
				found = true
			}
		}
		if n := len(r.When.Values); n == 0 {
			t.Errorf("rule %s lists no MinObservedHours", r.Name)
		}
	}
	if !found {
		t.Errorf("no rule says %q", want)
	}
	rendered := renderRules(definitionRules())
	if bytes.Contains([]byte(rendered), []byte("\t")) {
		t.Error("the rules block has a tab")
	}
	for i, l := range strings.Split(rendered, "\n") {
		if len(l) > yamlWidth+20 {
			t.Errorf("rules block line %d is %d characters long", i+1, len(l))
		}
	}
}
