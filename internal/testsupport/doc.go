// Package testsupport holds the AWS test doubles of imdsguard: a launcher for the moto
// emulator (EC2, IAM and a little CloudWatch), protocol-faithful stand-ins for the APIs
// moto lacks or serves too slowly (CloudTrail LookupEvents, CloudWatch GetMetricData at
// fleet scale), and seeding helpers that go through the real aws-sdk-go-v2 clients.
//
// The core of the package does not import "testing", so the demo and bench programs can
// use it too; the testing.TB conveniences live in testing.go.
//
// Every double is reached by pointing a real SDK client at it:
//
//	cfg := testsupport.AWSConfig("us-east-1")
//	ct := cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) {
//		o.BaseEndpoint = aws.String(stub.URL)
//	})
package testsupport
