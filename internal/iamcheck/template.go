// Package iamcheck checks the deployment (template.yaml) against the code: that no IAM
// statement grants a wildcard action, that each Lambda function is granted exactly the
// AWS operations its code calls, found statically from the Go source, that
// ec2:ModifyInstanceMetadataOptions is granted only towards HttpTokens=required with a
// bounded hop limit and no endpoint, that only detect may send verdicts, that a ticket
// backend's permissions are granted only under the condition that selects it, that the
// template's parameters accept exactly what the functions accept, and that no production
// binary links test code. Its tests are the checks; this file reads the template,
// statements.go its IAM statements, scan.go the code.
package iamcheck

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is a parsed CloudFormation/SAM template. Short-form intrinsics (!Ref, !Sub,
// !GetAtt, !If, ...) stay yaml nodes with their tag, and are treated as opaque values.
type Template struct {
	Path string
	Root *yaml.Node // the top-level mapping
}

// LoadTemplate parses a template file.
func LoadTemplate(path string) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a template (want a YAML mapping)", path)
	}
	return &Template{Path: path, Root: doc.Content[0]}, nil
}

// Resource is one entry of the template's Resources.
type Resource struct {
	Name string
	Type string
	Node *yaml.Node // the resource's mapping
}

// Properties returns the resource's Properties mapping, or nil.
func (r Resource) Properties() *yaml.Node { return Get(r.Node, "Properties") }

// Resources lists the template's resources in template order.
func (t *Template) Resources() []Resource {
	var out []Resource
	res := Get(t.Root, "Resources")
	if res == nil || res.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(res.Content); i += 2 {
		typ, _ := Scalar(Get(res.Content[i+1], "Type"))
		out = append(out, Resource{Name: res.Content[i].Value, Type: typ, Node: resolve(res.Content[i+1])})
	}
	return out
}

// Resource returns the named resource.
func (t *Template) Resource(name string) (Resource, bool) {
	for _, r := range t.Resources() {
		if r.Name == name {
			return r, true
		}
	}
	return Resource{}, false
}

// ResourcesOfType lists the resources of one type.
func (t *Template) ResourcesOfType(typ string) []Resource {
	var out []Resource
	for _, r := range t.Resources() {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// Parameter returns the named parameter's mapping, or nil.
func (t *Template) Parameter(name string) *yaml.Node {
	return Get(Get(t.Root, "Parameters"), name)
}

// FunctionProperty returns a property of a serverless function, falling back to the
// template's Globals.Function as SAM does for a property the function does not set.
func (t *Template) FunctionProperty(fn Resource, name string) *yaml.Node {
	if v := Get(fn.Properties(), name); v != nil {
		return v
	}
	return Get(Get(Get(t.Root, "Globals"), "Function"), name)
}

// FunctionEnvironment returns a serverless function's environment variables, Globals
// merged with the function's own (which win), as SAM merges them.
func (t *Template) FunctionEnvironment(fn Resource) map[string]*yaml.Node {
	env := map[string]*yaml.Node{}
	for _, vars := range []*yaml.Node{
		Get(Get(Get(Get(t.Root, "Globals"), "Function"), "Environment"), "Variables"),
		Get(Get(fn.Properties(), "Environment"), "Variables"),
	} {
		if vars == nil || vars.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(vars.Content); i += 2 {
			env[vars.Content[i].Value] = resolve(vars.Content[i+1])
		}
	}
	return env
}

// resolve follows YAML aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// Get returns the value of key in mapping n, or nil when n is not a mapping (an
// intrinsic function included) or has no such key.
func Get(n *yaml.Node, key string) *yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode || IsIntrinsic(n) {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return resolve(n.Content[i+1])
		}
	}
	return nil
}

// IsIntrinsic reports whether n is a CloudFormation intrinsic function: a short-form tag
// (!Ref, !Sub, ...) or a long-form single-key mapping (Ref, Fn::Sub, ...).
func IsIntrinsic(n *yaml.Node) bool {
	n = resolve(n)
	if n == nil {
		return false
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return true
	}
	if n.Kind == yaml.MappingNode && len(n.Content) == 2 {
		k := n.Content[0].Value
		return k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::")
	}
	return false
}

// Intrinsic returns an intrinsic function's name without "Fn::" or "!" (Ref, Sub,
// GetAtt, If, ...) and its argument node.
func Intrinsic(n *yaml.Node) (name string, arg *yaml.Node, ok bool) {
	n = resolve(n)
	if !IsIntrinsic(n) {
		return "", nil, false
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		// A tagged node is its own argument, with the tag removed.
		arg := *n
		arg.Tag = ""
		switch arg.Kind {
		case yaml.ScalarNode:
			arg.Tag = "!!str"
		case yaml.SequenceNode:
			arg.Tag = "!!seq"
		case yaml.MappingNode:
			arg.Tag = "!!map"
		}
		return strings.TrimPrefix(n.Tag, "!"), &arg, true
	}
	return strings.TrimPrefix(n.Content[0].Value, "Fn::"), resolve(n.Content[1]), true
}

// RefTarget returns the logical name a !Ref / {Ref: X} node refers to.
func RefTarget(n *yaml.Node) (string, bool) {
	name, arg, ok := Intrinsic(n)
	if !ok || name != "Ref" {
		return "", false
	}
	return Scalar(arg)
}

// GetAttTarget returns the logical name and attribute of !GetAtt X.Attr / [X, Attr].
func GetAttTarget(n *yaml.Node) (resource, attr string, ok bool) {
	name, arg, ok := Intrinsic(n)
	if !ok || name != "GetAtt" {
		return "", "", false
	}
	if s, ok := Scalar(arg); ok {
		resource, attr, found := strings.Cut(s, ".")
		return resource, attr, found
	}
	if arg.Kind == yaml.SequenceNode && len(arg.Content) == 2 {
		r, ok1 := Scalar(arg.Content[0])
		a, ok2 := Scalar(arg.Content[1])
		return r, a, ok1 && ok2
	}
	return "", "", false
}

// Scalar returns the value of a plain scalar; false for anything else, intrinsic
// functions included.
func Scalar(n *yaml.Node) (string, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || IsIntrinsic(n) {
		return "", false
	}
	return n.Value, true
}

// Scalars returns a scalar, or a sequence of scalars, as a list; false when any element
// is not a plain scalar.
func Scalars(n *yaml.Node) ([]string, bool) {
	n = resolve(n)
	if s, ok := Scalar(n); ok {
		return []string{s}, true
	}
	if n == nil || n.Kind != yaml.SequenceNode || IsIntrinsic(n) {
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		s, ok := Scalar(c)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// ConditionRequiresEquals reports whether the template condition name can be true only
// when parameter param equals value: the condition is !Equals [!Ref param, value] (in
// either order), or an !And with such an !Equals among its operands.
func (t *Template) ConditionRequiresEquals(name, param, value string) bool {
	var holds func(n *yaml.Node) bool
	holds = func(n *yaml.Node) bool {
		fn, arg, ok := Intrinsic(n)
		if !ok || arg.Kind != yaml.SequenceNode {
			return false
		}
		switch fn {
		case "Equals":
			if len(arg.Content) != 2 {
				return false
			}
			for i := range 2 {
				ref, isRef := RefTarget(arg.Content[i])
				v, isScalar := Scalar(arg.Content[1-i])
				if isRef && ref == param && isScalar && v == value {
					return true
				}
			}
		case "And":
			return slices.ContainsFunc(arg.Content, holds)
		}
		return false
	}
	return holds(Get(Get(t.Root, "Conditions"), name))
}
