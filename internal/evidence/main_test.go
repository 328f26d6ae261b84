package evidence_test

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go/middleware"

	"github.com/imdsguard/imdsguard/internal/awsapi"
	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

func TestMain(m *testing.M) { os.Exit(testsupport.RunWithMoto(m)) }

// testContext is bounded well below the go test timeout, so a hung server fails one
// test with a clear error. The deadline also matters to the limiter tests: a limiter
// that can never grant fails Wait at once only when the context has a deadline.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// inputSpy records the input of every call of one operation, taken in the Initialize
// step of the real client's middleware stack (once per call, before any retry).
type inputSpy[T any] struct {
	mu     sync.Mutex
	inputs []T
}

func (s *inputSpy[T]) addTo(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("testInputSpy",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if p, ok := in.Parameters.(T); ok {
				s.mu.Lock()
				s.inputs = append(s.inputs, p)
				s.mu.Unlock()
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
}

func (s *inputSpy[T]) all() []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]T(nil), s.inputs...)
}

// config is the test SDK configuration for region, counting calls in counter (when not
// nil) and passing every call's input to the spies.
//
// Exact call counts in these tests come from counters like this one, which count each
// SDK call once, rather than from the stand-ins' request counters. Under load the SDK
// occasionally sends a request twice: smithy-go closes the request body as soon as the
// response headers arrive, net/http may then drop the connection while the response body
// is read ("use of closed network connection"), and the SDK retries net.ErrClosed. A
// stand-in then sees one request more than the calls made.
func config(region string, counter *awsapi.CallCounter, spies ...func(*middleware.Stack) error) aws.Config {
	cfg := fakeaws.AWSConfig(region)
	if counter != nil {
		cfg.APIOptions = append(cfg.APIOptions, counter.AddTo)
	}
	cfg.APIOptions = append(cfg.APIOptions, spies...)
	return cfg
}

func ec2Client(url, region string, counter *awsapi.CallCounter, spies ...func(*middleware.Stack) error) *ec2.Client {
	return ec2.NewFromConfig(config(region, counter, spies...), func(o *ec2.Options) { o.BaseEndpoint = aws.String(url) })
}

func cloudWatchClient(url string, counter *awsapi.CallCounter, spies ...func(*middleware.Stack) error) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(config("us-east-1", counter, spies...), func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(url) })
}

func cloudTrailClient(url string, counter *awsapi.CallCounter, optFns ...func(*cloudtrail.Options)) *cloudtrail.Client {
	return cloudtrail.NewFromConfig(config("us-east-1", counter), append([]func(*cloudtrail.Options){
		func(o *cloudtrail.Options) { o.BaseEndpoint = aws.String(url) },
	}, optFns...)...)
}

// closedPort returns the URL of a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return url
}

// lowerMaxResults sets MaxResults of every DescribeInstances call to n, on the copy of
// the input that the paginator hands to the client, to make moto page sooner.
func lowerMaxResults(n int32) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("testLowerMaxResults",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if p, ok := in.Parameters.(*ec2.DescribeInstancesInput); ok {
					p.MaxResults = aws.Int32(n)
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	}
}
