package trailquery_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/athena"
	athenatypes "github.com/aws/aws-sdk-go-v2/service/athena/types"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/trailquery"
)

var trailTable = trailquery.Table{Database: "trail", Table: "cloudtrail_org", WorkGroup: "primary"}

func TestTrailQuerySQL(t *testing.T) {
	end := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	w := trailquery.Window{Accounts: []string{"111111111111", "222222222222"}, Regions: []string{"us-east-1"}, Start: end.Add(-14 * 24 * time.Hour), End: end}
	sql, err := trailquery.SQL(trailTable, w)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`FROM "trail"."cloudtrail_org"`, "account IN ('111111111111', '222222222222')", "region IN ('us-east-1')",
		`"timestamp" BETWEEN '2026/11/17' AND '2026/12/01'`, "eventtime >= '2026-11-17T10:00:00Z'", "GROUPING SETS", "grouping(instance_id"} {
		if !strings.Contains(sql, want) {
			t.Errorf("the query lacks %q:\n%s", want, sql)
		}
	}
	bad := []struct {
		name  string
		table trailquery.Table
		w     trailquery.Window
		want  string
	}{
		{"quote in the table", trailquery.Table{Database: "trail", Table: `x" --`, WorkGroup: "primary"}, w, "not a Glue table name"},
		{"upper-case database", trailquery.Table{Database: "Trail", Table: "t", WorkGroup: "primary"}, w, "not a Glue database name"},
		{"no work group", trailquery.Table{Database: "trail", Table: "t"}, w, "work group"},
		{"account injection", trailTable, trailquery.Window{Accounts: []string{"1' OR '1'='1"}, Regions: w.Regions, Start: w.Start, End: w.End}, "not a 12-digit"},
		{"region injection", trailTable, trailquery.Window{Accounts: w.Accounts, Regions: []string{"us-east-1')--"}, Start: w.Start, End: w.End}, "not a region"},
		{"no window", trailTable, trailquery.Window{Accounts: w.Accounts, Regions: w.Regions, Start: end, End: end}, "needs accounts, regions and a window"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := trailquery.SQL(tc.table, tc.w); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// fakeAthena answers GetQueryExecution with states in turn (the last one repeated) and
// GetQueryResults with pages in turn.
type fakeAthena struct {
	// query and workGroup are what GetQueryExecution says was run; empty means the trail's
	// query over trailWindow in the trail's work group.
	query, workGroup string
	states           []athenatypes.QueryExecutionState
	reason           string
	pages            []*athena.GetQueryResultsOutput
	pageErr          error
	execCalls        int
	pageCalls        int
}

func (f *fakeAthena) StartQueryExecution(context.Context, *athena.StartQueryExecutionInput, ...func(*athena.Options)) (*athena.StartQueryExecutionOutput, error) {
	return &athena.StartQueryExecutionOutput{QueryExecutionId: aws.String("q")}, nil
}

func (f *fakeAthena) GetQueryExecution(context.Context, *athena.GetQueryExecutionInput, ...func(*athena.Options)) (*athena.GetQueryExecutionOutput, error) {
	state := f.states[min(f.execCalls, len(f.states)-1)]
	f.execCalls++
	query, workGroup := f.query, f.workGroup
	if query == "" {
		query, _ = trailquery.SQL(trailTable, trailWindow)
	}
	if workGroup == "" {
		workGroup = trailTable.WorkGroup
	}
	return &athena.GetQueryExecutionOutput{QueryExecution: &athenatypes.QueryExecution{Query: aws.String(query), WorkGroup: aws.String(workGroup),
		Status: &athenatypes.QueryExecutionStatus{State: state, StateChangeReason: aws.String(f.reason)}}}, nil
}

func (f *fakeAthena) GetQueryResults(context.Context, *athena.GetQueryResultsInput, ...func(*athena.Options)) (*athena.GetQueryResultsOutput, error) {
	if f.pageErr != nil {
		return nil, f.pageErr
	}
	if f.pageCalls >= len(f.pages) {
		return nil, errors.New("no such page")
	}
	p := f.pages[f.pageCalls]
	f.pageCalls++
	return p, nil
}

func row(values ...string) athenatypes.Row {
	var r athenatypes.Row
	for _, v := range values {
		r.Data = append(r.Data, athenatypes.Datum{VarCharValue: aws.String(v)})
	}
	return r
}

var header = row("account_id", "region", "instance_id", "delivery", "event_name", "user_agent", "source_ip", "deliveries", "last_event", "coverage")

func page(next string, rows ...athenatypes.Row) *athena.GetQueryResultsOutput {
	out := &athena.GetQueryResultsOutput{ResultSet: &athenatypes.ResultSet{Rows: rows}}
	if next != "" {
		out.NextToken = aws.String(next)
	}
	return out
}

const trailInstanceID = "i-0123456789abcdef0"

var trailEnd = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// trailWindow is what the sweep's query covered.
var trailWindow = trailquery.Window{Accounts: []string{"111111111111", "222222222222"}, Regions: []string{"us-east-1"},
	Start: trailEnd.Add(-14 * 24 * time.Hour), End: trailEnd}

func TestTrailResults(t *testing.T) {
	end := trailEnd
	window := trailquery.Window{Start: trailWindow.Start, End: trailWindow.End}
	otherSQL, _ := trailquery.SQL(trailTable, trailquery.Window{Accounts: []string{"222222222222"}, Regions: []string{"us-east-1"}, Start: window.Start, End: window.End})
	coverage := row("111111111111", "us-east-1", "", "", "", "", "", "900", "2026-12-01T09:00:00Z", "31")
	v1 := row("111111111111", "us-east-1", trailInstanceID, "1.0", "GetObject", "aws-cli/1.0", "10.0.0.9", "2", "2026-11-30T09:00:00Z", "0")
	v2 := row("111111111111", "us-east-1", trailInstanceID, "2.0", "", "", "", "40", "2026-12-01T09:00:00Z", "0")
	other := row("222222222222", "us-east-1", trailInstanceID, "1.0", "x", "y", "z", "9", "2026-12-01T09:00:00Z", "0")
	inst := policy.Instance{InstanceID: trailInstanceID, Addresses: []string{"10.0.0.5"}}
	ok := []athenatypes.QueryExecutionState{athenatypes.QueryExecutionStateQueued, athenatypes.QueryExecutionStateRunning, athenatypes.QueryExecutionStateSucceeded}
	tests := []struct {
		name        string
		api         *fakeAthena
		lookback    time.Duration
		wantV1      int
		wantV2      int
		wantErr     string
		wantTimeOut bool
	}{
		{name: "two pages, other accounts skipped", api: &fakeAthena{states: ok, pages: []*athena.GetQueryResultsOutput{
			page("p2", header, coverage, other), page("", v1, v2)}}, wantV1: 2, wantV2: 40},
		{name: "covered, no deliveries", api: &fakeAthena{states: ok, pages: []*athena.GetQueryResultsOutput{page("", header, coverage)}}},
		{name: "account-region not covered", api: &fakeAthena{states: ok, pages: []*athena.GetQueryResultsOutput{page("", header, v2)}},
			wantErr: "holds no event of 111111111111/us-east-1"},
		{name: "query failed", api: &fakeAthena{states: []athenatypes.QueryExecutionState{athenatypes.QueryExecutionStateFailed}, reason: "HIVE_BAD_DATA"},
			wantErr: "FAILED: HIVE_BAD_DATA"},
		{name: "still running at the deadline", api: &fakeAthena{states: []athenatypes.QueryExecutionState{athenatypes.QueryExecutionStateRunning}},
			wantErr: "still RUNNING", wantTimeOut: true},
		{name: "wrong header", api: &fakeAthena{states: ok, pages: []*athena.GetQueryResultsOutput{page("", row("a", "b"), coverage)}},
			wantErr: "does not name the query's columns"},
		{name: "empty 200", api: &fakeAthena{states: ok, pages: []*athena.GetQueryResultsOutput{{}}}, wantErr: "no ResultSet.Rows"},
		{name: "short row", api: &fakeAthena{states: ok, pages: []*athena.GetQueryResultsOutput{page("", header, row("111111111111", "us-east-1"))}},
			wantErr: "a row of 2 values"},
		{name: "unknown delivery", api: &fakeAthena{states: ok, pages: []*athena.GetQueryResultsOutput{
			page("", header, coverage, row("111111111111", "us-east-1", trailInstanceID, "3.0", "", "", "", "1", "2026-12-01T09:00:00Z", "0"))}},
			wantErr: `unknown ec2RoleDelivery "3.0"`},
		{name: "repeated page token", api: &fakeAthena{states: ok, pages: []*athena.GetQueryResultsOutput{page("p", header, coverage), page("p", v1)}},
			wantErr: "athena:GetQueryResults"},
		{name: "page error", api: &fakeAthena{states: ok, pageErr: errors.New("ThrottlingException")}, wantErr: "ThrottlingException"},
		{name: "window shorter than the lookback", api: &fakeAthena{states: ok}, lookback: 30 * 24 * time.Hour, wantErr: "less than the lookback"},
		// Rows of another query must not stand for the trail's.
		{name: "another work group", api: &fakeAthena{states: ok, workGroup: "adhoc"}, wantErr: `work group "adhoc"`},
		{name: "another query", api: &fakeAthena{states: ok, query: "SELECT '111111111111' AS account_id, 'us-east-1' AS region"},
			wantErr: "not the organization trail's query"},
		{name: "the query with a line added", api: &fakeAthena{states: ok, query: strings.Replace(mustSQL(t), "GROUP BY", "UNION ALL SELECT 1 GROUP BY", 1)},
			wantErr: "not the organization trail's query"},
		{name: "the query of other accounts", api: &fakeAthena{states: ok, query: otherSQL}, wantErr: "does not cover 111111111111/us-east-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			r := &trailquery.Results{API: tc.api, Table: trailTable, QueryID: "q", Account: "111111111111", Region: "us-east-1", Window: window, Poll: 10 * time.Millisecond}
			lookback := tc.lookback
			if lookback == 0 {
				lookback = 14 * 24 * time.Hour
			}
			got, err := r.Deliveries(ctx, inst, lookback, end)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || got != nil {
					t.Fatalf("usage %+v, err %v; want an error containing %q", got, err, tc.wantErr)
				}
				if errors.Is(err, evidence.ErrOutOfTime) != tc.wantTimeOut {
					t.Errorf("out of time %v, want %v: %v", errors.Is(err, evidence.ErrOutOfTime), tc.wantTimeOut, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.V1Deliveries != tc.wantV1 || got.V2Deliveries != tc.wantV2 {
				t.Errorf("deliveries v1 %d v2 %d, want %d and %d", got.V1Deliveries, got.V2Deliveries, tc.wantV1, tc.wantV2)
			}
			if tc.wantV1 > 0 && (len(got.ForeignSourceIPs) != 1 || got.UserAgents[0] != "aws-cli/1.0" || got.LastV1Delivery == nil) {
				t.Errorf("usage %+v: want the IMDSv1 user agent, its foreign address and its time", got)
			}
			// Read once: a second instance makes no call.
			calls := tc.api.pageCalls
			if _, err := r.Deliveries(ctx, policy.Instance{InstanceID: "i-0fedcba9876543210"}, lookback, end); err != nil || tc.api.pageCalls != calls {
				t.Errorf("a second instance read the results again (%d calls, then %d; %v)", calls, tc.api.pageCalls, err)
			}
		})
	}
}

func mustSQL(t *testing.T) string {
	t.Helper()
	sql, err := trailquery.SQL(trailTable, trailWindow)
	if err != nil {
		t.Fatal(err)
	}
	return sql
}
