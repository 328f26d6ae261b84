package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/ledger/decisionlog"
)

// transactCounter counts the TransactWriteItems calls and their items.
type transactCounter struct {
	decisionlog.TransactAPI
	calls, items atomic.Int64
}

func (c *transactCounter) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.calls.Add(1)
	c.items.Add(int64(len(in.TransactItems)))
	return c.TransactAPI.TransactWriteItems(ctx, in, opts...)
}

// TestRecordedDecisionsAreClaimable: what detect records is exactly what Claim checks.
func TestRecordedDecisionsAreClaimable(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	counter := &transactCounter{TransactAPI: f.client}
	log := &decisionlog.Log{API: counter, Table: testTable}
	const n = 250
	decisions := make([]decisionlog.Decision, n)
	for i := range decisions {
		d := recorded
		d.DecisionID = fmt.Sprintf("019aa8f3c2e00-%016x", i)
		d.InstanceID = fmt.Sprintf("i-%017x", i)
		d.Digest = decisionlog.Digest([]byte(d.DecisionID))
		decisions[i] = d
	}
	if err := log.RecordDecisions(ctx, decisions); err != nil {
		t.Fatal(err)
	}
	if calls, items := counter.calls.Load(), counter.items.Load(); calls != 3 || items != n {
		t.Errorf("%d TransactWriteItems calls with %d items, want 3 with %d (at most 100 a call)", calls, items, n)
	}
	for _, d := range []decisionlog.Decision{decisions[0], decisions[99], decisions[100], decisions[n-1]} {
		r := ledger.Ref{AccountID: d.AccountID, Region: d.Region, InstanceID: d.InstanceID}
		if err := f.ledger.Claim(ctx, d.DecisionID, r, d.Digest, t0, ttl); err != nil {
			t.Errorf("claiming recorded decision %s: %v", d.DecisionID, err)
		}
	}
}

// TestRecordedDecisionsAreNeverRewritten: recording an id again fails and leaves the
// first digest in force, so nobody can re-record a decision with another message.
func TestRecordedDecisionsAreNeverRewritten(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	recordDecision(t, ctx, f.ledger)
	again := recorded
	again.Digest = otherDigest
	log := &decisionlog.Log{API: f.client, Table: testTable}
	if err := log.RecordDecisions(ctx, []decisionlog.Decision{again}); err == nil {
		t.Fatal("a second recording of the same decision id succeeded")
	}
	if got := attrS(t, f.rawItem(t, decisionlog.PartitionKey(decisionID), decisionlog.SortKey), "digest"); got != digest {
		t.Errorf("digest after a second recording = %s, want the first, %s", got, digest)
	}
	if err := f.ledger.Claim(ctx, decisionID, ref, otherDigest, t0, ttl); !errors.Is(err, ledger.ErrAltered) {
		t.Errorf("claim with the second digest: %v, want ErrAltered", err)
	}
}

// TestRecordDecisionsRefusesInvalidInput: nothing is written for a decision that could
// not be claimed correctly later.
func TestRecordDecisionsRefusesInvalidInput(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*decisionlog.Decision)
		want   string
	}{
		{"no digest", func(d *decisionlog.Decision) { d.Digest = "" }, "not a hex SHA-256"},
		{"an upper-case digest", func(d *decisionlog.Decision) { d.Digest = strings.ToUpper(digest) }, "not a hex SHA-256"},
		{"no action", func(d *decisionlog.Decision) { d.Action = "" }, "action is empty"},
		{"'#' in the id", func(d *decisionlog.Decision) { d.DecisionID = "a#b" }, "contains '#'"},
		{"no instance", func(d *decisionlog.Decision) { d.InstanceID = "" }, "instance id"},
		{"the zero time", func(d *decisionlog.Decision) { d.CreatedAt = time.Time{} }, "zero time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := recorded
			tc.mutate(&d)
			counter := &transactCounter{}
			err := (&decisionlog.Log{API: counter, Table: testTable}).RecordDecisions(context.Background(), []decisionlog.Decision{recorded, d})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
			if counter.calls.Load() != 0 {
				t.Errorf("%d calls made for invalid input", counter.calls.Load())
			}
		})
	}
}
