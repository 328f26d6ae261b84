package wiring_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"golang.org/x/time/rate"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/wiring"
)

func config() aws.Config {
	return aws.Config{Region: "eu-west-3", BaseEndpoint: aws.String("http://127.0.0.1:1")}
}

// TestClientsAreBuiltOnce: every client is built once per Clients and shared: the
// guard's EC2 client is the enforcer's, Guard returns the same clients and the same
// LookupEvents limiter every time, and a service asked for twice is one client.
func TestClientsAreBuiltOnce(t *testing.T) {
	c := wiring.New(config(), wiring.Options{})
	g := c.Guard()
	if g.EC2 != c.EC2() {
		t.Error("the guard's EC2 client is not the one EC2 returns")
	}
	if again := c.Guard(); again != g {
		t.Errorf("Guard built new clients: %+v, then %+v", g, again)
	}
	if g.CloudWatch == nil || g.CloudTrail == nil || g.LookupLimiter == nil {
		t.Fatalf("Guard left clients out: %+v", g)
	}
	q := wiring.Client(c, sqs.ServiceID, sqs.NewFromConfig)
	if q != wiring.Client(c, sqs.ServiceID, sqs.NewFromConfig) {
		t.Error("the SQS client was built twice")
	}
	if got := q.Options().Region; got != "eu-west-3" {
		t.Errorf("the SQS client's region is %q, want the configuration's", got)
	}
	if c.Region() != "eu-west-3" {
		t.Errorf("Region() = %q", c.Region())
	}
	// Each Clients is its own account-region, with its own limiter.
	if other := wiring.New(config(), wiring.Options{}).Guard(); other.LookupLimiter == g.LookupLimiter || other.EC2 == g.EC2 {
		t.Error("two Clients share a limiter or a client")
	}
}

// TestLookupPace: the limiter paces LookupEvents at AWS's quota unless the knob says
// otherwise.
func TestLookupPace(t *testing.T) {
	if got := wiring.New(config(), wiring.Options{}).Guard().LookupLimiter.Limit(); got != rate.Limit(evidence.LookupEventsPerSecond) {
		t.Errorf("default pace %v per second, want %v", got, evidence.LookupEventsPerSecond)
	}
	if got := wiring.New(config(), wiring.Options{LookupsPerSecond: 50}).Guard().LookupLimiter.Limit(); got != 50 {
		t.Errorf("pace %v per second, want the 50 asked for", got)
	}
}

// TestEndpoints: an endpoint knob sends its service elsewhere than the configuration,
// and only that service.
func TestEndpoints(t *testing.T) {
	c := wiring.New(config(), wiring.Options{Endpoints: wiring.Endpoints{EC2: "http://127.0.0.1:2", CloudTrail: "http://127.0.0.1:3"}})
	g := c.Guard()
	if got := aws.ToString(g.EC2.(*ec2.Client).Options().BaseEndpoint); got != "http://127.0.0.1:2" {
		t.Errorf("EC2 endpoint %q", got)
	}
	if got := aws.ToString(g.CloudTrail.(*cloudtrail.Client).Options().BaseEndpoint); got != "http://127.0.0.1:3" {
		t.Errorf("CloudTrail endpoint %q", got)
	}
	if got := aws.ToString(g.CloudWatch.(*cloudwatch.Client).Options().BaseEndpoint); got != "http://127.0.0.1:1" {
		t.Errorf("CloudWatch endpoint %q, want the configuration's", got)
	}
	if got := aws.ToString(wiring.Client(c, sqs.ServiceID, sqs.NewFromConfig).Options().BaseEndpoint); got != "http://127.0.0.1:1" {
		t.Errorf("SQS endpoint %q, want the configuration's", got)
	}
}

// TestClientOfTwoServicesPanics: one service id asked for with two services'
// constructors is a programming error.
func TestClientOfTwoServicesPanics(t *testing.T) {
	c := wiring.New(config(), wiring.Options{})
	wiring.Client(c, sqs.ServiceID, sqs.NewFromConfig)
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	wiring.Client(c, sqs.ServiceID, ec2.NewFromConfig)
}
