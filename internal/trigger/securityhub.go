package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// The Security Hub control this project remediates.
const controlIMDSv2 = "EC2.8"

type findingsImportedDetail struct {
	Findings []json.RawMessage `json:"findings"`
}

type finding struct {
	ID         string `json:"Id"`
	Compliance *struct {
		Status            string `json:"Status"`
		SecurityControlID string `json:"SecurityControlId"`
	} `json:"Compliance"`
	ProductFields map[string]json.RawMessage `json:"ProductFields"`
	Workflow      *struct {
		Status string `json:"Status"`
	} `json:"Workflow"`
	RecordState string `json:"RecordState"`
	Resources   []struct {
		Type string `json:"Type"`
		ID   string `json:"Id"`
	} `json:"Resources"`
}

// controlID is Compliance.SecurityControlId (consolidated findings) or
// ProductFields.ControlId (findings from before consolidated control findings).
func (f *finding) controlID() string {
	if f.Compliance != nil && f.Compliance.SecurityControlID != "" {
		return f.Compliance.SecurityControlID
	}
	var id string
	if v, ok := f.ProductFields["ControlId"]; ok && json.Unmarshal(v, &id) == nil {
		return id
	}
	return ""
}

// skip is why a finding asks for nothing; "" when it asks for its instances.
func (f *finding) skip() string {
	status := ""
	if f.Compliance != nil {
		status = f.Compliance.Status
	}
	switch control := f.controlID(); {
	case control == "":
		return "no control id"
	case control != controlIMDSv2:
		return "for control " + show(control)
	case f.RecordState == "ARCHIVED":
		return "archived"
	case f.Workflow != nil && f.Workflow.Status == "SUPPRESSED":
		return "suppressed"
	case status == "":
		return "without a compliance status"
	case status != "FAILED":
		return show(status)
	}
	return ""
}

// parseFindingsImported reads a batch of Security Hub findings: every active,
// unsuppressed FAILED EC2.8 finding asks for the instances among its resources. When
// none does, the request says how many findings were skipped for which reason.
func parseFindingsImported(e *event) (Request, error) {
	var d findingsImportedDetail
	if err := e.decodeDetail(&d); err != nil {
		return Request{}, err
	}
	if d.Findings == nil {
		return Request{}, e.errf("detail.findings is missing")
	}
	b := e.request()
	skipped := map[string]int{}
	var skipOrder []string
	for i, raw := range d.Findings {
		field := fmt.Sprintf("detail.findings[%d]", i)
		if k := jsonKind(raw); k != "an object" {
			return Request{}, e.errf("%s is %s, not an object", field, k)
		}
		var f finding
		if err := json.Unmarshal(raw, &f); err != nil {
			return Request{}, e.errf("%s", decodeProblem(field, err))
		}
		if f.ID != "" {
			field += fmt.Sprintf(" (%s)", f.ID)
		}
		if reason := f.skip(); reason != "" {
			if skipped[reason] == 0 {
				skipOrder = append(skipOrder, reason)
			}
			skipped[reason]++
			continue
		}
		found := false
		for j, r := range f.Resources {
			if r.Type != "AwsEc2Instance" {
				continue
			}
			found = true
			ref, err := instanceARN(r.ID)
			if err != nil {
				return Request{}, e.errf("%s.Resources[%d].Id %q %v", field, j, r.ID, err)
			}
			b.add(ref)
		}
		if !found {
			return Request{}, e.errf("%s is a FAILED %s finding without an AwsEc2Instance resource", field, controlIMDSv2)
		}
	}
	if b.empty() {
		if len(d.Findings) == 0 {
			return b.ignore("detail.findings is empty")
		}
		parts := make([]string, 0, len(skipOrder))
		for _, reason := range skipOrder {
			parts = append(parts, fmt.Sprintf("%d %s", skipped[reason], reason))
		}
		return b.ignore("no active, unsuppressed FAILED %s finding among %s (%s)", controlIMDSv2,
			plural(len(d.Findings), "finding", "findings"), strings.Join(parts, ", "))
	}
	return b.done()
}

// instanceARN reads arn:PARTITION:ec2:REGION:ACCOUNT:instance/i-....
func instanceARN(arn string) (Ref, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || !strings.HasPrefix(parts[1], "aws") || parts[2] != "ec2" ||
		!strings.HasPrefix(parts[5], "instance/") {
		return Ref{}, errors.New("is not an EC2 instance ARN (arn:aws:ec2:REGION:ACCOUNT:instance/i-...)")
	}
	ref := Ref{Region: parts[3], AccountID: parts[4], InstanceID: strings.TrimPrefix(parts[5], "instance/")}
	switch {
	case !policy.ValidRegion(ref.Region):
		return Ref{}, fmt.Errorf("has region %q, which is not a region", ref.Region)
	case !policy.ValidAccountID(ref.AccountID):
		return Ref{}, fmt.Errorf("has account %q, which is not a 12-digit account id", ref.AccountID)
	case !policy.ValidInstanceID(ref.InstanceID):
		return Ref{}, fmt.Errorf("has instance id %q, which is not an instance id", ref.InstanceID)
	}
	return ref, nil
}
