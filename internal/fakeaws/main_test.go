package fakeaws

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

func TestMain(m *testing.M) { os.Exit(RunWithMoto(m)) }

const testRegion = "us-east-1"

func ec2Client(url string) *ec2.Client {
	return ec2.NewFromConfig(AWSConfig(testRegion), func(o *ec2.Options) { o.BaseEndpoint = aws.String(url) })
}

func cloudWatchClient(url string) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(AWSConfig(testRegion), func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(url) })
}

func cloudTrailClient(url string) *cloudtrail.Client {
	return cloudtrail.NewFromConfig(AWSConfig(testRegion), func(o *cloudtrail.Options) { o.BaseEndpoint = aws.String(url) })
}

// testContext is a context bounded well below the go test timeout, so that a hung
// server fails one test with a clear error instead of killing the binary.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
