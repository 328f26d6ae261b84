package ledger_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

// atomicLedger is a ledger on dynalite, whose conditional writes are atomic under
// concurrency as DynamoDB's are (moto's are not), with the table the template creates.
func atomicLedger(t *testing.T) *ledger.Ledger {
	t.Helper()
	client := dynamodb.NewFromConfig(fakeaws.AWSConfig(testRegion), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(testsupport.Dynalite(t))
	})
	createTable(t, client, testTable)
	return &ledger.Ledger{API: client, Table: testTable}
}

// takeAtOnce has n goroutines take a slot of b at the same moment and returns how many
// got one and, by budget kind, how many were refused.
func takeAtOnce(t *testing.T, l *ledger.Ledger, b ledger.Budget, n int) (taken int, spent map[policy.BudgetKind]int) {
	t.Helper()
	ctx := testContext(t)
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			errs <- l.TakeBudget(ctx, b, b.Hour.Add(10*time.Minute))
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	spent = map[policy.BudgetKind]int{}
	for err := range errs {
		var bs *ledger.BudgetSpentError
		switch {
		case err == nil:
			taken++
		case errors.As(err, &bs):
			spent[bs.Kind]++
		default:
			t.Fatalf("TakeBudget: %v", err)
		}
	}
	return taken, spent
}

func used(t *testing.T, l *ledger.Ledger, b ledger.Budget) (hour, sweep int) {
	t.Helper()
	hour, sweep, err := l.BudgetUsed(testContext(t), b)
	if err != nil {
		t.Fatal(err)
	}
	return hour, sweep
}

// TestBudgetHoldsUnderConcurrency: 60 remediate invocations taking a slot of a 25-slot
// hour at once get exactly 25 slots; the sweep's budget holds as well, and a slot the
// sweep gave when the hour had none is given back.
func TestBudgetHoldsUnderConcurrency(t *testing.T) {
	l := atomicLedger(t)
	hour := time.Date(2026, 12, 1, 13, 0, 0, 0, time.UTC)
	base := ledger.Budget{AccountID: "123456789012", Region: testRegion, Hour: hour, MaxPerHour: 25}

	t.Run("the hour", func(t *testing.T) {
		taken, spent := takeAtOnce(t, l, base, 60)
		if taken != 25 || spent[policy.BudgetHour] != 35 {
			t.Errorf("%d slots taken, %v refused; want 25 taken and 35 refused by the hour", taken, spent)
		}
		if h, _ := used(t, l, base); h != 25 {
			t.Errorf("the hour's counter is %d, want 25", h)
		}
		// The next hour has its own budget.
		next := base
		next.Hour = hour.Add(time.Hour)
		if taken, _ := takeAtOnce(t, l, next, 3); taken != 3 {
			t.Errorf("%d of 3 slots taken in the next hour", taken)
		}
	})
	t.Run("the sweep runs out first", func(t *testing.T) {
		b := base
		b.Region, b.SweepID, b.MaxPerSweep = "eu-west-1", "sweep-1", 10
		taken, spent := takeAtOnce(t, l, b, 40)
		if taken != 10 || spent[policy.BudgetSweep] != 30 {
			t.Errorf("%d slots taken, %v refused; want 10 taken and 30 refused by the sweep", taken, spent)
		}
		if h, s := used(t, l, b); h != 10 || s != 10 {
			t.Errorf("counters hour %d, sweep %d; want 10 and 10", h, s)
		}
	})
	t.Run("the hour runs out first and the sweep's slots are given back", func(t *testing.T) {
		b := base
		b.Region, b.SweepID, b.MaxPerSweep, b.MaxPerHour = "eu-central-1", "sweep-2", 30, 12
		taken, spent := takeAtOnce(t, l, b, 40)
		if taken != 12 || spent[policy.BudgetHour]+spent[policy.BudgetSweep] != 28 {
			t.Errorf("%d slots taken, %v refused; want 12 taken and 28 refused", taken, spent)
		}
		if h, s := used(t, l, b); h != 12 || s != 12 {
			t.Errorf("counters hour %d, sweep %d; want 12 and 12: a sweep slot refused by the hour is given back", h, s)
		}
	})
	t.Run("an event's verdict counts against the hour only", func(t *testing.T) {
		b := base
		b.Region, b.MaxPerSweep = "ap-south-1", 1
		if taken, _ := takeAtOnce(t, l, b, 5); taken != 5 {
			t.Errorf("%d of 5 slots taken without a sweep id", taken)
		}
	})
}

// TestBudgetRefusesBadKeys: a budget whose parts could make another budget's key, or no
// hour's, is an error that names it, never a slot.
func TestBudgetRefusesBadKeys(t *testing.T) {
	l := &ledger.Ledger{API: &dynamodb.Client{}, Table: testTable}
	hour := time.Date(2026, 12, 1, 13, 0, 0, 0, time.UTC)
	ok := ledger.Budget{AccountID: "123456789012", Region: testRegion, Hour: hour, MaxPerHour: 25}
	for name, change := range map[string]func(*ledger.Budget){
		"account":       func(b *ledger.Budget) { b.AccountID = "1234#5678" },
		"region":        func(b *ledger.Budget) { b.Region = "us-east-1#x" },
		"hour":          func(b *ledger.Budget) { b.Hour = hour.Add(time.Minute) },
		"no hour":       func(b *ledger.Budget) { b.Hour = time.Time{} },
		"sweep id":      func(b *ledger.Budget) { b.SweepID = "a#HOUR#2026" },
		"hourly limit":  func(b *ledger.Budget) { b.MaxPerHour = 0 },
		"long sweep id": func(b *ledger.Budget) { b.SweepID = string(make([]byte, 129)) },
	} {
		b := ok
		change(&b)
		if err := l.TakeBudget(testContext(t), b, hour); err == nil {
			t.Errorf("%s: a bad budget %+v was taken", name, b)
		}
	}
}
