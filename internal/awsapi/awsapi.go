// Package awsapi loads the AWS configuration the standard way (profile, region,
// AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>, ...) and counts the API calls made
// with it, so reports state measured call counts rather than estimates.
package awsapi

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
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

// Load reads the shared AWS configuration for region (the configured default region
// when empty) with the adaptive retryer, which backs off and slows the client down on
// throttling, and the counter installed when it is not nil.
func Load(ctx context.Context, region string, counter *CallCounter) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return retry.NewAdaptiveMode() }),
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, fmt.Errorf("no AWS region: set --region, AWS_REGION or a profile region")
	}
	if counter != nil {
		cfg.APIOptions = append(cfg.APIOptions, counter.AddTo)
	}
	return cfg, nil
}
