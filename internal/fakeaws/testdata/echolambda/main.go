// Command echolambda is the test function of the testsupport Lambda Runtime API harness:
// a bootstrap built like the real ones (lambda.Start, -tags lambda.norpc) that answers
// with its event and what it learnt about the invocation.
//
// Events steer it: {"fail":true} returns an error, {"exit":N} exits with status N,
// {"hang":true} never answers, {"big":N} answers with a JSON string of N bytes. With
// ECHO_INIT_EXIT set it exits during init, before lambda.Start.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// echoError gives the error a recognisable errorType ("echoError").
type echoError struct{ msg string }

func (e *echoError) Error() string { return e.msg }

type command struct {
	Fail bool `json:"fail"`
	Exit *int `json:"exit"`
	Hang bool `json:"hang"`
	Big  int  `json:"big"`
}

type answer struct {
	RequestID    string          `json:"requestId"`
	Event        json.RawMessage `json:"event"`
	FunctionARN  string          `json:"functionArn"`
	FunctionName string          `json:"functionName"`
	MemoryMB     int             `json:"memoryMB"`
	Region       string          `json:"region"`
	TraceID      string          `json:"traceId"`
	DeadlineMs   int64           `json:"deadlineMs"`
	// RemainingMs is the deadline minus the function's clock when it ran.
	RemainingMs int64  `json:"remainingMs"`
	Custom      string `json:"custom,omitempty"` // client context custom["k"]
}

func handle(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
	lc, ok := lambdacontext.FromContext(ctx)
	if !ok {
		return nil, errors.New("no lambda context")
	}
	log.Printf("echo: request %s", lc.AwsRequestID)
	var c command
	_ = json.Unmarshal(in, &c) // any JSON is echoed; only objects steer
	switch {
	case c.Fail:
		return nil, &echoError{msg: "echo: asked to fail"}
	case c.Exit != nil:
		os.Exit(*c.Exit)
	case c.Hang:
		time.Sleep(time.Hour) // a hung function, for the harness's timeout
	case c.Big > 0:
		return json.Marshal(strings.Repeat("x", c.Big))
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return nil, errors.New("no deadline")
	}
	return json.Marshal(answer{
		RequestID:    lc.AwsRequestID,
		Event:        in,
		FunctionARN:  lc.InvokedFunctionArn,
		FunctionName: lambdacontext.FunctionName,
		MemoryMB:     lambdacontext.MemoryLimitInMB,
		Region:       os.Getenv("AWS_REGION"),
		TraceID:      os.Getenv("_X_AMZN_TRACE_ID"),
		DeadlineMs:   deadline.UnixMilli(),
		RemainingMs:  time.Until(deadline).Milliseconds(),
		Custom:       lc.ClientContext.Custom["k"],
	})
}

func main() {
	if s := os.Getenv("ECHO_INIT_EXIT"); s != "" {
		code, _ := strconv.Atoi(s)
		fmt.Fprintln(os.Stderr, "echo: init failed on purpose")
		os.Exit(code)
	}
	fmt.Println("echo: init")
	lambda.Start(handle)
}
