package iamcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Package is one Go package of the module: its import path, directory and the non-test
// Go files that the build includes.
type Package struct {
	ImportPath string
	Dir        string
	GoFiles    []string
}

// LambdaBuildEnv is the environment the functions are built in (see the Makefile's
// build-<Function> targets); build constraints are evaluated for it.
var LambdaBuildEnv = []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"}

// LambdaBuildTags are the build tags of the functions' build.
const LambdaBuildTags = "lambda.norpc"

// ModuleDeps lists pattern (as ./functions/detect) and every package it depends on that
// belongs to the main module rooted at moduleRoot, as `go list -deps` sees them for the
// Lambda build: GOOS/GOARCH from LambdaBuildEnv and the tags LambdaBuildTags.
func ModuleDeps(moduleRoot, pattern string) ([]Package, error) {
	cmd := exec.Command("go", "list", "-deps", "-tags", LambdaBuildTags,
		"-json=ImportPath,Dir,GoFiles,CgoFiles,Module,Error", pattern)
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), LambdaBuildEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go list -deps %s: %v: %s", pattern, err, strings.TrimSpace(stderr.String()))
	}
	var pkgs []Package
	dec := json.NewDecoder(&stdout)
	for {
		var p struct {
			ImportPath string
			Dir        string
			GoFiles    []string
			CgoFiles   []string
			Module     *struct{ Main bool }
			Error      *struct{ Err string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list -deps %s: %w", pattern, err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		if p.Error != nil {
			return nil, fmt.Errorf("go list -deps %s: %s: %s", pattern, p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, Package{ImportPath: p.ImportPath, Dir: p.Dir, GoFiles: append(p.GoFiles, p.CgoFiles...)})
	}
	return pkgs, nil
}

// Call is one place in the code that makes, or is built to make, an AWS operation.
type Call struct {
	// Operation is "<service package>:<Operation>" as the SDK names it: sqs:SendMessageBatch.
	Operation string
	// Pos is file:line.
	Pos string
	// How says what was found: an interface method, an input literal, a paginator, ...
	How string
}

// Calls are the AWS operations found in a set of packages.
type Calls []Call

// Operations returns the distinct operations, sorted.
func (c Calls) Operations() []string {
	seen := map[string]bool{}
	var out []string
	for _, call := range c {
		if !seen[call.Operation] {
			seen[call.Operation] = true
			out = append(out, call.Operation)
		}
	}
	sort.Strings(out)
	return out
}

// Where returns the positions at which op is called, at most three.
func (c Calls) Where(op string) []string {
	var out []string
	for _, call := range c {
		if call.Operation == op && len(out) < 3 {
			out = append(out, call.Pos+" ("+call.How+")")
		}
	}
	return out
}

const sdkServicePrefix = "github.com/aws/aws-sdk-go-v2/service/"

var serviceImport = regexp.MustCompile(`^github\.com/aws/aws-sdk-go-v2/service/([a-z0-9]+)$`)

// dynamodbItemOps are the transaction items of github.com/aws/aws-sdk-go-v2/service/dynamodb/types
// and the operation whose permission each needs inside TransactWriteItems/TransactGetItems.
var dynamodbItemOps = map[string]string{
	"Put":            "PutItem",
	"Update":         "UpdateItem",
	"Delete":         "DeleteItem",
	"ConditionCheck": "ConditionCheckItem",
	"Get":            "GetItem",
}

// tagOnCreate are the operations that, when their input sets Tags, also need the
// permission of another action to tag what they create (the "dependent actions" of the
// service authorization reference), by SDK operation.
var tagOnCreate = map[string]string{
	"ssm:CreateActivation":        "ssm:AddTagsToResource",
	"ssm:CreateAssociation":       "ssm:AddTagsToResource",
	"ssm:CreateDocument":          "ssm:AddTagsToResource",
	"ssm:CreateMaintenanceWindow": "ssm:AddTagsToResource",
	"ssm:CreateOpsItem":           "ssm:AddTagsToResource",
	"ssm:CreateOpsMetadata":       "ssm:AddTagsToResource",
	"ssm:CreatePatchBaseline":     "ssm:AddTagsToResource",
	"ssm:PutParameter":            "ssm:AddTagsToResource",
}

// waiterOps are the operations SDK waiters poll, by service and waiter name.
var waiterOps = map[string]string{
	"ec2:InstanceRunning":    "DescribeInstances",
	"ec2:InstanceStopped":    "DescribeInstances",
	"ec2:InstanceTerminated": "DescribeInstances",
	"ec2:InstanceExists":     "DescribeInstances",
	"ec2:InstanceStatusOk":   "DescribeInstanceStatus",
	"ec2:SystemStatusOk":     "DescribeInstanceStatus",
	"dynamodb:TableExists":   "DescribeTable",
}

// stscredsImport is the SDK's assume-role credentials provider, whose
// NewAssumeRoleProvider makes the code call sts:AssumeRole.
const stscredsImport = "github.com/aws/aws-sdk-go-v2/credentials/stscreds"

// Scan finds, in the packages' non-test files, the AWS SDK v2 operations the code calls:
//
//   - methods of interface types with the exact SDK signature
//     Op(ctx context.Context, in *svc.OpInput, optFns ...func(*svc.Options)) (*svc.OpOutput, error)
//     (the consumer-owned interfaces that the code calls through);
//   - composite literals of svc.OpInput (a call made directly on a client);
//   - svc.OpAPIClient interfaces, svc.NewOpPaginator and svc.NewXWaiter calls;
//   - stscreds.NewAssumeRoleProvider calls (sts:AssumeRole);
//   - DynamoDB transaction items (types.Put, types.Update, ...), which need the per-item
//     permission (dynamodb:PutItem, ...);
//   - an input literal of an operation in tagOnCreate that sets Tags (ssm.CreateOpsItemInput{
//     Tags: ...}), which also needs the tagging action (ssm:AddTagsToResource). Tags set
//     on the input after the literal (in.Tags = ...) are not seen: set them in the literal.
//
// where svc is imported from github.com/aws/aws-sdk-go-v2/service/<svc>. moduleRoot
// makes the positions relative. An SDK waiter whose operation is not known is an error.
func Scan(moduleRoot string, pkgs []Package) (Calls, error) {
	var calls Calls
	var errs []error
	fset := token.NewFileSet()
	for _, p := range pkgs {
		for _, name := range p.GoFiles {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			path := filepath.Join(p.Dir, name)
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			fc, ferrs := scanFile(fset, moduleRoot, f)
			calls = append(calls, fc...)
			errs = append(errs, ferrs...)
		}
	}
	return calls, errors.Join(errs...)
}

type fileScanner struct {
	fset       *token.FileSet
	moduleRoot string
	services   map[string]string // import name -> service package name (ec2, sqs, ...)
	ddbTypes   map[string]bool   // import names of service/dynamodb/types
	contexts   map[string]bool   // import names of "context"
	stscreds   map[string]bool   // import names of credentials/stscreds
	calls      Calls
	errs       []error
}

func scanFile(fset *token.FileSet, moduleRoot string, f *ast.File) (Calls, []error) {
	s := &fileScanner{fset: fset, moduleRoot: moduleRoot, services: map[string]string{}, ddbTypes: map[string]bool{}, contexts: map[string]bool{},
		stscreds: map[string]bool{}}
	for _, imp := range f.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			continue
		}
		name := path[strings.LastIndex(path, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		if name == "_" || name == "." {
			continue
		}
		switch {
		case path == "context":
			s.contexts[name] = true
		case path == sdkServicePrefix+"dynamodb/types":
			s.ddbTypes[name] = true
		case path == stscredsImport:
			s.stscreds[name] = true
		default:
			if m := serviceImport.FindStringSubmatch(path); m != nil {
				s.services[name] = m[1]
			}
		}
	}
	if len(s.services) == 0 && len(s.ddbTypes) == 0 && len(s.stscreds) == 0 {
		return nil, nil
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.InterfaceType:
			s.interfaceMethods(n)
		case *ast.CompositeLit:
			s.compositeLit(n)
		case *ast.CallExpr:
			s.constructorCall(n)
		case *ast.SelectorExpr:
			if svc, name, ok := s.serviceSelector(n); ok {
				if op, ok := strings.CutSuffix(name, "APIClient"); ok && op != "" {
					s.add(svc, op, n.Pos(), "uses "+svc+"."+name)
				}
			}
		}
		return true
	})
	return s.calls, s.errs
}

func (s *fileScanner) add(svc, op string, pos token.Pos, how string) {
	p := s.fset.Position(pos)
	file := p.Filename
	if rel, err := filepath.Rel(s.moduleRoot, file); err == nil && !strings.HasPrefix(rel, "..") {
		file = rel
	}
	s.calls = append(s.calls, Call{Operation: svc + ":" + op, Pos: fmt.Sprintf("%s:%d", file, p.Line), How: how})
}

// serviceSelector matches svc.Name where svc is an SDK service package import.
func (s *fileScanner) serviceSelector(e ast.Expr) (svc, name string, ok bool) {
	sel, isSel := e.(*ast.SelectorExpr)
	if !isSel {
		return "", "", false
	}
	id, isIdent := sel.X.(*ast.Ident)
	if !isIdent {
		return "", "", false
	}
	svc, ok = s.services[id.Name]
	return svc, sel.Sel.Name, ok
}

func (s *fileScanner) interfaceMethods(it *ast.InterfaceType) {
	if it.Methods == nil {
		return
	}
	for _, m := range it.Methods.List {
		ft, isFunc := m.Type.(*ast.FuncType)
		if !isFunc || len(m.Names) == 0 {
			continue
		}
		if svc, op, ok := s.sdkSignature(ft); ok {
			s.add(svc, op, m.Pos(), "interface method "+m.Names[0].Name)
		}
	}
}

// sdkSignature matches (ctx context.Context, in *svc.OpInput, optFns ...func(*svc.Options))
// (*svc.OpOutput, error).
func (s *fileScanner) sdkSignature(ft *ast.FuncType) (svc, op string, ok bool) {
	params := expandFields(ft.Params)
	results := expandFields(ft.Results)
	if len(params) != 3 || len(results) != 2 {
		return "", "", false
	}
	if sel, isSel := params[0].(*ast.SelectorExpr); !isSel || !s.isContext(sel) {
		return "", "", false
	}
	star, isStar := params[1].(*ast.StarExpr)
	if !isStar {
		return "", "", false
	}
	svc, in, ok := s.serviceSelector(star.X)
	if !ok {
		return "", "", false
	}
	op, ok = strings.CutSuffix(in, "Input")
	if !ok || op == "" {
		return "", "", false
	}
	ell, isEllipsis := params[2].(*ast.Ellipsis)
	if !isEllipsis {
		return "", "", false
	}
	optFn, isFunc := ell.Elt.(*ast.FuncType)
	if !isFunc {
		return "", "", false
	}
	optParams := expandFields(optFn.Params)
	if len(optParams) != 1 || optFn.Results != nil && len(optFn.Results.List) > 0 {
		return "", "", false
	}
	optStar, isStar := optParams[0].(*ast.StarExpr)
	if !isStar {
		return "", "", false
	}
	if optSvc, name, ok := s.serviceSelector(optStar.X); !ok || optSvc != svc || name != "Options" {
		return "", "", false
	}
	outStar, isStar := results[0].(*ast.StarExpr)
	if !isStar {
		return "", "", false
	}
	if outSvc, name, ok := s.serviceSelector(outStar.X); !ok || outSvc != svc || name != op+"Output" {
		return "", "", false
	}
	if id, isIdent := results[1].(*ast.Ident); !isIdent || id.Name != "error" {
		return "", "", false
	}
	return svc, op, true
}

func (s *fileScanner) isContext(sel *ast.SelectorExpr) bool {
	id, ok := sel.X.(*ast.Ident)
	return ok && s.contexts[id.Name] && sel.Sel.Name == "Context"
}

// expandFields lists one type per parameter: (a, b T) is T, T.
func expandFields(fl *ast.FieldList) []ast.Expr {
	if fl == nil {
		return nil
	}
	var out []ast.Expr
	for _, f := range fl.List {
		n := max(len(f.Names), 1)
		for range n {
			out = append(out, f.Type)
		}
	}
	return out
}

func (s *fileScanner) compositeLit(cl *ast.CompositeLit) {
	if svc, name, ok := s.serviceSelector(cl.Type); ok {
		if op, ok := strings.CutSuffix(name, "Input"); ok && op != "" {
			s.add(svc, op, cl.Pos(), svc+"."+name+" literal")
			if dep, ok := tagOnCreate[svc+":"+op]; ok && setsField(cl, "Tags") {
				depSvc, depOp, _ := strings.Cut(dep, ":")
				s.add(depSvc, depOp, cl.Pos(), svc+"."+name+" literal with Tags (tag on create)")
			}
		}
		return
	}
	sel, isSel := cl.Type.(*ast.SelectorExpr)
	if !isSel {
		return
	}
	if id, isIdent := sel.X.(*ast.Ident); isIdent && s.ddbTypes[id.Name] {
		if op, ok := dynamodbItemOps[sel.Sel.Name]; ok {
			s.add("dynamodb", op, cl.Pos(), "transaction item types."+sel.Sel.Name)
		}
	}
}

// setsField reports whether a composite literal sets the named field.
func setsField(cl *ast.CompositeLit, field string) bool {
	for _, e := range cl.Elts {
		if kv, ok := e.(*ast.KeyValueExpr); ok {
			if id, ok := kv.Key.(*ast.Ident); ok && id.Name == field {
				return true
			}
		}
	}
	return false
}

func (s *fileScanner) constructorCall(call *ast.CallExpr) {
	if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "NewAssumeRoleProvider" {
		if id, ok := sel.X.(*ast.Ident); ok && s.stscreds[id.Name] {
			// The provider calls sts:AssumeRole whenever its credentials are due.
			s.add("sts", "AssumeRole", call.Pos(), "stscreds.NewAssumeRoleProvider")
			return
		}
	}
	svc, name, ok := s.serviceSelector(call.Fun)
	if !ok {
		return
	}
	rest, isNew := strings.CutPrefix(name, "New")
	if !isNew {
		return
	}
	if op, ok := strings.CutSuffix(rest, "Paginator"); ok && op != "" {
		s.add(svc, op, call.Pos(), svc+"."+name)
		return
	}
	if waiter, ok := strings.CutSuffix(rest, "Waiter"); ok && waiter != "" {
		if op, known := waiterOps[svc+":"+waiter]; known {
			s.add(svc, op, call.Pos(), svc+"."+name)
			return
		}
		p := s.fset.Position(call.Pos())
		s.errs = append(s.errs, fmt.Errorf("%s: %s.%s: the operation this waiter polls is not known; add it to waiterOps", p, svc, name))
	}
}

// iamPrefix maps SDK service package names to IAM service prefixes where they differ.
var iamPrefix = map[string]string{
	"cloudwatchlogs":         "logs",
	"configservice":          "config",
	"eventbridge":            "events",
	"sfn":                    "states",
	"elasticloadbalancingv2": "elasticloadbalancing",
	"costexplorer":           "ce",
}

// actionExceptions are the operations whose IAM action is not "<prefix>:<Operation>".
// An empty list means the operation needs no permission of its own.
var actionExceptions = map[string][]string{
	"sqs:SendMessageBatch":             {"sqs:SendMessage"},
	"sqs:DeleteMessageBatch":           {"sqs:DeleteMessage"},
	"sqs:ChangeMessageVisibilityBatch": {"sqs:ChangeMessageVisibility"},
	"sns:PublishBatch":                 {"sns:Publish"},
	// GetCallerIdentity needs no permission, and cannot be denied.
	"sts:GetCallerIdentity": {},
	// Transactions need the permission of each item's action (PutItem, UpdateItem,
	// DeleteItem, ConditionCheckItem, GetItem), found from the item types.
	"dynamodb:TransactWriteItems": {},
	"dynamodb:TransactGetItems":   {},
}

// IAMActions maps an SDK operation ("sqs:SendMessageBatch") to the IAM actions it needs.
func IAMActions(operation string) []string {
	if actions, ok := actionExceptions[operation]; ok {
		return actions
	}
	svc, op, _ := strings.Cut(operation, ":")
	if p, ok := iamPrefix[svc]; ok {
		svc = p
	}
	return []string{svc + ":" + op}
}

// RequiredActions maps the calls to IAM actions, each with where it is called. It is an
// error when a DynamoDB transaction is made but none of its item types is found.
func RequiredActions(calls Calls) (map[string][]string, error) {
	required := map[string][]string{}
	ops := calls.Operations()
	for _, op := range ops {
		for _, action := range IAMActions(op) {
			required[action] = append(required[action], calls.Where(op)...)
		}
	}
	var errs []error
	for _, tx := range []string{"dynamodb:TransactWriteItems", "dynamodb:TransactGetItems"} {
		if len(calls.Where(tx)) == 0 {
			continue
		}
		found := false
		for _, itemOp := range dynamodbItemOps {
			if _, ok := required["dynamodb:"+itemOp]; ok {
				found = true
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("%s is called at %v but no transaction item (types.Put, types.Update, ...) was found to tell which permissions it needs", tx, calls.Where(tx)))
		}
	}
	return required, errors.Join(errs...)
}
