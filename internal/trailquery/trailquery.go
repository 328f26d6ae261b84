// Package trailquery is organization-scale CloudTrail evidence (DESIGN.md section 11):
// with the organization trail's Athena table, one query per sweep counts every
// instance's credential deliveries in the lookback, by how they were delivered, with the
// event names, user agents and source addresses of the IMDSv1 ones; LookupEvents is then
// not used. A failed query, or one whose results are not whole, fails the CloudTrail
// evidence of every instance that needs it: they defer as cloudtrail-unavailable.
//
// Only detect links it (and so the Athena SDK package, whose initialisation every
// binary that linked it would pay at its cold start).
package trailquery

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/athena"
	athenatypes "github.com/aws/aws-sdk-go-v2/service/athena/types"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// API is the part of the Athena client the trail query uses.
type API interface {
	StartQueryExecution(ctx context.Context, in *athena.StartQueryExecutionInput, optFns ...func(*athena.Options)) (*athena.StartQueryExecutionOutput, error)
	GetQueryExecution(ctx context.Context, in *athena.GetQueryExecutionInput, optFns ...func(*athena.Options)) (*athena.GetQueryExecutionOutput, error)
	GetQueryResults(ctx context.Context, in *athena.GetQueryResultsInput, optFns ...func(*athena.Options)) (*athena.GetQueryResultsOutput, error)
}

// Table is the organization trail's table in the Glue Data Catalog, partitioned
// by account, region and timestamp (yyyy/MM/dd), as template.yaml makes it, and where
// Athena runs the query.
type Table struct {
	Database, Table string
	// WorkGroup runs the query; OutputLocation (s3://...) is where its results go,
	// empty for the work group's own.
	WorkGroup, OutputLocation string
}

var glueName = regexp.MustCompile(`^[a-z0-9_]{1,255}$`)

// Validate checks the names, which go into the query as they are.
func (t Table) Validate() error {
	switch {
	case !glueName.MatchString(t.Database):
		return fmt.Errorf("trail database %q is not a Glue database name (lower-case letters, digits and _)", t.Database)
	case !glueName.MatchString(t.Table):
		return fmt.Errorf("trail table %q is not a Glue table name (lower-case letters, digits and _)", t.Table)
	case t.WorkGroup == "" || len(t.WorkGroup) > 128 || strings.ContainsAny(t.WorkGroup, " \t\r\n'\""):
		return fmt.Errorf("the Athena work group %q is not a work group name", t.WorkGroup)
	case t.OutputLocation != "" && !strings.HasPrefix(t.OutputLocation, "s3://"):
		return fmt.Errorf("the Athena output location %q is not an s3:// URI", t.OutputLocation)
	}
	return nil
}

// Window is what one query covers: the accounts and regions, and the time.
type Window struct {
	Accounts, Regions []string
	Start, End        time.Time
}

// trailColumns are the query's columns, in order.
var trailColumns = []string{"account_id", "region", "instance_id", "delivery", "event_name", "user_agent", "source_ip", "deliveries", "last_event", "coverage"}

// SQL is the query over the window: one row per instance, delivery kind and
// (for IMDSv1) event name, user agent and source address, and one coverage row per
// account-region with the count of all its events, so that an account-region the
// trail does not cover is told from one without deliveries. It fails on a window whose
// accounts, regions or times would not be safe in it.
func SQL(t Table, w Window) (string, error) {
	if err := t.Validate(); err != nil {
		return "", err
	}
	if len(w.Accounts) == 0 || len(w.Regions) == 0 || !w.Start.Before(w.End) {
		return "", fmt.Errorf("the trail query needs accounts, regions and a window, got %d accounts, %d regions, %v to %v", len(w.Accounts), len(w.Regions), w.Start, w.End)
	}
	quoted := func(values []string, valid func(string) bool, what string) (string, error) {
		out := make([]string, len(values))
		for i, v := range values {
			if !valid(v) {
				return "", fmt.Errorf("the trail query: %q is not a %s", v, what)
			}
			out[i] = "'" + v + "'"
		}
		return strings.Join(out, ", "), nil
	}
	accounts, err := quoted(w.Accounts, policy.ValidAccountID, "12-digit account id")
	if err != nil {
		return "", err
	}
	regions, err := quoted(w.Regions, policy.ValidRegion, "region")
	if err != nil {
		return "", err
	}
	start, end := w.Start.UTC(), w.End.UTC()
	const v1 = "useridentity.sessioncontext.ec2roledelivery = '1.0'"
	return fmt.Sprintf(`SELECT recipientaccountid AS account_id, awsregion AS region, instance_id, delivery, event_name, user_agent, source_ip,
  count(*) AS deliveries, max(eventtime) AS last_event, grouping(instance_id, delivery, event_name, user_agent, source_ip) AS coverage
FROM (
  SELECT recipientaccountid, awsregion, eventtime,
    regexp_extract(useridentity.principalid, ':(i-[0-9a-f]{8,17})$', 1) AS instance_id,
    useridentity.sessioncontext.ec2roledelivery AS delivery,
    CASE WHEN %[5]s THEN eventname ELSE '' END AS event_name,
    CASE WHEN %[5]s THEN useragent ELSE '' END AS user_agent,
    CASE WHEN %[5]s THEN sourceipaddress ELSE '' END AS source_ip
  FROM "%[1]s"."%[2]s"
  WHERE account IN (%[3]s) AND region IN (%[4]s)
    AND "timestamp" BETWEEN '%[6]s' AND '%[7]s'
    AND eventtime >= '%[8]s' AND eventtime <= '%[9]s'
)
GROUP BY GROUPING SETS ((recipientaccountid, awsregion), (recipientaccountid, awsregion, instance_id, delivery, event_name, user_agent, source_ip))`,
		t.Database, t.Table, accounts, regions, v1,
		start.Format("2006/01/02"), end.Format("2006/01/02"), start.Format(time.RFC3339), end.Format(time.RFC3339)), nil
}

// Start starts the query over the window and returns its execution id. The
// sweep's id is its ClientRequestToken, so that a retried start does not run it twice.
func Start(ctx context.Context, api API, t Table, w Window, token string) (string, error) {
	sql, err := SQL(t, w)
	if err != nil {
		return "", err
	}
	in := &athena.StartQueryExecutionInput{
		QueryString:           aws.String(sql),
		WorkGroup:             aws.String(t.WorkGroup),
		QueryExecutionContext: &athenatypes.QueryExecutionContext{Database: aws.String(t.Database)},
	}
	if len(token) >= 32 {
		in.ClientRequestToken = aws.String(token)
	}
	if t.OutputLocation != "" {
		in.ResultConfiguration = &athenatypes.ResultConfiguration{OutputLocation: aws.String(t.OutputLocation)}
	}
	out, err := api.StartQueryExecution(ctx, in)
	if err != nil {
		return "", fmt.Errorf("starting the organization trail's query (athena:StartQueryExecution on %s.%s): %w", t.Database, t.Table, err)
	}
	if aws.ToString(out.QueryExecutionId) == "" {
		return "", &evidence.IncompleteReplyError{Operation: opStartQueryExecution, Problem: "no QueryExecutionId"}
	}
	return aws.ToString(out.QueryExecutionId), nil
}

const (
	opStartQueryExecution = "athena:StartQueryExecution"
	opGetQueryExecution   = "athena:GetQueryExecution"
	opGetQueryResults     = "athena:GetQueryResults"
)

// Results are one trail query's deliveries in one account-region, read once, on
// the first instance that needs them. It is safe for concurrent use (the guard's lookup
// workers share it).
type Results struct {
	API API
	// Table is the trail's table: the query must be exactly the one Start runs on it.
	Table   Table
	QueryID string
	// Account and Region are the account-region whose rows are kept; Window is what the
	// query covers, which must be the guard's lookback ending no earlier than the sweep.
	Account, Region string
	Window          Window
	// Poll is the longest wait between two looks at a running query; zero means 5s.
	Poll time.Duration

	mu     sync.Mutex
	loaded bool
	err    error
	rows   map[string][]evidence.Delivery // by instance id
}

// Deliveries is the instance's CloudTrail evidence from the query, as
// CredentialDeliveries reads it from LookupEvents.
func (r *Results) Deliveries(ctx context.Context, inst policy.Instance, lookback time.Duration, now time.Time) (*policy.CloudTrailUsage, error) {
	if got := r.Window.End.Sub(r.Window.Start); got < min(lookback, 90*24*time.Hour) {
		return nil, fmt.Errorf("the organization trail's query %s covers %v, less than the lookback of %v", r.QueryID, got, lookback)
	}
	if err := r.load(ctx); err != nil {
		return nil, fmt.Errorf("the organization trail's query %s for %s: %w", r.QueryID, inst.InstanceID, err)
	}
	usage, err := evidence.TallyDeliveries(inst.Addresses, r.rows[inst.InstanceID])
	if err != nil {
		return nil, fmt.Errorf("the organization trail's query %s: %s has %w", r.QueryID, inst.InstanceID, err)
	}
	return usage, nil
}

func (r *Results) load(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loaded {
		return r.err
	}
	rows, err := r.read(ctx)
	err = evidence.TimeUp(ctx, err)
	if errors.Is(err, evidence.ErrOutOfTime) {
		// Not cached: a continuation, with time of its own, reads the query again.
		return err
	}
	r.loaded, r.err, r.rows = true, err, rows
	return err
}

// read waits for the query to succeed and reads its rows of the account-region.
func (r *Results) read(ctx context.Context) (map[string][]evidence.Delivery, error) {
	if err := r.wait(ctx); err != nil {
		return nil, err
	}
	rows := map[string][]evidence.Delivery{}
	covered := false
	in := &athena.GetQueryResultsInput{QueryExecutionId: aws.String(r.QueryID), MaxResults: aws.Int32(1000)}
	chain := evidence.NewPageChain(opGetQueryResults)
	first := true
	for {
		page, err := r.API.GetQueryResults(ctx, in)
		if err == nil && (page == nil || page.ResultSet == nil || page.ResultSet.Rows == nil) {
			err = &evidence.IncompleteReplyError{Operation: opGetQueryResults, Problem: "no ResultSet.Rows"}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", opGetQueryResults, err)
		}
		body := page.ResultSet.Rows
		if first {
			// The first row of the first page names the columns.
			if len(body) == 0 || !slices.Equal(rowValues(body[0]), trailColumns) {
				return nil, &evidence.IncompleteReplyError{Operation: opGetQueryResults, Problem: "the first row does not name the query's columns"}
			}
			body, first = body[1:], false
		}
		for _, row := range body {
			values := rowValues(row)
			if len(values) != len(trailColumns) {
				return nil, &evidence.IncompleteReplyError{Operation: opGetQueryResults, Problem: fmt.Sprintf("a row of %d values, want %d", len(values), len(trailColumns))}
			}
			account, region, instance := values[0], values[1], values[2]
			if account != r.Account || region != r.Region {
				continue
			}
			if values[9] != "0" {
				covered = true // the account-region's coverage row
				continue
			}
			if instance == "" {
				continue // events not made with an instance role's credentials
			}
			n, err := strconv.Atoi(values[7])
			if err != nil || n < 1 || !policy.ValidInstanceID(instance) {
				return nil, fmt.Errorf("%s: a malformed row for %q: deliveries %q", opGetQueryResults, instance, values[7])
			}
			last, err := time.Parse(time.RFC3339, values[8])
			if err != nil {
				return nil, fmt.Errorf("%s: %s's last event %q is not a time: %w", opGetQueryResults, instance, values[8], err)
			}
			rows[instance] = append(rows[instance], evidence.Delivery{Kind: values[3], EventName: values[4], UserAgent: values[5], SourceIP: values[6], Count: n, Last: last})
		}
		next, err := chain.Next(page.NextToken)
		if err != nil {
			return nil, err
		}
		if next == nil {
			break
		}
		in.NextToken = next
	}
	if !covered {
		// No event at all of the account-region in the window: the trail does not cover
		// it (or not yet), which says nothing about its instances.
		return nil, fmt.Errorf("the organization trail holds no event of %s/%s from %s to %s", r.Account, r.Region,
			r.Window.Start.UTC().Format(time.RFC3339), r.Window.End.UTC().Format(time.RFC3339))
	}
	return rows, nil
}

// wait polls the query until it succeeds; a failed or cancelled query is an error, and
// so is one still running when ctx is done.
func (r *Results) wait(ctx context.Context) error {
	poll := r.Poll
	if poll <= 0 {
		poll = 5 * time.Second
	}
	delay := min(250*time.Millisecond, poll)
	for {
		out, err := r.API.GetQueryExecution(ctx, &athena.GetQueryExecutionInput{QueryExecutionId: aws.String(r.QueryID)})
		if err == nil && (out == nil || out.QueryExecution == nil || out.QueryExecution.Status == nil) {
			err = &evidence.IncompleteReplyError{Operation: opGetQueryExecution, Problem: "no QueryExecution.Status"}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", opGetQueryExecution, err)
		}
		if err := r.authentic(out.QueryExecution); err != nil {
			return err
		}
		status := out.QueryExecution.Status
		switch status.State {
		case athenatypes.QueryExecutionStateSucceeded:
			return nil
		case athenatypes.QueryExecutionStateFailed, athenatypes.QueryExecutionStateCancelled:
			return fmt.Errorf("the query %s: %s", status.State, aws.ToString(status.StateChangeReason))
		case athenatypes.QueryExecutionStateQueued, athenatypes.QueryExecutionStateRunning:
		default:
			return &evidence.IncompleteReplyError{Operation: opGetQueryExecution, Problem: fmt.Sprintf("unknown state %q", status.State)}
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%w: the query %s is still %s", evidence.ErrOutOfTime, r.QueryID, status.State)
		case <-timer.C:
		}
		delay = min(2*delay, poll)
	}
}

var (
	queriedAccounts = regexp.MustCompile(`WHERE account IN \(([^)]*)\) AND region IN \(([^)]*)\)`)
	quotedValue     = regexp.MustCompile(`'([^']*)'`)
)

// authentic checks that the query execution the unit names is the query Start runs on
// the table, over the unit's window, in the table's work group, and that it covers the
// unit's account-region: rows of any other query, which anyone allowed to run queries in
// the account could start, must not stand for the organization trail.
func (r *Results) authentic(q *athenatypes.QueryExecution) error {
	if got := aws.ToString(q.WorkGroup); got != r.Table.WorkGroup {
		return fmt.Errorf("the query %s ran in work group %q, not the trail's %q", r.QueryID, got, r.Table.WorkGroup)
	}
	text := aws.ToString(q.Query)
	m := queriedAccounts.FindStringSubmatch(text)
	if m == nil {
		return fmt.Errorf("the query %s is not the organization trail's query", r.QueryID)
	}
	values := func(list string) []string {
		var out []string
		for _, v := range quotedValue.FindAllStringSubmatch(list, -1) {
			out = append(out, v[1])
		}
		return out
	}
	accounts, regions := values(m[1]), values(m[2])
	want, err := SQL(r.Table, Window{Accounts: accounts, Regions: regions, Start: r.Window.Start, End: r.Window.End})
	if err != nil || want != text {
		return fmt.Errorf("the query %s is not the organization trail's query over %s to %s", r.QueryID,
			r.Window.Start.UTC().Format(time.RFC3339), r.Window.End.UTC().Format(time.RFC3339))
	}
	if !slices.Contains(accounts, r.Account) || !slices.Contains(regions, r.Region) {
		return fmt.Errorf("the query %s does not cover %s/%s", r.QueryID, r.Account, r.Region)
	}
	return nil
}

func rowValues(row athenatypes.Row) []string {
	out := make([]string, len(row.Data))
	for i, d := range row.Data {
		out[i] = aws.ToString(d.VarCharValue)
	}
	return out
}
