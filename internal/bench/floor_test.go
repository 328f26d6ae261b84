package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
)

// The floor the emulators set for a plan (DESIGN.md section 6): their own time to answer
// the DescribeInstances pages, plus one round of GetMetricData calls, that is the slowest
// of them, were they all issued at once. Both are measured apart from the plan, on the
// same fleet, one request at a time, as the time from sending a request to the last byte
// of its reply: what the endpoint costs, without the client's encoding and decoding.

// planTarget is DESIGN.md section 6's budget: a plan within this many times the floor.
const planTarget = 1.3

// servingClock is an http.RoundTripper that reads every reply in full before handing it
// on, and keeps how long each took from sending the request to the reply's last byte.
type servingClock struct {
	inner http.RoundTripper

	mu    sync.Mutex
	times []time.Duration
}

func (c *servingClock) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := c.inner.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	c.mu.Lock()
	c.times = append(c.times, took)
	c.mu.Unlock()
	return resp, nil
}

func (c *servingClock) total() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum time.Duration
	for _, t := range c.times {
		sum += t
	}
	return sum
}

func newServingClock() *servingClock {
	return &servingClock{inner: &http.Transport{DisableCompression: true}}
}

// describeServingTime walks moto's DescribeInstances pages as the CLI does (MaxResults
// 1000) and returns moto's serving time for them, summed, and the pages.
func describeServingTime(b *testing.B, motoURL string) (time.Duration, int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), planTimeout)
	defer cancel()
	clock := newServingClock()
	client := ec2.NewFromConfig(fakeaws.AWSConfig(region), func(o *ec2.Options) {
		o.BaseEndpoint = aws.String(motoURL)
		o.HTTPClient = &http.Client{Transport: clock}
	})
	pages := ec2.NewDescribeInstancesPaginator(client, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(describePageSize)})
	n := 0
	for pages.HasMorePages() {
		if _, err := pages.NextPage(ctx); err != nil {
			b.Fatalf("timing moto's DescribeInstances: %v", err)
		}
		n++
	}
	return clock.total(), n
}

// slowestMetricCall sends the GetMetricData requests the CLI sent (their forms, as the
// stand-in received them) again, one at a time, and returns the longest serving time.
func slowestMetricCall(b *testing.B, cloudWatchURL string, forms []url.Values) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), planTimeout)
	defer cancel()
	clock := newServingClock()
	client := &http.Client{Transport: clock}
	creds, err := fakeaws.AWSConfig(region).Credentials.Retrieve(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var slowest time.Duration
	for i, form := range forms {
		body := form.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, cloudWatchURL, strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "monitoring", region, time.Now()); err != nil {
			b.Fatal(err)
		}
		before := len(clock.times)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatalf("replaying GetMetricData request %d: %v", i+1, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("replaying GetMetricData request %d: HTTP %d", i+1, resp.StatusCode)
		}
		slowest = max(slowest, clock.times[before])
	}
	return slowest
}

// floorRatio formats wall/floor and whether it is within planTarget.
func floorRatio(wall, floor time.Duration) string {
	if floor <= 0 {
		return "n/a"
	}
	ratio := float64(wall) / float64(floor)
	within := "no"
	if ratio <= planTarget {
		within = "yes"
	}
	return fmt.Sprintf("%.2f (within %gx: %s)", ratio, planTarget, within)
}
