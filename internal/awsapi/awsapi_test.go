package awsapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/smithy-go"

	"github.com/imdsguard/imdsguard/internal/awsapi"
)

// pointAt makes the standard AWS settings name endpoint and static test credentials.
func pointAt(t *testing.T, endpoint string) {
	t.Helper()
	nowhere := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
		"AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": nowhere, "AWS_SHARED_CREDENTIALS_FILE": nowhere, "AWS_PROFILE": "",
	} {
		t.Setenv(k, v)
	}
}

// TestEveryAttemptHasADeadline: a reply that never comes ends each attempt at the call
// timeout, and the call after its attempts, instead of hanging.
func TestEveryAttemptHasADeadline(t *testing.T) {
	release := make(chan struct{})
	attempts := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	pointAt(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := awsapi.Load(ctx, awsapi.Options{CallTimeout: 100 * time.Millisecond, RetryMaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cloudtrail.NewFromConfig(cfg).LookupEvents(ctx, &cloudtrail.LookupEventsInput{})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("LookupEvents against a stalled endpoint: %v, want the attempt deadline", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the call ran into the test's own deadline")
	}
	if n := len(attempts); n != 3 {
		t.Errorf("%d attempts, want the retryer's 3: a stalled attempt is retried", n)
	}
}

// TestMalformedRepliesAreRetried: a body that cannot be parsed is retried like
// throttling, and a good reply on a later attempt is the answer.
func TestMalformedRepliesAreRetried(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if calls < 3 {
			w.Write([]byte(`{"Events": [{"EventId": "a`)) // cut off
			return
		}
		w.Write([]byte(`{"Events": []}`))
	}))
	defer srv.Close()
	pointAt(t, srv.URL)
	ctx := context.Background()
	cfg, err := awsapi.Load(ctx, awsapi.Options{RetryMaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	out, err := cloudtrail.NewFromConfig(cfg).LookupEvents(ctx, &cloudtrail.LookupEventsInput{})
	if err != nil || out.Events == nil || calls != 3 {
		t.Fatalf("after two truncated replies: %v, %v, %d calls; want the third reply", out, err, calls)
	}

	calls = -10 // every reply truncated: the error says so after the attempts
	_, err = cloudtrail.NewFromConfig(cfg).LookupEvents(ctx, &cloudtrail.LookupEventsInput{})
	var de *smithy.DeserializationError
	if !errors.As(err, &de) || calls != -7 {
		t.Errorf("always truncated: %v after %d calls, want a DeserializationError after 3", err, calls+10)
	}
}

// TestCounterCountsOperationsOnce: retries are not counted again.
func TestCounterCountsOperationsOnce(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if calls == 1 {
			w.Header().Set("X-Amzn-ErrorType", "ThrottlingException")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"__type": "ThrottlingException", "message": "Rate exceeded"}`))
			return
		}
		w.Write([]byte(`{"Events": []}`))
	}))
	defer srv.Close()
	pointAt(t, srv.URL)
	counter := awsapi.NewCallCounter()
	cfg, err := awsapi.Load(context.Background(), awsapi.Options{Counter: counter, RetryMaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cloudtrail.NewFromConfig(cfg).LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{}); err != nil {
		t.Fatal(err)
	}
	if got := counter.Counts()["cloudtrail:LookupEvents"]; got != 1 || calls != 2 {
		t.Errorf("counted %d operations for %d requests, want 1 for 2", got, calls)
	}
	_ = aws.String
}
