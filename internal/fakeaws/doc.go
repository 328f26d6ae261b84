// Package fakeaws holds the AWS test doubles of imdsguard: a launcher for the moto
// emulator (EC2, IAM, DynamoDB, SQS, SNS and a little CloudWatch), protocol-faithful
// stand-ins for the APIs moto lacks or serves too slowly (CloudTrail LookupEvents,
// CloudWatch GetMetricData at fleet scale, SSM OpsItems, Jira), a proxy that makes moto's
// EC2 answer as EC2 does, a fault-injecting proxy, the Lambda Runtime API harness and
// seeding helpers that go through the real aws-sdk-go-v2 clients.
//
// It does not import "testing": the demo (cmd/imdsguard-demo) and the benchmarks use it
// as the tests do; the testing.TB conveniences live in package testsupport. No
// production binary links it.
//
// Every double is reached by pointing a real SDK client at it:
//
//	cfg := fakeaws.AWSConfig("us-east-1")
//	ct := cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) {
//		o.BaseEndpoint = aws.String(stub.URL)
//	})
package fakeaws
