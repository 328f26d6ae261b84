// Command minimallambda is the floor BenchmarkLambda measures the functions' cold starts
// against (DESIGN.md section 6): the smallest aws-lambda-go bootstrap, lambda.Start of a
// handler that does nothing, built exactly as the functions are.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(context.Context, json.RawMessage) error { return nil })
}
