package fakeaws

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
)

func newTestOpsItems(t *testing.T) (*OpsItems, *ssm.Client) {
	t.Helper()
	o := NewOpsItems()
	t.Cleanup(o.Close)
	client := ssm.NewFromConfig(AWSConfig(testRegion), func(opt *ssm.Options) { opt.BaseEndpoint = aws.String(o.URL) })
	return o, client
}

// dedupData is the OperationalData of an OpsItem for one instance, as a ticketing
// client would send it: the native dedup key plus the instance as related resource.
func dedupData(dedup, instanceARN string) map[string]ssmtypes.OpsItemDataValue {
	d := map[string]ssmtypes.OpsItemDataValue{
		"/aws/dedup": {Type: ssmtypes.OpsItemDataTypeSearchableString, Value: aws.String(fmt.Sprintf(`{"dedupString":%q}`, dedup))},
	}
	if instanceARN != "" {
		d["/aws/resources"] = ssmtypes.OpsItemDataValue{Type: ssmtypes.OpsItemDataTypeSearchableString, Value: aws.String(fmt.Sprintf(`[{"arn":%q}]`, instanceARN))}
	}
	return d
}

func instanceARN(id string) string { return "arn:aws:ec2:us-east-1:123456789012:instance/" + id }

func createInput(title string, data map[string]ssmtypes.OpsItemDataValue) *ssm.CreateOpsItemInput {
	return &ssm.CreateOpsItemInput{
		Title:           aws.String(title),
		Description:     aws.String("The instance still accepts IMDSv1 requests."),
		Source:          aws.String("imdsguard"),
		OperationalData: data,
	}
}

func mustCreate(t *testing.T, client *ssm.Client, in *ssm.CreateOpsItemInput) string {
	t.Helper()
	out, err := client.CreateOpsItem(testContext(t), in)
	if err != nil {
		t.Fatalf("CreateOpsItem: %v", err)
	}
	return aws.ToString(out.OpsItemId)
}

func setStatus(t *testing.T, client *ssm.Client, id string, st ssmtypes.OpsItemStatus) {
	t.Helper()
	if _, err := client.UpdateOpsItem(testContext(t), &ssm.UpdateOpsItemInput{OpsItemId: aws.String(id), Status: st}); err != nil {
		t.Fatalf("UpdateOpsItem %s -> %s: %v", id, st, err)
	}
}

func TestOpsItemsCreateAndGet(t *testing.T) {
	o, client := newTestOpsItems(t)
	ctx := testContext(t)
	before := time.Now().Add(-time.Second)
	data := dedupData("imdsv1:i-0abc", instanceARN("i-0abc"))
	data["instance-id"] = ssmtypes.OpsItemDataValue{Type: ssmtypes.OpsItemDataTypeSearchableString, Value: aws.String("i-0abc")}
	data["evidence"] = ssmtypes.OpsItemDataValue{Type: ssmtypes.OpsItemDataTypeString, Value: aws.String(`{"calls":3}`)}
	out, err := client.CreateOpsItem(ctx, &ssm.CreateOpsItemInput{
		Title:           aws.String("IMDSv1 in use on i-0abc"),
		Description:     aws.String("Three IMDSv1 calls in the last day."),
		Source:          aws.String("imdsguard"),
		Severity:        aws.String("2"),
		Category:        aws.String("Security"),
		Priority:        aws.Int32(3),
		Notifications:   []ssmtypes.OpsItemNotification{{Arn: aws.String("arn:aws:sns:us-east-1:123456789012:sec")}},
		RelatedOpsItems: []ssmtypes.RelatedOpsItem{{OpsItemId: aws.String("oi-000000000001")}},
		Tags:            []ssmtypes.Tag{{Key: aws.String("team"), Value: aws.String("platform")}},
		OperationalData: data,
	})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.OpsItemId)
	if !regexp.MustCompile(`^oi-[0-9a-f]{12}$`).MatchString(id) {
		t.Fatalf("OpsItemId %q is not oi-<12 hex>", id)
	}
	if want := "arn:aws:ssm:us-east-1:123456789012:opsitem/" + id; aws.ToString(out.OpsItemArn) != want {
		t.Fatalf("OpsItemArn %q, want %q", aws.ToString(out.OpsItemArn), want)
	}

	got, err := client.GetOpsItem(ctx, &ssm.GetOpsItemInput{OpsItemId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	it := got.OpsItem
	checks := []struct{ field, got, want string }{
		{"OpsItemId", aws.ToString(it.OpsItemId), id},
		{"OpsItemArn", aws.ToString(it.OpsItemArn), aws.ToString(out.OpsItemArn)},
		{"OpsItemType", aws.ToString(it.OpsItemType), "/aws/issue"},
		{"Title", aws.ToString(it.Title), "IMDSv1 in use on i-0abc"},
		{"Description", aws.ToString(it.Description), "Three IMDSv1 calls in the last day."},
		{"Source", aws.ToString(it.Source), "imdsguard"},
		{"Status", string(it.Status), "Open"},
		{"Severity", aws.ToString(it.Severity), "2"},
		{"Category", aws.ToString(it.Category), "Security"},
		{"Priority", fmt.Sprint(aws.ToInt32(it.Priority)), "3"},
		{"Version", aws.ToString(it.Version), "1"},
		{"Notifications", aws.ToString(it.Notifications[0].Arn), "arn:aws:sns:us-east-1:123456789012:sec"},
		{"RelatedOpsItems", aws.ToString(it.RelatedOpsItems[0].OpsItemId), "oi-000000000001"},
		{"CreatedBy", aws.ToString(it.CreatedBy), "arn:aws:iam::123456789012:root"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	created, modified := aws.ToTime(it.CreatedTime), aws.ToTime(it.LastModifiedTime)
	if created.Before(before) || created.After(time.Now().Add(time.Second)) || !modified.Equal(created) {
		t.Errorf("CreatedTime %v / LastModifiedTime %v, want now and equal", created, modified)
	}
	if len(it.OperationalData) != 4 {
		t.Errorf("GetOpsItem returned %d operational data entries, want all 4", len(it.OperationalData))
	}
	for k, v := range data {
		g := it.OperationalData[k]
		if aws.ToString(g.Value) != aws.ToString(v.Value) || g.Type != v.Type {
			t.Errorf("OperationalData[%s] = %v/%s, want %v/%s", k, aws.ToString(g.Value), g.Type, aws.ToString(v.Value), v.Type)
		}
	}

	items := o.Items()
	if len(items) != 1 {
		t.Fatalf("Items() has %d, want 1", len(items))
	}
	rec := items[0]
	if rec.DedupString != "imdsv1:i-0abc" || !slices.Equal(rec.Resources, []string{instanceARN("i-0abc")}) ||
		rec.Tags["team"] != "platform" || rec.Version != 1 || rec.Duplicates != 0 {
		t.Errorf("record %+v", rec)
	}
	items[0].OperationalData["x"] = OpsItemData{Value: "mutated"}
	if _, ok := o.Items()[0].OperationalData["x"]; ok {
		t.Error("Items() shares its maps with the store")
	}
}

func TestOpsItemsUpdate(t *testing.T) {
	o, client := newTestOpsItems(t)
	ctx := testContext(t)
	data := dedupData("imdsv1:i-1", "")
	data["calls"] = ssmtypes.OpsItemDataValue{Type: ssmtypes.OpsItemDataTypeSearchableString, Value: aws.String("3")}
	data["stale"] = ssmtypes.OpsItemDataValue{Type: ssmtypes.OpsItemDataTypeString, Value: aws.String("x")}
	id := mustCreate(t, client, createInput("IMDSv1 on i-1", data))

	_, err := client.UpdateOpsItem(ctx, &ssm.UpdateOpsItemInput{
		OpsItemId:               aws.String(id),
		Status:                  ssmtypes.OpsItemStatusInProgress,
		Description:             aws.String("Owner notified."),
		Severity:                aws.String("1"),
		OperationalData:         map[string]ssmtypes.OpsItemDataValue{"calls": {Type: ssmtypes.OpsItemDataTypeSearchableString, Value: aws.String("7")}, "owner": {Value: aws.String("team-a")}},
		OperationalDataToDelete: []string{"stale"},
	})
	if err != nil {
		t.Fatal(err)
	}
	setStatus(t, client, id, ssmtypes.OpsItemStatusResolved)

	got, err := client.GetOpsItem(ctx, &ssm.GetOpsItemInput{OpsItemId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	it := got.OpsItem
	if it.Status != ssmtypes.OpsItemStatusResolved || aws.ToString(it.Description) != "Owner notified." ||
		aws.ToString(it.Severity) != "1" || aws.ToString(it.Title) != "IMDSv1 on i-1" || aws.ToString(it.Version) != "3" {
		t.Fatalf("after updates: status %s description %q severity %q title %q version %q", it.Status,
			aws.ToString(it.Description), aws.ToString(it.Severity), aws.ToString(it.Title), aws.ToString(it.Version))
	}
	if aws.ToString(it.OperationalData["calls"].Value) != "7" || aws.ToString(it.OperationalData["owner"].Value) != "team-a" {
		t.Errorf("OperationalData not merged: %v", it.OperationalData)
	}
	if _, ok := it.OperationalData["stale"]; ok {
		t.Error("OperationalDataToDelete kept the key")
	}
	if _, ok := it.OperationalData["/aws/dedup"]; !ok {
		t.Error("update dropped the untouched /aws/dedup entry")
	}
	if !aws.ToTime(it.LastModifiedTime).After(aws.ToTime(it.CreatedTime)) {
		t.Errorf("LastModifiedTime %v not after CreatedTime %v", aws.ToTime(it.LastModifiedTime), aws.ToTime(it.CreatedTime))
	}
	if rec := o.Items()[0]; rec.Status != "Resolved" || rec.Version != 3 {
		t.Errorf("Items() record status %s version %d", rec.Status, rec.Version)
	}
}

func TestOpsItemsDeduplication(t *testing.T) {
	type step struct {
		dedup, instance string
		resolveFirst    bool // resolve the first OpsItem before this create
		inProgressFirst bool
		wantSameAsFirst bool // false: a new OpsItem is created
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"same dedup string while open returns the open OpsItem", []step{
			{dedup: "imdsv1:i-1", instance: "i-1", wantSameAsFirst: true},
		}},
		{"dedup strings are case-insensitive", []step{
			{dedup: "IMDSV1:I-1", instance: "i-1", wantSameAsFirst: true},
		}},
		{"in progress still deduplicates", []step{
			{dedup: "imdsv1:i-1", instance: "i-1", inProgressFirst: true, wantSameAsFirst: true},
		}},
		{"after Resolved a new OpsItem is created", []step{
			{dedup: "imdsv1:i-1", instance: "i-1", resolveFirst: true},
		}},
		{"same string for other resources creates a new OpsItem", []step{
			{dedup: "imdsv1:i-1", instance: "i-2"},
		}},
		{"another dedup string creates a new OpsItem", []step{
			{dedup: "imdsv1:i-2", instance: "i-1"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, client := newTestOpsItems(t)
			first := mustCreate(t, client, createInput("IMDSv1 on i-1", dedupData("imdsv1:i-1", instanceARN("i-1"))))
			for _, s := range tc.steps {
				if s.resolveFirst {
					setStatus(t, client, first, ssmtypes.OpsItemStatusResolved)
				}
				if s.inProgressFirst {
					setStatus(t, client, first, ssmtypes.OpsItemStatusInProgress)
				}
				out, err := client.CreateOpsItem(testContext(t), createInput("IMDSv1 again", dedupData(s.dedup, instanceARN(s.instance))))
				if s.wantSameAsFirst {
					var dup *ssmtypes.OpsItemAlreadyExistsException
					if !errors.As(err, &dup) {
						t.Fatalf("CreateOpsItem = %v, %v; want OpsItemAlreadyExistsException", out, err)
					}
					if aws.ToString(dup.OpsItemId) != first {
						t.Fatalf("duplicate points at %q, want the open OpsItem %s", aws.ToString(dup.OpsItemId), first)
					}
					if len(o.Items()) != 1 || o.Items()[0].Duplicates != 1 {
						t.Fatalf("items %+v, want the one OpsItem with 1 duplicate", o.Items())
					}
					continue
				}
				if err != nil {
					t.Fatalf("CreateOpsItem: %v", err)
				}
				if id := aws.ToString(out.OpsItemId); id == first || id == "" {
					t.Fatalf("got OpsItemId %q, want a new one", id)
				}
				if len(o.Items()) != 2 {
					t.Fatalf("%d items, want 2", len(o.Items()))
				}
			}
		})
	}
}

// The full lifecycle a ticketing client relies on: open, deduplicate, resolve, reopen
// as a new OpsItem, which then deduplicates in turn.
func TestOpsItemsDedupLifecycle(t *testing.T) {
	o, client := newTestOpsItems(t)
	in := createInput("IMDSv1 on i-9", dedupData("imdsguard/imdsv1/i-9", instanceARN("i-9")))
	first := mustCreate(t, client, in)
	for range 3 {
		var dup *ssmtypes.OpsItemAlreadyExistsException
		if _, err := client.CreateOpsItem(testContext(t), in); !errors.As(err, &dup) || aws.ToString(dup.OpsItemId) != first {
			t.Fatalf("repeat create: %v, want OpsItemAlreadyExistsException for %s", err, first)
		}
	}
	setStatus(t, client, first, ssmtypes.OpsItemStatusResolved)
	second := mustCreate(t, client, in)
	if second == first {
		t.Fatal("a resolved OpsItem was reused")
	}
	var dup *ssmtypes.OpsItemAlreadyExistsException
	if _, err := client.CreateOpsItem(testContext(t), in); !errors.As(err, &dup) || aws.ToString(dup.OpsItemId) != second {
		t.Fatalf("create after reopen: %v, want OpsItemAlreadyExistsException for %s", err, second)
	}
	items := o.Items()
	if len(items) != 2 || items[0].Duplicates != 3 || items[1].Duplicates != 1 {
		t.Fatalf("items %+v", items)
	}
}

func describeOpsItemsAll(t *testing.T, client *ssm.Client, in *ssm.DescribeOpsItemsInput) ([]string, []int) {
	t.Helper()
	var ids []string
	var sizes []int
	p := ssm.NewDescribeOpsItemsPaginator(client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page.OpsItemSummaries))
		for _, s := range page.OpsItemSummaries {
			ids = append(ids, aws.ToString(s.OpsItemId))
		}
	}
	return ids, sizes
}

func opsFilter(key ssmtypes.OpsItemFilterKey, op ssmtypes.OpsItemFilterOperator, values ...string) ssmtypes.OpsItemFilter {
	return ssmtypes.OpsItemFilter{Key: key, Operator: op, Values: values}
}

func TestOpsItemsDescribeFilters(t *testing.T) {
	_, client := newTestOpsItems(t)
	mk := func(instance, title, source string) string {
		d := dedupData("imdsv1:"+instance, instanceARN(instance))
		d["instance-id"] = ssmtypes.OpsItemDataValue{Type: ssmtypes.OpsItemDataTypeSearchableString, Value: aws.String(instance)}
		d["hidden"] = ssmtypes.OpsItemDataValue{Type: ssmtypes.OpsItemDataTypeString, Value: aws.String("secret-" + instance)}
		in := createInput(title, d)
		in.Source = aws.String(source)
		in.Severity = aws.String("3")
		return mustCreate(t, client, in)
	}
	a := mk("i-aaa", "IMDSv1 in use on i-aaa", "imdsguard")
	b := mk("i-bbb", "IMDSv1 in use on i-bbb", "imdsguard")
	c := mk("i-ccc", "Something else", "other-tool")
	setStatus(t, client, b, ssmtypes.OpsItemStatusResolved)

	const eq, contains = ssmtypes.OpsItemFilterOperatorEqual, ssmtypes.OpsItemFilterOperatorContains
	tests := []struct {
		name    string
		filters []ssmtypes.OpsItemFilter
		want    []string // newest first
	}{
		{"no filter", nil, []string{c, b, a}},
		{"OperationalDataValue bare value", []ssmtypes.OpsItemFilter{opsFilter("OperationalDataValue", eq, "i-bbb")}, []string{b}},
		{"OperationalDataValue key/value JSON", []ssmtypes.OpsItemFilter{opsFilter("OperationalDataValue", eq, `{"key":"instance-id","value":"i-aaa"}`)}, []string{a}},
		{"OperationalDataValue Contains", []ssmtypes.OpsItemFilter{opsFilter("OperationalDataValue", contains, "i-ccc")}, []string{c}},
		{"OperationalDataValue of a String entry is not searchable", []ssmtypes.OpsItemFilter{opsFilter("OperationalDataValue", eq, "secret-i-aaa")}, nil},
		{"OperationalData key/value JSON", []ssmtypes.OpsItemFilter{opsFilter("OperationalData", eq, `{"key":"/aws/dedup","value":"{\"dedupString\":\"imdsv1:i-ccc\"}"}`)}, []string{c}},
		{"OperationalDataKey", []ssmtypes.OpsItemFilter{opsFilter("OperationalDataKey", eq, "instance-id")}, []string{c, b, a}},
		{"Status Equal, values are ORed", []ssmtypes.OpsItemFilter{opsFilter("Status", eq, "Open", "InProgress")}, []string{c, a}},
		{"Status Resolved", []ssmtypes.OpsItemFilter{opsFilter("Status", eq, "Resolved")}, []string{b}},
		{"filters are ANDed", []ssmtypes.OpsItemFilter{opsFilter("Source", eq, "imdsguard"), opsFilter("Status", eq, "Open")}, []string{a}},
		{"Title Contains", []ssmtypes.OpsItemFilter{opsFilter("Title", contains, "IMDSv1")}, []string{b, a}},
		{"Title Equal", []ssmtypes.OpsItemFilter{opsFilter("Title", eq, "Something else")}, []string{c}},
		{"Source Contains", []ssmtypes.OpsItemFilter{opsFilter("Source", contains, "other")}, []string{c}},
		{"OpsItemId", []ssmtypes.OpsItemFilter{opsFilter("OpsItemId", eq, a)}, []string{a}},
		{"Severity", []ssmtypes.OpsItemFilter{opsFilter("Severity", eq, "3")}, []string{c, b, a}},
		{"ResourceId Contains", []ssmtypes.OpsItemFilter{opsFilter("ResourceId", contains, "instance/i-bbb")}, []string{b}},
		{"CreatedTime GreaterThan", []ssmtypes.OpsItemFilter{opsFilter("CreatedTime", ssmtypes.OpsItemFilterOperatorGreaterThan, "2000-01-01T00:00:00Z")}, []string{c, b, a}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := describeOpsItemsAll(t, client, &ssm.DescribeOpsItemsInput{OpsItemFilters: tc.filters})
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}

	// Summaries carry only the searchable operational data.
	out, err := client.DescribeOpsItems(testContext(t), &ssm.DescribeOpsItemsInput{OpsItemFilters: []ssmtypes.OpsItemFilter{opsFilter("OpsItemId", eq, a)}})
	if err != nil {
		t.Fatal(err)
	}
	s := out.OpsItemSummaries[0]
	if _, ok := s.OperationalData["hidden"]; ok || aws.ToString(s.OperationalData["instance-id"].Value) != "i-aaa" {
		t.Errorf("summary OperationalData %v", s.OperationalData)
	}
	if s.Status != ssmtypes.OpsItemStatusOpen || aws.ToString(s.Title) != "IMDSv1 in use on i-aaa" || aws.ToString(s.Source) != "imdsguard" || s.CreatedTime == nil {
		t.Errorf("summary %+v", s)
	}
}

func TestOpsItemsDescribePaging(t *testing.T) {
	_, client := newTestOpsItems(t)
	var want []string
	for i := range 7 {
		want = append([]string{mustCreate(t, client, createInput(fmt.Sprintf("item %d", i), nil))}, want...)
	}
	got, sizes := describeOpsItemsAll(t, client, &ssm.DescribeOpsItemsInput{MaxResults: aws.Int32(3)})
	if !slices.Equal(got, want) || !slices.Equal(sizes, []int{3, 3, 1}) {
		t.Fatalf("ids %v sizes %v, want %v in pages of 3,3,1", got, sizes, want)
	}

	// A token is bound to its filters, and paging survives OpsItems created meanwhile.
	first, err := client.DescribeOpsItems(testContext(t), &ssm.DescribeOpsItemsInput{MaxResults: aws.Int32(3)})
	if err != nil || first.NextToken == nil {
		t.Fatalf("first page: %v", err)
	}
	_, err = client.DescribeOpsItems(testContext(t), &ssm.DescribeOpsItemsInput{NextToken: first.NextToken,
		OpsItemFilters: []ssmtypes.OpsItemFilter{opsFilter("Status", ssmtypes.OpsItemFilterOperatorEqual, "Open")}})
	var bad *ssmtypes.InvalidNextToken
	if !errors.As(err, &bad) {
		t.Fatalf("token replayed with other filters: %v, want InvalidNextToken", err)
	}
	mustCreate(t, client, createInput("newer", nil))
	rest, err := client.DescribeOpsItems(testContext(t), &ssm.DescribeOpsItemsInput{MaxResults: aws.Int32(50), NextToken: first.NextToken})
	if err != nil {
		t.Fatal(err)
	}
	if len(rest.OpsItemSummaries) != 4 || aws.ToString(rest.OpsItemSummaries[0].OpsItemId) != want[3] {
		t.Fatalf("second page after an insert: %d summaries", len(rest.OpsItemSummaries))
	}
}

func TestOpsItemsErrors(t *testing.T) {
	_, client := newTestOpsItems(t)
	open := mustCreate(t, client, createInput("open", dedupData("d-1", "")))
	ctx := testContext(t)
	long := func(n int) *string { return aws.String(strings.Repeat("x", n)) }
	withCreate := func(mod func(*ssm.CreateOpsItemInput)) func() error {
		return func() error {
			in := createInput("title", nil)
			mod(in)
			_, err := client.CreateOpsItem(ctx, in)
			return err
		}
	}
	tests := []struct {
		name     string
		call     func() error
		wantCode string // "" = succeeds
		typed    any    // pointer to the typed error the SDK must return, when modelled
		wantMsg  string // substring of the message
	}{
		{"title of 1024 characters", withCreate(func(in *ssm.CreateOpsItemInput) { in.Title = long(1024) }), "", nil, ""},
		{"title of 1025 characters", withCreate(func(in *ssm.CreateOpsItemInput) { in.Title = long(1025) }), "ValidationException", nil,
			"at 'title' failed to satisfy constraint: Member must have length less than or equal to 1024"},
		{"blank title", withCreate(func(in *ssm.CreateOpsItemInput) { in.Title = aws.String("   ") }), "ValidationException", nil, "'title'"},
		{"description of 2048 characters", withCreate(func(in *ssm.CreateOpsItemInput) { in.Description = long(2048) }), "", nil, ""},
		{"description of 2049 characters", withCreate(func(in *ssm.CreateOpsItemInput) { in.Description = long(2049) }), "ValidationException", nil,
			"Member must have length less than or equal to 2048"},
		{"two violations", withCreate(func(in *ssm.CreateOpsItemInput) { in.Title, in.Description = long(1025), long(2049) }), "ValidationException", nil,
			"2 validation errors detected"},
		{"severity 5", withCreate(func(in *ssm.CreateOpsItemInput) { in.Severity = aws.String("5") }), "ValidationException", nil, "'severity'"},
		{"severity High", withCreate(func(in *ssm.CreateOpsItemInput) { in.Severity = aws.String("High") }), "ValidationException", nil, "'severity'"},
		{"priority 6", withCreate(func(in *ssm.CreateOpsItemInput) { in.Priority = aws.Int32(6) }), "ValidationException", nil, "'priority'"},
		{"category of 65 characters", withCreate(func(in *ssm.CreateOpsItemInput) { in.Category = long(65) }), "ValidationException", nil, "'category'"},
		{"operational data Type not in the enum", withCreate(func(in *ssm.CreateOpsItemInput) {
			in.OperationalData = map[string]ssmtypes.OpsItemDataValue{"k": {Value: aws.String("v"), Type: "Number"}}
		}), "ValidationException", nil, "enum value set"},
		{"source containing aws", withCreate(func(in *ssm.CreateOpsItemInput) { in.Source = aws.String("my-AWS-tool") }),
			"OpsItemInvalidParameterException", new(*ssmtypes.OpsItemInvalidParameterException), "source"},
		{"reserved operational data key", withCreate(func(in *ssm.CreateOpsItemInput) {
			in.OperationalData = map[string]ssmtypes.OpsItemDataValue{"aws:instance": {Value: aws.String("i-1")}}
		}), "OpsItemInvalidParameterException", new(*ssmtypes.OpsItemInvalidParameterException), "aws:instance"},
		{"dedup value that is not dedupString JSON", withCreate(func(in *ssm.CreateOpsItemInput) {
			in.OperationalData = map[string]ssmtypes.OpsItemDataValue{"/aws/dedup": {Value: aws.String("i-1")}}
		}), "OpsItemInvalidParameterException", new(*ssmtypes.OpsItemInvalidParameterException), "dedupString"},
		{"resources that are not a list of arns", withCreate(func(in *ssm.CreateOpsItemInput) {
			in.OperationalData = map[string]ssmtypes.OpsItemDataValue{"/aws/resources": {Value: aws.String(`{"arn":"x"}`)}}
		}), "OpsItemInvalidParameterException", new(*ssmtypes.OpsItemInvalidParameterException), "/aws/resources"},
		{"get unknown id", func() error {
			_, err := client.GetOpsItem(ctx, &ssm.GetOpsItemInput{OpsItemId: aws.String("oi-0123456789ab")})
			return err
		}, "OpsItemNotFoundException", new(*ssmtypes.OpsItemNotFoundException), "oi-0123456789ab"},
		{"get malformed id", func() error {
			_, err := client.GetOpsItem(ctx, &ssm.GetOpsItemInput{OpsItemId: aws.String("OI-XYZ")})
			return err
		}, "ValidationException", nil, "'opsItemId'"},
		{"update unknown id", func() error {
			_, err := client.UpdateOpsItem(ctx, &ssm.UpdateOpsItemInput{OpsItemId: aws.String("oi-0123456789ab"), Status: ssmtypes.OpsItemStatusResolved})
			return err
		}, "OpsItemNotFoundException", new(*ssmtypes.OpsItemNotFoundException), ""},
		{"update to a change-request status", func() error {
			_, err := client.UpdateOpsItem(ctx, &ssm.UpdateOpsItemInput{OpsItemId: aws.String(open), Status: ssmtypes.OpsItemStatusApproved})
			return err
		}, "OpsItemInvalidParameterException", new(*ssmtypes.OpsItemInvalidParameterException), "Status"},
		{"update to a status outside the enum", func() error {
			_, err := client.UpdateOpsItem(ctx, &ssm.UpdateOpsItemInput{OpsItemId: aws.String(open), Status: "Closing"})
			return err
		}, "ValidationException", nil, "'status'"},
		{"change the dedup string", func() error {
			_, err := client.UpdateOpsItem(ctx, &ssm.UpdateOpsItemInput{OpsItemId: aws.String(open), OperationalData: dedupData("d-2", "")})
			return err
		}, "OpsItemInvalidParameterException", new(*ssmtypes.OpsItemInvalidParameterException), "deduplication"},
		{"describe MaxResults 51", func() error {
			_, err := client.DescribeOpsItems(ctx, &ssm.DescribeOpsItemsInput{MaxResults: aws.Int32(51)})
			return err
		}, "ValidationException", nil, "'maxResults'"},
		{"describe Status Contains", func() error {
			_, err := client.DescribeOpsItems(ctx, &ssm.DescribeOpsItemsInput{OpsItemFilters: []ssmtypes.OpsItemFilter{opsFilter("Status", "Contains", "Open")}})
			return err
		}, "ValidationException", nil, "Contains"},
		{"describe OperationalData without key/value JSON", func() error {
			_, err := client.DescribeOpsItems(ctx, &ssm.DescribeOpsItemsInput{OpsItemFilters: []ssmtypes.OpsItemFilter{opsFilter("OperationalData", "Equal", "i-1")}})
			return err
		}, "ValidationException", nil, `{"key":"key_name","value":"a_value"}`},
		{"describe Title Equal over 100 characters", func() error {
			_, err := client.DescribeOpsItems(ctx, &ssm.DescribeOpsItemsInput{OpsItemFilters: []ssmtypes.OpsItemFilter{opsFilter("Title", "Equal", strings.Repeat("t", 101))}})
			return err
		}, "ValidationException", nil, "length limit"},
		{"describe a filter the stand-in lacks", func() error {
			_, err := client.DescribeOpsItems(ctx, &ssm.DescribeOpsItemsInput{OpsItemFilters: []ssmtypes.OpsItemFilter{opsFilter("AutomationId", "Equal", "x")}})
			return err
		}, "NotImplemented", nil, "AutomationId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.wantCode {
				t.Fatalf("error %v, want %s", err, tc.wantCode)
			}
			if tc.typed != nil && !errors.As(err, tc.typed) {
				t.Fatalf("error %T does not unwrap to %T", errors.Unwrap(err), tc.typed)
			}
			if !strings.Contains(apiErr.ErrorMessage(), tc.wantMsg) {
				t.Fatalf("message %q does not mention %q", apiErr.ErrorMessage(), tc.wantMsg)
			}
		})
	}
}

func TestOpsItemsFaults(t *testing.T) {
	tests := []struct {
		name         string
		inject       func(*OpsItems)
		wantCode     string // "" = the call succeeds
		wantStatus   int
		wantCreates  int
		typedDenied  bool
		wantItemsLen int
	}{
		{
			name:        "throttled twice, the SDK retries through",
			inject:      func(o *OpsItems) { o.FailNext(2, OpsItemsThrottling) },
			wantCreates: 3, wantItemsLen: 1,
		},
		{
			name:     "internal errors beyond the retry budget",
			inject:   func(o *OpsItems) { o.FailNext(5, OpsItemsInternalError) },
			wantCode: "InternalServerError", wantStatus: 500, wantCreates: 3,
		},
		{
			name: "access denied on CreateOpsItem only, not retried",
			inject: func(o *OpsItems) {
				o.SetFault(func(target string, body map[string]any) *APIError {
					if target != "AmazonSSM.CreateOpsItem" || body["Title"] != "IMDSv1 on i-1" {
						return nil
					}
					e := OpsItemsAccessDenied
					return &e
				})
			},
			wantCode: "OpsItemAccessDeniedException", wantStatus: 400, wantCreates: 1, typedDenied: true,
		},
		{
			name: "fault function that serves everything",
			inject: func(o *OpsItems) {
				o.SetFault(func(string, map[string]any) *APIError { return nil })
			},
			wantCreates: 1, wantItemsLen: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, client := newTestOpsItems(t)
			tc.inject(o)
			_, err := client.CreateOpsItem(testContext(t), createInput("IMDSv1 on i-1", dedupData("d", "")))
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
			} else {
				var apiErr smithy.APIError
				if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.wantCode {
					t.Fatalf("error %v, want %s", err, tc.wantCode)
				}
				assertHTTPStatus(t, err, tc.wantStatus)
				var denied *ssmtypes.OpsItemAccessDeniedException
				if tc.typedDenied && !errors.As(err, &denied) {
					t.Fatalf("error %T, want *types.OpsItemAccessDeniedException", errors.Unwrap(err))
				}
			}
			if got := o.Requests("CreateOpsItem"); got != tc.wantCreates {
				t.Errorf("Requests(CreateOpsItem) = %d, want %d", got, tc.wantCreates)
			}
			if got := len(o.Items()); got != tc.wantItemsLen {
				t.Errorf("%d items, want %d", got, tc.wantItemsLen)
			}
			// Other operations are untouched by an operation-specific fault.
			if _, err := client.DescribeOpsItems(testContext(t), &ssm.DescribeOpsItemsInput{}); err != nil && tc.wantCode != "InternalServerError" {
				t.Errorf("DescribeOpsItems: %v", err)
			}
		})
	}
}

func TestOpsItemsRequestsAndReset(t *testing.T) {
	o, client := newTestOpsItems(t)
	id := mustCreate(t, client, createInput("a", nil))
	for range 2 {
		if _, err := client.GetOpsItem(testContext(t), &ssm.GetOpsItemInput{OpsItemId: aws.String(id)}); err != nil {
			t.Fatal(err)
		}
	}
	if o.Requests("CreateOpsItem") != 1 || o.Requests("AmazonSSM.GetOpsItem") != 2 || o.Requests("") != 3 {
		t.Fatalf("Requests: create %d get %d all %d", o.Requests("CreateOpsItem"), o.Requests("GetOpsItem"), o.Requests(""))
	}
	o.FailNext(1, OpsItemsThrottling)
	o.Reset()
	if o.Requests("") != 0 || len(o.Items()) != 0 {
		t.Fatal("Reset kept state")
	}
	if _, err := client.GetOpsItem(testContext(t), &ssm.GetOpsItemInput{OpsItemId: aws.String(id)}); !errors.As(err, new(*ssmtypes.OpsItemNotFoundException)) {
		t.Fatalf("after Reset: %v, want OpsItemNotFoundException", err)
	}
	if o.Requests("GetOpsItem") != 1 {
		t.Fatal("Reset kept the FailNext queue (the SDK retried)")
	}
}

// The stand-in insists on the JSON 1.1 wire format and a signature, like the service.
func TestOpsItemsProtocolChecks(t *testing.T) {
	o, client := newTestOpsItems(t)
	const sig = "AWS4-HMAC-SHA256 Credential=testing/20260301/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=00"
	tests := []struct {
		name, target, ct, auth string
		wantStatus             int
		wantType               string
	}{
		{"well-formed", "AmazonSSM.DescribeOpsItems", amzJSON11, sig, 200, ""},
		{"JSON 1.0 content type", "AmazonSSM.DescribeOpsItems", "application/x-amz-json-1.0", sig, 400, "SerializationException"},
		{"operation the stand-in lacks", "AmazonSSM.GetParameter", amzJSON11, sig, 400, "UnknownOperationException"},
		{"other service's target", "CloudTrail_20131101.LookupEvents", amzJSON11, sig, 400, "UnknownOperationException"},
		{"unsigned", "AmazonSSM.DescribeOpsItems", amzJSON11, "", 403, "MissingAuthenticationTokenException"},
		{"signed for another service", "AmazonSSM.DescribeOpsItems", amzJSON11, strings.Replace(sig, "/ssm/", "/ec2/", 1), 403, "InvalidSignatureException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, o.URL+"/", strings.NewReader(`{}`))
			req.Header.Set("X-Amz-Target", tc.target)
			req.Header.Set("Content-Type", tc.ct)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("X-Amzn-ErrorType") != tc.wantType {
				t.Fatalf("status %d type %q body %v, want %d %q", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body, tc.wantStatus, tc.wantType)
			}
			if tc.wantType != "" && (body["__type"] != tc.wantType || body["message"] == "") {
				t.Fatalf("body %v, want __type %s and a message", body, tc.wantType)
			}
		})
	}
	// The real client's call to an operation the stand-in lacks fails clearly too.
	_, err := client.GetParameter(testContext(t), &ssm.GetParameterInput{Name: aws.String("x")})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "UnknownOperationException" {
		t.Fatalf("GetParameter: %v", err)
	}
}

// Concurrent creates of one dedup key yield exactly one OpsItem (run with -race).
func TestOpsItemsConcurrentDedup(t *testing.T) {
	o, client := newTestOpsItems(t)
	var wg sync.WaitGroup
	ids := make(chan string, 16)
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			out, err := client.CreateOpsItem(testContext(t), createInput("race", dedupData("same", instanceARN("i-1"))))
			var dup *ssmtypes.OpsItemAlreadyExistsException
			switch {
			case err == nil:
				ids <- aws.ToString(out.OpsItemId)
			case errors.As(err, &dup):
				ids <- aws.ToString(dup.OpsItemId)
			default:
				errs <- err
			}
		})
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 || len(o.Items()) != 1 || o.Items()[0].Duplicates != 15 {
		t.Fatalf("ids %v, items %d", seen, len(o.Items()))
	}
}
