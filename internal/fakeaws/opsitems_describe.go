package fakeaws

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// opsItemFilter is one decoded DescribeOpsItems filter.
type opsItemFilter struct {
	Key      *string
	Values   []string
	Operator *string
}

// opsItemFilterOperators lists, per filter key the stand-in implements, the operators
// the service documents for it.
var opsItemFilterOperators = map[string][]string{
	"OpsItemId":            {"Equal"},
	"Status":               {"Equal"},
	"Title":                {"Equal", "Contains"},
	"Source":               {"Equal", "Contains"},
	"Category":             {"Equal"},
	"Severity":             {"Equal"},
	"Priority":             {"Equal"},
	"OpsItemType":          {"Equal"},
	"OperationalData":      {"Equal"},
	"OperationalDataKey":   {"Equal"},
	"OperationalDataValue": {"Equal", "Contains"},
	"ResourceId":           {"Contains"},
	"CreatedTime":          {"GreaterThan", "LessThan"},
	"LastModifiedTime":     {"GreaterThan", "LessThan"},
}

// opsItemFilterKeys is the OpsItemFilterKey enum of the model.
var opsItemFilterKeys = []string{"Status", "CreatedBy", "Source", "Priority", "Title", "OpsItemId", "CreatedTime",
	"LastModifiedTime", "ActualStartTime", "ActualEndTime", "PlannedStartTime", "PlannedEndTime", "OperationalData",
	"OperationalDataKey", "OperationalDataValue", "ResourceId", "AutomationId", "Category", "Severity", "OpsItemType",
	"AccessRequestByRequesterArn", "AccessRequestByRequesterId", "AccessRequestByApproverArn", "AccessRequestByApproverId",
	"AccessRequestBySourceAccountId", "AccessRequestBySourceOpsItemId", "AccessRequestBySourceRegion",
	"AccessRequestByIsReplica", "AccessRequestByTargetResourceId", "ChangeRequestByRequesterArn",
	"ChangeRequestByRequesterName", "ChangeRequestByApproverArn", "ChangeRequestByApproverName",
	"ChangeRequestByTemplate", "ChangeRequestByTargetsResourceGroup", "InsightByType", "AccountId"}

// keyValue is the {"key","value"} JSON of the OperationalData filter.
type keyValue struct {
	Key   *string `json:"key"`
	Value *string `json:"value"`
}

func parseKeyValue(s string) (keyValue, bool) {
	var kv keyValue
	if json.Unmarshal([]byte(s), &kv) != nil || kv.Key == nil || kv.Value == nil {
		return keyValue{}, false
	}
	return kv, true
}

func parseFilterTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.UnixMilli(int64(f * 1e3)), true
	}
	return time.Time{}, false
}

// compile turns a filter into a predicate, checking it the way the service does.
func (f opsItemFilter) compile(i int) (func(*opsItem) bool, *ssmError) {
	var v validator
	p := fmt.Sprintf("opsItemFilters.%d.member", i+1)
	v.required(f.Key, p+".key")
	v.required(f.Operator, p+".operator")
	if f.Values == nil {
		v.fail(nil, p+".values", "Member must not be null")
	}
	v.enum(f.Key, p+".key", opsItemFilterKeys)
	v.enum(f.Operator, p+".operator", []string{"Equal", "Contains", "GreaterThan", "LessThan"})
	if e := v.err(); e != nil {
		return nil, e
	}
	key, op := *f.Key, *f.Operator
	ops, implemented := opsItemFilterOperators[key]
	if !implemented {
		return nil, opsErr("NotImplemented", fmt.Sprintf("the OpsItems stand-in does not implement the %s filter", key))
	}
	if !slices.Contains(ops, op) {
		return nil, opsErr("ValidationException", fmt.Sprintf("The operator %s is not supported for the filter key %s; use %s.", op, key, strings.Join(ops, " or ")))
	}
	searchable := func(it *opsItem, match func(k string, d OpsItemData) bool) bool {
		for k, d := range it.OperationalData {
			if d.Type == opsItemSearchable && match(k, d) {
				return true
			}
		}
		return false
	}
	str := func(get func(*opsItem) string) func(*opsItem, string) bool {
		if op == "Contains" {
			return func(it *opsItem, val string) bool { return strings.Contains(get(it), val) }
		}
		return func(it *opsItem, val string) bool { return get(it) == val }
	}
	var match func(*opsItem, string) bool
	switch key {
	case "OpsItemId":
		match = str(func(it *opsItem) string { return it.OpsItemID })
	case "Status":
		match = str(func(it *opsItem) string { return it.Status })
	case "Source":
		match = str(func(it *opsItem) string { return it.Source })
	case "Category":
		match = str(func(it *opsItem) string { return it.Category })
	case "Severity":
		match = str(func(it *opsItem) string { return it.Severity })
	case "OpsItemType":
		match = str(func(it *opsItem) string { return it.OpsItemType })
	case "Priority":
		match = func(it *opsItem, val string) bool { return it.Priority != 0 && strconv.Itoa(int(it.Priority)) == val }
	case "Title":
		if op == "Equal" {
			for _, val := range f.Values {
				if utf8.RuneCountInString(val) > opsItemTitleEqualPrefix {
					return nil, opsErr("ValidationException", fmt.Sprintf("The Title filter value exceeds the length limit of %d characters.", opsItemTitleEqualPrefix))
				}
			}
			match = func(it *opsItem, val string) bool {
				t := []rune(it.Title)
				return string(t[:min(len(t), opsItemTitleEqualPrefix)]) == val
			}
		} else {
			match = str(func(it *opsItem) string { return it.Title })
		}
	case "OperationalData":
		for _, val := range f.Values {
			if _, ok := parseKeyValue(val); !ok {
				return nil, opsErr("ValidationException", fmt.Sprintf(`The OperationalData filter value %q is not of the form {"key":"key_name","value":"a_value"}.`, val))
			}
		}
		match = func(it *opsItem, val string) bool {
			kv, _ := parseKeyValue(val)
			return searchable(it, func(k string, d OpsItemData) bool { return k == *kv.Key && d.Value == *kv.Value })
		}
	case "OperationalDataKey":
		match = func(it *opsItem, val string) bool {
			return searchable(it, func(k string, _ OpsItemData) bool { return k == val })
		}
	case "OperationalDataValue":
		// The documented form is the bare value; {"key","value"} narrows it to one key.
		cmp := func(have, want string) bool { return have == want }
		if op == "Contains" {
			cmp = strings.Contains
		}
		match = func(it *opsItem, val string) bool {
			if kv, ok := parseKeyValue(val); ok {
				return searchable(it, func(k string, d OpsItemData) bool { return k == *kv.Key && cmp(d.Value, *kv.Value) })
			}
			return searchable(it, func(_ string, d OpsItemData) bool { return cmp(d.Value, val) })
		}
	case "ResourceId":
		match = func(it *opsItem, val string) bool {
			return slices.ContainsFunc(it.Resources, func(a string) bool { return strings.Contains(a, val) })
		}
	case "CreatedTime", "LastModifiedTime":
		for _, val := range f.Values {
			if _, ok := parseFilterTime(val); !ok {
				return nil, opsErr("ValidationException", fmt.Sprintf("The %s filter value %q is not a timestamp.", key, val))
			}
		}
		match = func(it *opsItem, val string) bool {
			t, _ := parseFilterTime(val)
			have := it.CreatedTime
			if key == "LastModifiedTime" {
				have = it.LastModifiedTime
			}
			if op == "GreaterThan" {
				return have.After(t)
			}
			return have.Before(t)
		}
	}
	values := f.Values
	return func(it *opsItem) bool {
		return slices.ContainsFunc(values, func(val string) bool { return match(it, val) })
	}, nil
}

func (o *OpsItems) describeOpsItems(_ *http.Request, body []byte) (any, *ssmError) {
	var in struct {
		OpsItemFilters []opsItemFilter
		MaxResults     *json.Number
		NextToken      *string
	}
	if e := decodeStrict(body, &in); e != nil {
		return nil, e
	}
	limit := describeOpsItemsMaxLimit
	if in.MaxResults != nil {
		n, err := in.MaxResults.Int64()
		var v validator
		switch {
		case err != nil:
			v.fail(in.MaxResults.String(), "maxResults", "Member must be an integer")
		case n < 1:
			v.fail(n, "maxResults", "Member must have value greater than or equal to 1")
		case n > describeOpsItemsMaxLimit:
			v.fail(n, "maxResults", fmt.Sprintf("Member must have value less than or equal to %d", describeOpsItemsMaxLimit))
		}
		if e := v.err(); e != nil {
			return nil, e
		}
		limit = int(n)
	}
	var preds []func(*opsItem) bool
	for i, f := range in.OpsItemFilters {
		p, e := f.compile(i)
		if e != nil {
			return nil, e
		}
		preds = append(preds, p)
	}
	filters, _ := json.Marshal(in.OpsItemFilters)
	fp := fingerprint("DescribeOpsItems", string(filters))
	cursor := ^uint64(0)
	if in.NextToken != nil {
		tok, err := decodePageToken(*in.NextToken, fp)
		if err != nil {
			return nil, opsErr("InvalidNextToken", "The specified token isn't valid.")
		}
		cursor = tok.Seq
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	out := struct {
		OpsItemSummaries []opsItemJSON `json:"OpsItemSummaries"`
		NextToken        string        `json:"NextToken,omitempty"`
	}{OpsItemSummaries: []opsItemJSON{}}
	var last uint64
	// Newest first; the token resumes strictly below the last OpsItem returned, so
	// OpsItems created between pages neither repeat nor shift the pages.
	for i := len(o.items) - 1; i >= 0; i-- {
		it := o.items[i]
		if it.seq >= cursor || !allMatch(preds, it) {
			continue
		}
		if len(out.OpsItemSummaries) == limit {
			out.NextToken = pageToken{Request: fp, Seq: last}.encode()
			break
		}
		out.OpsItemSummaries = append(out.OpsItemSummaries, it.toJSON(true))
		last = it.seq
	}
	return out, nil
}

func allMatch(preds []func(*opsItem) bool, it *opsItem) bool {
	for _, p := range preds {
		if !p(it) {
			return false
		}
	}
	return true
}
