package iamcheck

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The hub's part of template.yaml (DESIGN.md section 11): the member roles each function
// may assume, only under IsHub and only in the organization; the units queue, FIFO, read
// by detect with partial batch failures and sent to by detect alone.

// TestHubAssumesOnlyItsMemberRole: detect may assume imdsguard-read, remediate and
// verify imdsguard-enforce, each in the organization's accounts only (aws:ResourceOrgID)
// and only on a hub; no function may assume any other role, and the organization is
// listed only by the functions that sweep it.
func TestHubAssumesOnlyItsMemberRole(t *testing.T) {
	tpl := loadTemplate(t)
	want := map[string]string{"DetectFunction": "imdsguard-read", "RemediateFunction": "imdsguard-enforce", "VerifyFunction": "imdsguard-enforce"}
	lists := map[string]bool{"DetectFunction": true, "VerifyFunction": true}
	for name, role := range want {
		fn, ok := tpl.Resource(name)
		if !ok {
			t.Fatalf("no %s", name)
		}
		stmts, _ := tpl.FunctionStatements(fn)
		var assumes, listing int
		for _, s := range stmts {
			if s.Allows("organizations:ListAccounts") {
				listing++
				if !s.GrantedOnlyWhen("IsHub") {
					t.Errorf("%s: %s lists the organization's accounts without IsHub", name, s)
				}
			}
			if !s.Allows("sts:AssumeRole") {
				continue
			}
			assumes++
			if len(s.Actions) != 1 {
				t.Errorf("%s: %s grants %v with sts:AssumeRole: keep it alone", name, s, s.Actions)
			}
			if !s.GrantedOnlyWhen("IsHub") {
				t.Errorf("%s: %s grants sts:AssumeRole without IsHub", name, s)
			}
			resource, _ := yaml.Marshal(s.Resource)
			if !strings.Contains(string(resource), ":role/"+role) || strings.Count(string(resource), "role/") != 1 {
				t.Errorf("%s: %s may assume %s, want only role/%s", name, s, strings.TrimSpace(string(resource)), role)
			}
			org := Get(Get(s.Condition, "StringEquals"), "aws:ResourceOrgID")
			if target, ok := RefTarget(org); !ok || target != "OrganizationId" {
				t.Errorf("%s: %s is not limited to the organization (StringEquals aws:ResourceOrgID: !Ref OrganizationId)", name, s)
			}
		}
		if assumes != 1 {
			t.Errorf("%s has %d statements granting sts:AssumeRole, want 1", name, assumes)
		}
		if (listing > 0) != lists[name] {
			t.Errorf("%s: %d statements list the organization's accounts, want them only in detect and verify", name, listing)
		}
	}
}

// TestUnitsQueue: FIFO (one invocation per account-region at a time), outlasting
// detect's timeout six times, with a FIFO dead-letter queue; read by detect through an
// event source mapping that reports partial batch failures; sent to by detect only.
func TestUnitsQueue(t *testing.T) {
	tpl := loadTemplate(t)
	fn, _ := tpl.Resource("DetectFunction")
	timeout := intScalar(t, "DetectFunction Timeout", tpl.FunctionProperty(fn, "Timeout"))
	queue, ok := tpl.Resource("UnitsQueue")
	if !ok {
		t.Fatal("no UnitsQueue")
	}
	if fifo, _ := Scalar(Get(queue.Properties(), "FifoQueue")); fifo != "true" {
		t.Error("UnitsQueue is not FIFO")
	}
	if v := intScalar(t, "UnitsQueue VisibilityTimeout", Get(queue.Properties(), "VisibilityTimeout")); v < 6*timeout {
		t.Errorf("UnitsQueue VisibilityTimeout %ds < 6 x DetectFunction Timeout %ds", v, timeout)
	}
	dlq, _, _ := GetAttTarget(Get(Get(queue.Properties(), "RedrivePolicy"), "deadLetterTargetArn"))
	if dead, ok := tpl.Resource(dlq); !ok || dlq != "UnitsDeadLetterQueue" {
		t.Errorf("UnitsQueue's dead letters go to %q, want UnitsDeadLetterQueue", dlq)
	} else if fifo, _ := Scalar(Get(dead.Properties(), "FifoQueue")); fifo != "true" {
		t.Error("UnitsDeadLetterQueue is not FIFO (a FIFO queue's dead-letter queue must be)")
	}
	var mappings int
	for _, m := range tpl.ResourcesOfType("AWS::Lambda::EventSourceMapping") {
		if q, _, _ := GetAttTarget(Get(m.Properties(), "EventSourceArn")); q != "UnitsQueue" {
			continue
		}
		mappings++
		if target, _ := RefTarget(Get(m.Properties(), "FunctionName")); target != "DetectFunction" {
			t.Errorf("%s sends the units to %q, want DetectFunction", m.Name, target)
		}
		if types, _ := Scalars(Get(m.Properties(), "FunctionResponseTypes")); !slices.Equal(types, []string{"ReportBatchItemFailures"}) {
			t.Errorf("%s FunctionResponseTypes = %q, want [ReportBatchItemFailures]", m.Name, types)
		}
	}
	if mappings != 1 {
		t.Errorf("%d event source mappings read UnitsQueue, want 1", mappings)
	}
	var senders []string
	for _, res := range tpl.ResourcesOfType("AWS::SQS::QueuePolicy") {
		if queues := Get(res.Properties(), "Queues"); queues == nil || len(queues.Content) != 1 {
			continue
		} else if target, _ := RefTarget(queues.Content[0]); target != "UnitsQueue" {
			continue
		}
		for _, s := range AllStatements(res.Node) {
			arns := Get(Get(s.Condition, "ArnNotEquals"), "aws:PrincipalArn")
			if s.Effect != "Deny" || !slices.Contains(s.Actions, "sqs:SendMessage") || arns == nil {
				continue
			}
			for _, arn := range arns.Content {
				if role, _, ok := GetAttTarget(arn); ok {
					senders = append(senders, role)
				}
			}
		}
	}
	if !slices.Equal(senders, []string{"DetectFunctionRole"}) {
		t.Errorf("UnitsQueue's policy lets %v send, want only [DetectFunctionRole] (a Deny unless ArnNotEquals aws:PrincipalArn)", senders)
	}
}

// TestTrailGrantsOnlyWithTheTable: detect's Athena, Glue and S3 grants exist only with the
// organization trail's table (HasTrail), the query runs in its work group only, and no
// other function has them.
func TestTrailGrantsOnlyWithTheTable(t *testing.T) {
	tpl := loadTemplate(t)
	for _, name := range []string{"DetectFunction", "RemediateFunction", "VerifyFunction"} {
		fn, _ := tpl.Resource(name)
		stmts, _ := tpl.FunctionStatements(fn)
		for _, s := range stmts {
			for _, a := range s.Actions {
				service, _, _ := strings.Cut(strings.ToLower(a), ":")
				if service != "athena" && service != "glue" && service != "s3" {
					continue
				}
				if name != "DetectFunction" {
					t.Errorf("%s: %s grants %s: only detect queries the organization trail", name, s, a)
				}
				if !s.GrantedOnlyWhen("HasTrail") && !s.GrantedOnlyWhen("HasTrailResultsBucket") {
					t.Errorf("%s: %s grants %s without HasTrail", name, s, a)
				}
				if service == "athena" {
					resource, _ := yaml.Marshal(s.Resource)
					if !strings.Contains(string(resource), ":workgroup/${TrailWorkGroup}") {
						t.Errorf("%s: %s grants %s on %s, want the work group TrailWorkGroup only", name, s, a, strings.TrimSpace(string(resource)))
					}
				}
			}
		}
	}
}
