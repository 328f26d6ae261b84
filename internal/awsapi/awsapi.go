// Package awsapi loads the AWS configuration the standard way (profile, region,
// AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>, ...) and counts the API calls made
// with it, so reports state measured call counts rather than estimates.
package awsapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// CallCounter counts API operations by "service:Operation", as IAM names them
// (ec2:DescribeInstances). It counts each operation once, however often it was retried.
// It runs after the SDK has recorded the service and operation in the context.
type CallCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

// NewCallCounter returns an empty counter.
func NewCallCounter() *CallCounter { return &CallCounter{counts: map[string]int{}} }

// AddTo installs the counter in a client's middleware stack; use it in aws.Config.APIOptions.
func (c *CallCounter) AddTo(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("imdsguardCallCounter",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			c.add(Operation(awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)))
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

// Operation names an operation the way IAM actions do: "ec2:DescribeInstances".
func Operation(serviceID, operation string) string {
	return strings.ToLower(strings.ReplaceAll(serviceID, " ", "")) + ":" + operation
}

func (c *CallCounter) add(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[op]++
}

// Counts returns a copy of the counts so far.
func (c *CallCounter) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

// Options say how to Load the configuration.
type Options struct {
	// Region is the region to use; empty means the configured default region.
	Region string
	// Counter, when set, counts every operation made with the configuration.
	Counter *CallCounter
	// CallTimeout bounds each attempt of every call: connecting, sending, and reading the
	// whole reply. A stalled endpoint then fails the attempt, which is retried like
	// throttling, instead of hanging the caller. Zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// RetryMaxBackoff caps the wait between attempts; zero keeps the SDK's (20 s). Tests
	// that inject many faults shorten it, so they run in seconds.
	RetryMaxBackoff time.Duration
}

// DefaultCallTimeout is the attempt deadline when Options.CallTimeout is zero.
const DefaultCallTimeout = 30 * time.Second

// Load reads the shared AWS configuration with the adaptive retryer, which backs off and
// slows the client down on throttling and also retries replies that could not be read
// (RetryMalformedReplies), and with a deadline on every attempt.
func Load(ctx context.Context, o Options) (aws.Config, error) {
	timeout := o.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewAdaptiveMode(func(a *retry.AdaptiveModeOptions) {
				a.StandardOptions = append(a.StandardOptions, RetryMalformedReplies, func(so *retry.StandardOptions) {
					if o.RetryMaxBackoff > 0 {
						so.MaxBackoff = o.RetryMaxBackoff
					}
				})
			})
		}),
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(timeout)),
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, fmt.Errorf("no AWS region: set --region, AWS_REGION or a profile region")
	}
	if o.Counter != nil {
		cfg.APIOptions = append(cfg.APIOptions, o.Counter.AddTo)
	}
	return cfg, nil
}

// RetryMalformedReplies makes a retryer treat a reply whose body could not be read or
// parsed (truncated, garbled, cut off by a proxy) as it treats throttling: another
// attempt usually gets a whole reply. The SDK counts such a reply as final otherwise,
// and one broken reply would then fail a whole batch of evidence.
func RetryMalformedReplies(o *retry.StandardOptions) {
	o.Retryables = append(slices.Clone(o.Retryables), retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
		var de *smithy.DeserializationError
		// A body cut off because the caller gave up is not a broken reply.
		if errors.As(err, &de) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			return aws.TrueTernary
		}
		return aws.UnknownTernary
	}))
}
