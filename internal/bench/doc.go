// Package bench holds imdsguard's benchmarks (`make bench`; DESIGN.md section 6). It has
// no code of its own: the benchmarks live in the package's tests, so that `make test`
// compiles them but never runs them (it runs the one test that keeps the SDK floors true).
//
// BenchmarkPlan plans fleets of 2,000 and 10,000 instances. It builds the CLI, seeds a
// realistic fleet into moto_server (EC2), the indexed CloudWatch stand-in and the
// CloudTrail stand-in of internal/testsupport, runs the built binary as a user would,
// and prints the API calls it made by operation, its wall time and its peak RSS. Next to
// the wall time it prints the floor the emulators set (DESIGN.md section 6): moto's own
// time to serve the DescribeInstances pages plus the slowest of the plan's GetMetricData
// calls, both measured apart, one request at a time (floor_test.go), and the ratio. It
// checks the API-call budgets, which are counts and so can be asserted; times and memory
// are only reported.
//
// BenchmarkLambda starts each function's bootstrap 20 times under the Runtime API
// harness, taking turns with a minimal aws-lambda-go bootstrap (testdata/minimallambda,
// built the same way), and prints their cold starts with each function's ratio to the
// minimal one (the budget is 2x) and the size of the bootstrap `sam build` deploys. Each
// function also has its SDK floor (testdata/sdkfloor): the minimal bootstrap linking the
// AWS SDK packages the function links, so that the table shows how much of a cold start
// is the SDK's package initialisation and how much imdsguard's own code adds.
// TestSDKFloorsLinkWhatTheFunctionsLink, which `make test` runs, keeps the floors' SDK
// packages equal to the functions'.
//
// One size: go test -run '^$' -bench 'Plan/instances=2000$' -benchtime 1x ./internal/bench/
//
// moto pages DescribeInstances by reservation rather than by instance, so the fleet,
// seeded in RunInstances calls of 1000, comes back in one page. Setting
// IMDSGUARD_BENCH_RESERVATION_SIZE=1 seeds one instance per reservation, so that moto
// pages as EC2 does. That is practical for 2,000 instances (about 1.5 minutes of
// seeding) but not for 10,000: moto's RunInstances slows as the region fills, and
// seeding had not finished after 30 minutes.
package bench
