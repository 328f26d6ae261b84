// Package lambdaenv reads what both Lambda functions need from their environment and
// invocation context, so that their main.go files only wire.
package lambdaenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Logger is the JSON logger both functions log with, to standard output.
func Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stdout, nil))
}

// Required returns an environment variable that must be set.
func Required(lookup func(string) (string, bool), name string) (string, error) {
	v, ok := lookup(name)
	if !ok || strings.TrimSpace(v) == "" {
		return "", fmt.Errorf("environment variable %s must be set", name)
	}
	return strings.TrimSpace(v), nil
}

// Duration reads an optional duration; def applies when it is unset. It is for values
// template.yaml sets literally, not from a parameter (those are Specs).
func Duration(lookup func(string) (string, bool), name string, def time.Duration) (time.Duration, error) {
	v, ok := lookup(name)
	if !ok || strings.TrimSpace(v) == "" {
		return def, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("environment variable %s = %q: want a positive duration such as 1h or 15m", name, v)
	}
	return d, nil
}

// Optional reads an optional string; def applies when it is unset or blank.
func Optional(lookup func(string) (string, bool), name, def string) string {
	if v, ok := lookup(name); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

// AccountID is the function's own account, from the ARN it was invoked by.
func AccountID(ctx context.Context) (string, error) {
	lc, ok := lambdacontext.FromContext(ctx)
	if !ok {
		return "", fmt.Errorf("no Lambda context: cannot tell this function's account")
	}
	// arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
	parts := strings.Split(lc.InvokedFunctionArn, ":")
	if len(parts) < 7 || len(parts[4]) != 12 {
		return "", fmt.Errorf("invoked function ARN %q does not name an account", lc.InvokedFunctionArn)
	}
	return parts[4], nil
}
