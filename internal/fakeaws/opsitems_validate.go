package fakeaws

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// validator collects constraint violations the way the AWS front end reports them:
// "N validation errors detected: Value 'x' at 'title' failed to satisfy constraint: ...".
type validator struct{ errs []string }

func (v *validator) fail(value any, path, constraint string) {
	shown := "null"
	if s, ok := value.(string); ok {
		shown = "'" + s + "'"
	} else if value != nil {
		shown = fmt.Sprintf("'%v'", value)
	}
	v.errs = append(v.errs, fmt.Sprintf("Value %s at '%s' failed to satisfy constraint: %s", shown, path, constraint))
}

func (v *validator) required(s *string, path string) {
	if s == nil {
		v.fail(nil, path, "Member must not be null")
	}
}

// length checks a length constraint in characters; a nil s is not checked.
func (v *validator) length(s *string, path string, lo, hi int) {
	if s == nil {
		return
	}
	n := utf8.RuneCountInString(*s)
	if n < lo {
		v.fail(*s, path, fmt.Sprintf("Member must have length greater than or equal to %d", lo))
	}
	if n > hi {
		v.fail(*s, path, fmt.Sprintf("Member must have length less than or equal to %d", hi))
	}
}

// notBlank is the model's ^(?!\s*$).+ and [\s\S]*\S[\s\S]* patterns.
func (v *validator) notBlank(s *string, path, pattern string) {
	if s != nil && *s != "" && strings.TrimSpace(*s) == "" {
		v.fail(*s, path, "Member must satisfy regular expression pattern: "+pattern)
	}
}

func (v *validator) pattern(s *string, path string, re *regexp.Regexp) {
	if s != nil && !re.MatchString(*s) {
		v.fail(*s, path, "Member must satisfy regular expression pattern: "+re.String())
	}
}

func (v *validator) enum(s *string, path string, values []string) {
	if s != nil && !slices.Contains(values, *s) {
		v.fail(*s, path, "Member must satisfy enum value set: ["+strings.Join(values, ", ")+"]")
	}
}

func (v *validator) err() *ssmError {
	switch len(v.errs) {
	case 0:
		return nil
	case 1:
		return opsErr("ValidationException", "1 validation error detected: "+v.errs[0])
	}
	return opsErr("ValidationException", fmt.Sprintf("%d validation errors detected: %s", len(v.errs), strings.Join(v.errs, "; ")))
}

// opsItemFields are the members CreateOpsItem and UpdateOpsItem share.
type opsItemFields struct {
	Title           *string
	Description     *string
	Severity        *string
	Category        *string
	Priority        *json.Number
	Notifications   []struct{ Arn *string }
	RelatedOpsItems []struct{ OpsItemId *string }
	OperationalData map[string]struct {
		Value *string
		Type  *string
	}
	ActualStartTime  *json.Number
	ActualEndTime    *json.Number
	PlannedStartTime *json.Number
	PlannedEndTime   *json.Number
}

var severityPattern = regexp.MustCompile(`^[1-4]$`)

func (f *opsItemFields) validate(v *validator) (priority int32) {
	v.length(f.Title, "title", 1, 1024)
	v.notBlank(f.Title, "title", `^(?!\s*$).+`)
	v.length(f.Description, "description", 1, 2048)
	v.notBlank(f.Description, "description", `[\s\S]*\S[\s\S]*`)
	v.length(f.Category, "category", 1, 64)
	v.notBlank(f.Category, "category", `^(?!\s*$).+`)
	v.length(f.Severity, "severity", 1, 64)
	if f.Severity != nil && *f.Severity != "" {
		v.pattern(f.Severity, "severity", severityPattern)
	}
	if f.Priority != nil {
		p, err := f.Priority.Int64()
		switch {
		case err != nil:
			v.fail(f.Priority.String(), "priority", "Member must be an integer")
		case p < 1:
			v.fail(p, "priority", "Member must have value greater than or equal to 1")
		case p > 5:
			v.fail(p, "priority", "Member must have value less than or equal to 5")
		default:
			priority = int32(p)
		}
	}
	for _, t := range []struct {
		n    *json.Number
		path string
	}{{f.ActualStartTime, "actualStartTime"}, {f.ActualEndTime, "actualEndTime"}, {f.PlannedStartTime, "plannedStartTime"}, {f.PlannedEndTime, "plannedEndTime"}} {
		if _, err := epochSeconds(t.n); err != nil {
			v.fail(t.n.String(), t.path, "Member must be a timestamp")
		}
	}
	for i, r := range f.RelatedOpsItems {
		v.required(r.OpsItemId, fmt.Sprintf("relatedOpsItems.%d.member.opsItemId", i+1))
	}
	for _, k := range slices.Sorted(maps.Keys(f.OperationalData)) {
		d := f.OperationalData[k]
		v.length(&k, "operationalData", 1, 128)
		v.notBlank(&k, "operationalData", `^(?!\s*$).+`)
		if d.Value != nil && strings.TrimSpace(*d.Value) == "" {
			v.fail(*d.Value, "operationalData."+k+".member.value", `Member must satisfy regular expression pattern: [\s\S]*\S[\s\S]*`)
		}
		v.enum(d.Type, "operationalData."+k+".member.type", []string{opsItemSearchable, "String"})
	}
	return priority
}

// reservedDataKey reports whether an operational data key uses a reserved prefix and is
// not one of the documented system keys.
func reservedDataKey(k string) bool {
	switch k {
	case opsItemDedupKey, opsItemResourcesKey, opsItemAutomationsKey:
		return false
	}
	l := strings.ToLower(k)
	for _, p := range []string{"amazon", "aws", "amzn", "ssm", "/amazon", "/aws", "/amzn", "/ssm"} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

// checkOperationalData applies the service-side rules to data entries and returns the
// dedup string and resources they carry (nil when the keys are absent).
func checkOperationalData(data map[string]OpsItemData) (dedup *string, resources []string, e *ssmError) {
	for _, k := range slices.Sorted(maps.Keys(data)) {
		if reservedDataKey(k) {
			return nil, nil, invalidParam(fmt.Sprintf("Operational data key %q is not valid: keys can't begin with amazon, aws, amzn, ssm, /amazon, /aws, /amzn or /ssm.", k), "OperationalData")
		}
		if len(data[k].Value) > opsItemMaxDataValueBytes {
			return nil, nil, invalidParam(fmt.Sprintf("The value of operational data key %q exceeds 20 KB.", k), "OperationalData")
		}
	}
	if d, ok := data[opsItemDedupKey]; ok {
		var v struct {
			DedupString *string `json:"dedupString"`
		}
		if json.Unmarshal([]byte(d.Value), &v) != nil || v.DedupString == nil || strings.TrimSpace(*v.DedupString) == "" {
			return nil, nil, invalidParam(`The value of /aws/dedup must be JSON of the form {"dedupString":"..."}.`, "OperationalData")
		}
		dedup = v.DedupString
	}
	if d, ok := data[opsItemResourcesKey]; ok {
		var v []struct {
			Arn *string `json:"arn"`
		}
		if json.Unmarshal([]byte(d.Value), &v) != nil {
			return nil, nil, invalidParam(`The value of /aws/resources must be a JSON list of {"arn":"..."}.`, "OperationalData")
		}
		if len(v) > opsItemMaxResources {
			return nil, nil, invalidParam(fmt.Sprintf("An OpsItem can have at most %d related resources.", opsItemMaxResources), "OperationalData")
		}
		resources = []string{}
		for _, r := range v {
			if r.Arn == nil || !strings.HasPrefix(*r.Arn, "arn:") {
				return nil, nil, invalidParam(`Every /aws/resources entry needs an "arn" that is an ARN.`, "OperationalData")
			}
			resources = append(resources, *r.Arn)
		}
	}
	return dedup, resources, nil
}

func dedupHash(dedup string, resources []string) string {
	rs := slices.Clone(resources)
	slices.Sort(rs)
	return strings.ToLower(dedup) + "\x00" + strings.Join(slices.Compact(rs), "\x00")
}

func toData(in map[string]struct {
	Value *string
	Type  *string
}) map[string]OpsItemData {
	out := make(map[string]OpsItemData, len(in))
	for k, d := range in {
		out[k] = OpsItemData{Value: deref(d.Value), Type: deref(d.Type)}
	}
	return out
}
