package fakeaws

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// OpsItems is a stand-in for the Systems Manager OpsCenter OpsItem API (moto has none).
// It speaks AWS JSON 1.1 like the real service, so the real SDK client is used against it
// unchanged: POST /, X-Amz-Target AmazonSSM.<Operation>, Content-Type
// application/x-amz-json-1.1, errors as {"__type","message"} plus X-Amzn-ErrorType.
//
// It serves CreateOpsItem, GetOpsItem, UpdateOpsItem and DescribeOpsItems, with the
// constraints of the published API model (lengths, patterns, enums: ValidationException)
// and OpsCenter's documented semantics:
//
//   - Deduplication: an OperationalData "/aws/dedup" entry whose Value is
//     {"dedupString":"..."} is hashed, case-insensitively, together with the related
//     resources of "/aws/resources". While an OpsItem with the same hash is Open or
//     InProgress, CreateOpsItem creates nothing and fails with
//     OpsItemAlreadyExistsException carrying that OpsItem's OpsItemId (the member the
//     API model gives the exception); once it is Resolved, a new OpsItem is created.
//     The deduplication string cannot be changed after creation.
//   - Operational data keys may not start with amazon, aws, amzn, ssm, /amazon, /aws,
//     /amzn or /ssm, except the system keys /aws/dedup, /aws/resources and
//     /aws/automations (OpsItemInvalidParameterException).
//   - The Source may not contain "aws", "amazon" or "amzn".
//   - DescribeOpsItems sees only SearchableString operational data, both in its filters
//     and in the summaries it returns; GetOpsItem returns all of it.
//
// Severity is held to "1".."4", the documented severity options (the model itself only
// constrains it to 1-64 characters).
//
// It is safe for concurrent use.
type OpsItems struct {
	URL string

	server *loopbackServer
	faults faults[opsItemsCall]

	mu       sync.Mutex
	seq      uint64
	items    []*opsItem // creation order
	byID     map[string]*opsItem
	requests map[string]int // by operation name
}

// OpsItemRecord is a copy of one stored OpsItem, as Items returns it.
type OpsItemRecord struct {
	OpsItemID        string
	OpsItemArn       string
	OpsItemType      string // "/aws/issue" unless given
	Title            string
	Description      string
	Source           string
	Status           string // "Open", "InProgress" or "Resolved"
	Severity         string // "" when not given
	Category         string
	Priority         int32 // 0 when not given
	OperationalData  map[string]OpsItemData
	Notifications    []string // SNS topic ARNs
	RelatedOpsItems  []string // OpsItem IDs
	Tags             map[string]string
	CreatedTime      time.Time
	LastModifiedTime time.Time
	Version          int // 1 on creation, +1 per UpdateOpsItem

	// DedupString is the "/aws/dedup" dedupString as given at creation, "" if none.
	DedupString string
	// Resources are the ARNs of "/aws/resources".
	Resources []string
	// Duplicates counts the CreateOpsItem calls deduplicated into this OpsItem.
	Duplicates int
}

// OpsItemData is one operational data entry.
type OpsItemData struct {
	Value string
	Type  string // "SearchableString", "String", or "" when the caller gave none
}

// Errors a test can inject with FailNext or SetFault. Throttling and the 500 are retried
// by the SDK; OpsItemAccessDeniedException surfaces as *types.OpsItemAccessDeniedException.
var (
	OpsItemsThrottling    = APIError{Code: "ThrottlingException", Message: "Rate exceeded", Status: http.StatusBadRequest}
	OpsItemsInternalError = APIError{Code: "InternalServerError", Message: "An error occurred on the server side.", Status: http.StatusInternalServerError}
	OpsItemsAccessDenied  = APIError{Code: "OpsItemAccessDeniedException", Message: "You don't have permission to view OpsItems in the specified account.", Status: http.StatusBadRequest}
)

const (
	ssmTargetPrefix = "AmazonSSM."
	// opsItemsAccount is the account of every OpsItem ARN, the one moto uses too.
	opsItemsAccount          = "123456789012"
	opsItemsDefaultRegion    = "us-east-1"
	describeOpsItemsMaxLimit = 50
	opsItemTitleEqualPrefix  = 100 // DescribeOpsItems Title Equal compares this many characters
	opsItemMaxResources      = 100
	opsItemMaxDataValueBytes = 20 * 1024
	opsItemDedupKey          = "/aws/dedup"
	opsItemResourcesKey      = "/aws/resources"
	opsItemAutomationsKey    = "/aws/automations"
	opsItemSearchable        = "SearchableString"
	opsItemDefaultType       = "/aws/issue"
)

// opsItemStatuses is the OpsItemStatus enum of the model; only the first three apply to
// the /aws/issue and /aws/insight OpsItems this stand-in holds.
var opsItemStatuses = []string{"Open", "InProgress", "Resolved", "Pending", "TimedOut", "Cancelling", "Cancelled",
	"Failed", "CompletedWithSuccess", "CompletedWithFailure", "Scheduled", "RunbookInProgress",
	"PendingChangeCalendarOverride", "ChangeCalendarOverrideApproved", "ChangeCalendarOverrideRejected",
	"PendingApproval", "Approved", "Revoked", "Rejected", "Closed"}

var (
	opsItemIDPattern   = regexp.MustCompile(`^(oi)-[0-9a-f]{12}$`)
	opsItemArnPattern  = regexp.MustCompile(`^arn:(aws[a-zA-Z-]*)?:ssm:[a-z0-9-\.]{0,63}:[0-9]{12}:opsitem.*`)
	opsItemAccountPatt = regexp.MustCompile(`^[0-9]{12}$`)
	tagPattern         = regexp.MustCompile(`^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`)
)

type opsItem struct {
	OpsItemRecord
	seq      uint64
	dedupKey string // "" when no dedup string
}

// blocksDuplicates reports whether the OpsItem stops a new one with its dedup hash.
func (o *opsItem) blocksDuplicates() bool { return o.Status == "Open" || o.Status == "InProgress" }

// opsItemsCall is what a SetFault function sees.
type opsItemsCall struct {
	target string
	body   map[string]any
}

// NewOpsItems starts an OpsItems stand-in on a loopback port. Close it when done.
func NewOpsItems() *OpsItems {
	o := &OpsItems{byID: map[string]*opsItem{}, requests: map[string]int{}}
	o.server = startLoopback(http.HandlerFunc(o.serveHTTP))
	o.URL = o.server.url
	return o
}

// Close stops the server.
func (o *OpsItems) Close() { o.server.close() }

// Reset drops all OpsItems, counters and faults.
func (o *OpsItems) Reset() {
	o.faults.clear()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.items, o.byID, o.requests = nil, map[string]*opsItem{}, map[string]int{}
}

// Items returns a copy of every OpsItem in creation order.
func (o *OpsItems) Items() []OpsItemRecord {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]OpsItemRecord, 0, len(o.items))
	for _, it := range o.items {
		out = append(out, it.clone())
	}
	return out
}

func (o *opsItem) clone() OpsItemRecord {
	r := o.OpsItemRecord
	r.OperationalData = maps.Clone(r.OperationalData)
	r.Notifications = slices.Clone(r.Notifications)
	r.RelatedOpsItems = slices.Clone(r.RelatedOpsItems)
	r.Tags = maps.Clone(r.Tags)
	r.Resources = slices.Clone(r.Resources)
	return r
}

// FailNext makes the next n requests, whatever their operation, fail with e.
func (o *OpsItems) FailNext(n int, e APIError) { o.faults.failNext(n, e) }

// SetFault installs fn to decide, per request, whether to fail it (non-nil) or serve it
// (nil). It gets the X-Amz-Target (e.g. "AmazonSSM.CreateOpsItem") and the decoded JSON
// body, and runs after FailNext's queue is empty. nil removes it.
func (o *OpsItems) SetFault(fn func(target string, body map[string]any) *APIError) {
	if fn == nil {
		o.faults.set(nil)
		return
	}
	o.faults.set(func(c opsItemsCall) *APIError { return fn(c.target, c.body) })
}

// ClearFaults removes the FailNext queue and the SetFault function.
func (o *OpsItems) ClearFaults() { o.faults.clear() }

// Requests returns how many requests for op ("CreateOpsItem" or
// "AmazonSSM.CreateOpsItem") arrived, including failed and faulted ones but not those
// rejected before decoding (wrong target, content type or signature); "" counts all.
func (o *OpsItems) Requests(op string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if op == "" {
		n := 0
		for _, v := range o.requests {
			n += v
		}
		return n
	}
	return o.requests[strings.TrimPrefix(op, ssmTargetPrefix)]
}

// ssmError is an APIError with the extra members some SSM exceptions carry
// (OpsItemId, ParameterNames, ...).
type ssmError struct {
	APIError
	extra map[string]any
}

func opsErr(code, msg string) *ssmError {
	return &ssmError{APIError: APIError{Code: code, Message: msg}}
}

func invalidParam(msg string, params ...string) *ssmError {
	e := opsErr("OpsItemInvalidParameterException", msg)
	e.extra = map[string]any{"ParameterNames": params}
	return e
}

func notFound(id string) *ssmError {
	return opsErr("OpsItemNotFoundException", fmt.Sprintf("OpsItemId %s does not exist.", id))
}

func writeSSMError(w http.ResponseWriter, e *ssmError) {
	body := map[string]any{"__type": e.Code, "message": e.Message}
	for k, v := range e.extra {
		body[k] = v
	}
	w.Header().Set("Content-Type", amzJSON11)
	w.Header().Set("X-Amzn-ErrorType", e.Code)
	w.Header().Set("X-Amzn-RequestId", newUUID())
	w.WriteHeader(e.status())
	_ = json.NewEncoder(w).Encode(body)
}

// requestScope is the region and service of a SigV4 credential scope.
func requestScope(r *http.Request) (region, service string) {
	auth := r.Header.Get("Authorization")
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return "", ""
	}
	cred, _, _ := strings.Cut(rest, ",")
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 {
		return "", ""
	}
	return parts[2], parts[3]
}

func (o *OpsItems) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		writeSSMError(w, &ssmError{APIError: APIError{Code: "UnknownOperationException", Status: http.StatusNotFound,
			Message: fmt.Sprintf("no operation at %s %s", r.Method, r.URL.Path)}})
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op, isSSM := strings.CutPrefix(target, ssmTargetPrefix)
	handler := map[string]func(*http.Request, []byte) (any, *ssmError){
		"CreateOpsItem":    o.createOpsItem,
		"GetOpsItem":       o.getOpsItem,
		"UpdateOpsItem":    o.updateOpsItem,
		"DescribeOpsItems": o.describeOpsItems,
	}[op]
	if !isSSM || handler == nil {
		writeSSMError(w, opsErr("UnknownOperationException",
			fmt.Sprintf("the stand-in serves only AmazonSSM.{CreateOpsItem,GetOpsItem,UpdateOpsItem,DescribeOpsItems}, not %q", target)))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != amzJSON11 {
		writeSSMError(w, opsErr("SerializationException", fmt.Sprintf("Content-Type %q is not %s", ct, amzJSON11)))
		return
	}
	if !signedV4(r) {
		writeSSMError(w, &ssmError{APIError: APIError{Code: "MissingAuthenticationTokenException", Status: http.StatusForbidden,
			Message: "Missing Authentication Token"}})
		return
	}
	if _, service := requestScope(r); service != "ssm" {
		writeSSMError(w, &ssmError{APIError: APIError{Code: "InvalidSignatureException", Status: http.StatusForbidden,
			Message: fmt.Sprintf("Credential should be scoped to correct service: 'ssm'. (got %q)", service)}})
		return
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	o.mu.Lock()
	o.requests[op]++
	o.mu.Unlock()
	var generic map[string]any
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		err = dec.Decode(&generic)
	}
	if err != nil {
		writeSSMError(w, opsErr("SerializationException", "cannot decode request body: "+err.Error()))
		return
	}
	if fault := o.faults.pick(opsItemsCall{target: target, body: generic}); fault != nil {
		writeSSMError(w, &ssmError{APIError: *fault})
		return
	}
	out, apiErr := handler(r, body)
	if apiErr != nil {
		writeSSMError(w, apiErr)
		return
	}
	w.Header().Set("Content-Type", amzJSON11)
	w.Header().Set("X-Amzn-RequestId", newUUID())
	_ = json.NewEncoder(w).Encode(out)
}

func decodeStrict(body []byte, v any) *ssmError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return opsErr("SerializationException", "cannot decode request body: "+err.Error())
	}
	return nil
}

type createOpsItemInput struct {
	opsItemFields
	Source      *string
	OpsItemType *string
	AccountId   *string
	Tags        []struct{ Key, Value *string }
}

func (o *OpsItems) createOpsItem(r *http.Request, body []byte) (any, *ssmError) {
	var in createOpsItemInput
	if e := decodeStrict(body, &in); e != nil {
		return nil, e
	}
	var v validator
	v.required(in.Description, "description")
	v.required(in.Source, "source")
	v.required(in.Title, "title")
	priority := in.validate(&v)
	v.length(in.Source, "source", 1, 128)
	v.notBlank(in.Source, "source", `^(?!\s*$).+`)
	v.pattern(in.AccountId, "accountId", opsItemAccountPatt)
	if len(in.Tags) > 1000 {
		v.fail(fmt.Sprint(len(in.Tags)), "tags", "Member must have length less than or equal to 1000")
	}
	for i, t := range in.Tags {
		p := fmt.Sprintf("tags.%d.member", i+1)
		v.required(t.Key, p+".key")
		v.required(t.Value, p+".value")
		v.length(t.Key, p+".key", 1, 128)
		v.pattern(t.Key, p+".key", tagPattern)
		v.length(t.Value, p+".value", 0, 256)
		v.pattern(t.Value, p+".value", tagPattern)
	}
	if e := v.err(); e != nil {
		return nil, e
	}

	src := strings.ToLower(*in.Source)
	for _, bad := range []string{"aws", "amazon", "amzn"} {
		if strings.Contains(src, bad) {
			return nil, invalidParam(fmt.Sprintf("The source %q is not valid: it can't contain aws, amazon or amzn.", *in.Source), "Source")
		}
	}
	typ := opsItemDefaultType
	if in.OpsItemType != nil {
		typ = *in.OpsItemType
		if typ != "/aws/issue" && typ != "/aws/insight" {
			return nil, invalidParam(fmt.Sprintf("OpsItemType %q is not supported by this stand-in (it holds /aws/issue and /aws/insight OpsItems).", typ), "OpsItemType")
		}
	}
	if in.AccountId != nil && *in.AccountId != opsItemsAccount {
		return nil, opsErr("OpsItemAccessDeniedException", "You don't have permission to view OpsItems in the specified account.")
	}
	data := toData(in.OperationalData)
	dedup, resources, e := checkOperationalData(data)
	if e != nil {
		return nil, e
	}

	region, _ := requestScope(r)
	if region == "" {
		region = opsItemsDefaultRegion
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	rec := OpsItemRecord{
		OpsItemType:      typ,
		Title:            *in.Title,
		Description:      *in.Description,
		Source:           *in.Source,
		Status:           "Open",
		Severity:         deref(in.Severity),
		Category:         deref(in.Category),
		Priority:         priority,
		OperationalData:  data,
		Tags:             map[string]string{},
		CreatedTime:      now,
		LastModifiedTime: now,
		Version:          1,
		Resources:        resources,
	}
	for _, n := range in.Notifications {
		rec.Notifications = append(rec.Notifications, deref(n.Arn))
	}
	for _, ri := range in.RelatedOpsItems {
		rec.RelatedOpsItems = append(rec.RelatedOpsItems, deref(ri.OpsItemId))
	}
	for _, t := range in.Tags {
		rec.Tags[*t.Key] = *t.Value
	}
	var key string
	if dedup != nil {
		rec.DedupString = *dedup
		key = dedupHash(*dedup, resources)
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	if key != "" {
		for _, it := range o.items {
			if it.dedupKey == key && it.blocksDuplicates() {
				it.Duplicates++
				e := opsErr("OpsItemAlreadyExistsException", fmt.Sprintf("The OpsItem already exists: %s matches the deduplication string of an open OpsItem.", it.OpsItemID))
				e.extra = map[string]any{"OpsItemId": it.OpsItemID}
				return nil, e
			}
		}
	}
	for {
		rec.OpsItemID = "oi-" + randomID("0123456789abcdef", 12)
		if o.byID[rec.OpsItemID] == nil {
			break
		}
	}
	rec.OpsItemArn = fmt.Sprintf("arn:aws:ssm:%s:%s:opsitem/%s", region, opsItemsAccount, rec.OpsItemID)
	o.seq++
	it := &opsItem{OpsItemRecord: rec, seq: o.seq, dedupKey: key}
	o.items = append(o.items, it)
	o.byID[rec.OpsItemID] = it
	return map[string]string{"OpsItemId": rec.OpsItemID, "OpsItemArn": rec.OpsItemArn}, nil
}

func (o *OpsItems) lookup(id, arn *string) (*opsItem, *ssmError) {
	var v validator
	v.required(id, "opsItemId")
	v.pattern(id, "opsItemId", opsItemIDPattern)
	v.length(arn, "opsItemArn", 20, 2048)
	v.pattern(arn, "opsItemArn", opsItemArnPattern)
	if e := v.err(); e != nil {
		return nil, e
	}
	it := o.byID[*id]
	if it == nil || (arn != nil && *arn != it.OpsItemArn) {
		return nil, notFound(*id)
	}
	return it, nil
}

// opsItemJSON is the OpsItem shape of GetOpsItem (and, trimmed, OpsItemSummary).
type opsItemJSON struct {
	OpsItemID        string              `json:"OpsItemId"`
	OpsItemArn       string              `json:"OpsItemArn,omitempty"`
	OpsItemType      string              `json:"OpsItemType,omitempty"`
	Title            string              `json:"Title"`
	Description      string              `json:"Description,omitempty"`
	Source           string              `json:"Source"`
	Status           string              `json:"Status"`
	Severity         string              `json:"Severity,omitempty"`
	Category         string              `json:"Category,omitempty"`
	Priority         int32               `json:"Priority,omitempty"`
	OperationalData  map[string]dataJSON `json:"OperationalData,omitempty"`
	Notifications    []map[string]string `json:"Notifications,omitempty"`
	RelatedOpsItems  []map[string]string `json:"RelatedOpsItems,omitempty"`
	CreatedBy        string              `json:"CreatedBy"`
	CreatedTime      json.Number         `json:"CreatedTime"`
	LastModifiedBy   string              `json:"LastModifiedBy"`
	LastModifiedTime json.Number         `json:"LastModifiedTime"`
	Version          string              `json:"Version,omitempty"`
}

type dataJSON struct {
	Value string `json:"Value"`
	Type  string `json:"Type,omitempty"`
}

func epochJSON(t time.Time) json.Number {
	return json.Number(strconv.FormatFloat(float64(t.UnixMilli())/1e3, 'f', -1, 64))
}

const opsItemsPrincipal = "arn:aws:iam::" + opsItemsAccount + ":root"

func (it *opsItem) toJSON(summary bool) opsItemJSON {
	out := opsItemJSON{
		OpsItemID:        it.OpsItemID,
		OpsItemType:      it.OpsItemType,
		Title:            it.Title,
		Source:           it.Source,
		Status:           it.Status,
		Severity:         it.Severity,
		Category:         it.Category,
		Priority:         it.Priority,
		CreatedBy:        opsItemsPrincipal,
		CreatedTime:      epochJSON(it.CreatedTime),
		LastModifiedBy:   opsItemsPrincipal,
		LastModifiedTime: epochJSON(it.LastModifiedTime),
		OperationalData:  map[string]dataJSON{},
	}
	for k, d := range it.OperationalData {
		if !summary || d.Type == opsItemSearchable {
			out.OperationalData[k] = dataJSON(d)
		}
	}
	if summary {
		return out
	}
	out.OpsItemArn = it.OpsItemArn
	out.Description = it.Description
	out.Version = strconv.Itoa(it.Version)
	out.Notifications = []map[string]string{}
	for _, n := range it.Notifications {
		out.Notifications = append(out.Notifications, map[string]string{"Arn": n})
	}
	for _, r := range it.RelatedOpsItems {
		out.RelatedOpsItems = append(out.RelatedOpsItems, map[string]string{"OpsItemId": r})
	}
	return out
}

func (o *OpsItems) getOpsItem(_ *http.Request, body []byte) (any, *ssmError) {
	var in struct{ OpsItemId, OpsItemArn *string }
	if e := decodeStrict(body, &in); e != nil {
		return nil, e
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	it, e := o.lookup(in.OpsItemId, in.OpsItemArn)
	if e != nil {
		return nil, e
	}
	return map[string]any{"OpsItem": it.toJSON(false)}, nil
}

type updateOpsItemInput struct {
	opsItemFields
	OpsItemId               *string
	OpsItemArn              *string
	Status                  *string
	OperationalDataToDelete []string
}

func (o *OpsItems) updateOpsItem(_ *http.Request, body []byte) (any, *ssmError) {
	var in updateOpsItemInput
	if e := decodeStrict(body, &in); e != nil {
		return nil, e
	}
	var v validator
	v.required(in.OpsItemId, "opsItemId")
	priority := in.validate(&v)
	v.enum(in.Status, "status", opsItemStatuses)
	if e := v.err(); e != nil {
		return nil, e
	}
	if in.Status != nil && !slices.Contains(opsItemStatuses[:3], *in.Status) {
		return nil, invalidParam(fmt.Sprintf("Status %s is not valid for this OpsItem type: use Open, InProgress or Resolved.", *in.Status), "Status")
	}
	upd := toData(in.OperationalData)
	if _, _, e := checkOperationalData(upd); e != nil {
		return nil, e
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	it, e := o.lookup(in.OpsItemId, in.OpsItemArn)
	if e != nil {
		return nil, e
	}
	// The deduplication string is fixed at creation.
	if d, ok := upd[opsItemDedupKey]; ok {
		if old, had := it.OperationalData[opsItemDedupKey]; !had || old.Value != d.Value {
			return nil, invalidParam("The deduplication string of an OpsItem can't be changed after it is created.", "OperationalData")
		}
	}
	if slices.Contains(in.OperationalDataToDelete, opsItemDedupKey) && it.DedupString != "" {
		return nil, invalidParam("The deduplication string of an OpsItem can't be deleted.", "OperationalDataToDelete")
	}
	merged := maps.Clone(it.OperationalData)
	for _, k := range in.OperationalDataToDelete {
		delete(merged, k)
	}
	maps.Copy(merged, upd)
	_, resources, e := checkOperationalData(merged)
	if e != nil {
		return nil, e
	}

	if in.Title != nil {
		it.Title = *in.Title
	}
	if in.Description != nil {
		it.Description = *in.Description
	}
	if in.Severity != nil {
		it.Severity = *in.Severity
	}
	if in.Category != nil {
		it.Category = *in.Category
	}
	if in.Priority != nil {
		it.Priority = priority
	}
	if in.Status != nil {
		it.Status = *in.Status
	}
	if in.Notifications != nil {
		it.Notifications = nil
		for _, n := range in.Notifications {
			it.Notifications = append(it.Notifications, deref(n.Arn))
		}
	}
	if in.RelatedOpsItems != nil {
		it.RelatedOpsItems = nil
		for _, r := range in.RelatedOpsItems {
			it.RelatedOpsItems = append(it.RelatedOpsItems, deref(r.OpsItemId))
		}
	}
	it.OperationalData = merged
	it.Resources = resources
	it.Version++
	// LastModifiedTime moves forward on every update, even within one millisecond.
	now := time.Now().UTC().Truncate(time.Millisecond)
	if floor := it.LastModifiedTime.Add(time.Millisecond); now.Before(floor) {
		now = floor
	}
	it.LastModifiedTime = now
	return struct{}{}, nil
}
