// Package wiring is imdsguard's composition root: from one loaded AWS configuration
// (internal/awsapi.Load, the one place that loads it, with its call timeout and retry
// policy) and a few knobs, it builds the AWS clients that the CLI, the Lambda functions
// and the demo hand to their handlers. Each client is built once per Clients, so the
// guard and the enforcer share one EC2 client, and every LookupEvents of the
// account-region waits for the same limiter.
//
// The consumers keep their own small interfaces with the exact SDK signatures
// (evidence.EC2API, detect.QueueAPI, ledger.DynamoDBAPI, ...); this package hands them
// the SDK clients that satisfy them, and builds nothing else.
//
// It imports only the services that every consumer needs, the guard's EC2, CloudWatch
// and CloudTrail. Any other service is built with Client, to which the caller passes
// the service's constructor, so that a binary links the SDK packages of the services it
// uses and no other. That is deliberate: an SDK service package costs start-up time in
// every binary that links it (service/ssm's initialisation alone takes about 1 ms, half a
// minimal Lambda bootstrap's cold start; DESIGN.md section 6), and detect has no use for
// the services of remediate's ticket backends.
package wiring

import (
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/guard"
)

// Options are the knobs. The zero value is the production setup.
type Options struct {
	// LookupsPerSecond paces CloudTrail LookupEvents in the configuration's
	// account-region; zero means evidence.LookupEventsPerSecond, AWS's quota.
	LookupsPerSecond float64
	// Endpoints send the guard's services to other endpoints than the configuration's.
	Endpoints Endpoints
}

// Endpoints are endpoint URLs that win over the configuration's, for the demo's
// stand-ins (an EC2 proxy that answers dry runs as EC2 does, the CloudTrail stand-in).
// Empty means the configuration's. Production leaves them empty and points services
// elsewhere the standard way (AWS_ENDPOINT_URL_<SERVICE>), which awsapi.Load reads.
type Endpoints struct {
	EC2, CloudWatch, CloudTrail string
}

// Clients builds and keeps the clients of one account-region, that of one
// configuration. It is safe for concurrent use.
type Clients struct {
	cfg  aws.Config
	opts Options

	mu      sync.Mutex
	clients map[string]any // by SDK service id
	guard   *guard.Clients
}

// New returns the clients of cfg's account-region. Nothing is built until a client is
// asked for, and building one makes no call.
func New(cfg aws.Config, o Options) *Clients {
	return &Clients{cfg: cfg, opts: o, clients: map[string]any{}}
}

// Region is the configuration's region.
func (c *Clients) Region() string { return c.cfg.Region }

// Guard returns the clients the guard reads its evidence with: EC2, CloudWatch,
// CloudTrail, and the account-region's LookupEvents limiter. Every call returns the same.
func (c *Clients) Guard() guard.Clients {
	ec2Client, cw, ct := c.EC2(), c.cloudWatch(), c.cloudTrail()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.guard == nil {
		perSecond := c.opts.LookupsPerSecond
		if perSecond <= 0 {
			perSecond = evidence.LookupEventsPerSecond
		}
		c.guard = &guard.Clients{EC2: ec2Client, CloudWatch: cw, CloudTrail: ct, LookupLimiter: evidence.NewLookupLimiter(perSecond)}
	}
	return *c.guard
}

// EC2 is the EC2 client: the one Guard's clients use, and the enforcer's.
func (c *Clients) EC2() *ec2.Client {
	return Client(c, ec2.ServiceID, func(cfg aws.Config, opts ...func(*ec2.Options)) *ec2.Client {
		return ec2.NewFromConfig(cfg, append(opts, func(o *ec2.Options) { endpoint(&o.BaseEndpoint, c.opts.Endpoints.EC2) })...)
	})
}

// CloudWatch is the CloudWatch client: the one Guard's clients use, and verify's.
func (c *Clients) CloudWatch() *cloudwatch.Client { return c.cloudWatch() }

func (c *Clients) cloudWatch() *cloudwatch.Client {
	return Client(c, cloudwatch.ServiceID, func(cfg aws.Config, opts ...func(*cloudwatch.Options)) *cloudwatch.Client {
		return cloudwatch.NewFromConfig(cfg, append(opts, func(o *cloudwatch.Options) { endpoint(&o.BaseEndpoint, c.opts.Endpoints.CloudWatch) })...)
	})
}

func (c *Clients) cloudTrail() *cloudtrail.Client {
	return Client(c, cloudtrail.ServiceID, func(cfg aws.Config, opts ...func(*cloudtrail.Options)) *cloudtrail.Client {
		return cloudtrail.NewFromConfig(cfg, append(opts, func(o *cloudtrail.Options) { endpoint(&o.BaseEndpoint, c.opts.Endpoints.CloudTrail) })...)
	})
}

// endpoint sets a client's BaseEndpoint to url, unless url is empty.
func endpoint(base **string, url string) {
	if url != "" {
		*base = aws.String(url)
	}
}

// Client returns the client of the service whose SDK id is serviceID, built once from
// the configuration with newClient, the service package's NewFromConfig:
//
//	queue := wiring.Client(clients, sqs.ServiceID, sqs.NewFromConfig)
//
// Asking for one service id with the constructors of two services is a programming
// error, and panics.
func Client[C any, O any](c *Clients, serviceID string, newClient func(aws.Config, ...func(*O)) C) C {
	c.mu.Lock()
	defer c.mu.Unlock()
	if built, ok := c.clients[serviceID]; ok {
		client, ok := built.(C)
		if !ok {
			panic(fmt.Sprintf("wiring: the %s client is a %T, not a %T", serviceID, built, client))
		}
		return client
	}
	client := newClient(c.cfg)
	c.clients[serviceID] = client
	return client
}

// Config is the configuration the clients are built from.
func (c *Clients) Config() aws.Config { return c.cfg.Copy() }
