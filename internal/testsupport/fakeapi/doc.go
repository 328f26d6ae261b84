// Package fakeapi holds in-process fakes of the interfaces imdsguard owns in front of
// AWS and its own stores: EC2 (evidence.EC2API and enforce.EC2API), CloudWatch
// (evidence.CloudWatchAPI), CloudTrail (evidence.CloudTrailAPI), the ledger
// (remediate.Ledger) and a ticket backend (ticket.Backend). They let table tests cover
// the branches of the handlers in milliseconds, with no emulator; the emulator-backed
// integration tests stay the proof that the real clients speak the wire protocols.
//
// Each fake keeps a little state (instances, datapoints, events, decisions, tickets) and
// answers from it the way the real service does, records every call, and lets a test
// set the reply or the error of the next calls (Op, FailNext). A Journal shared by the
// fakes shows the calls of every fake in the order they were made.
//
// The SDK fakes ignore the functional options (optFns) of each call: the evidence
// gatherers install a middleware with them that checks the typed result, and they check
// the result again themselves, which is what a fake's reply meets.
//
// The package does not import "testing" and is imported only by _test.go files: no
// binary links it.
package fakeapi
