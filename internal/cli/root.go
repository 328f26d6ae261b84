// Package cli is the imdsguard command line: cobra commands over the shared guard.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/awsapi"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
	// ExitInterrupted is the shell's code for a process ended by SIGINT (128+2); imdsguard
	// also uses it for SIGTERM, after winding down without writing anything.
	ExitInterrupted = 130
)

// usageError marks a mistake in how the command was called (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// interruptedError is the outcome of a command stopped by SIGINT or SIGTERM (the
// context's cancellation) before it finished (exit code 130). What says what was left
// undone, e.g. "no plan was written".
type interruptedError struct{ what string }

func (e interruptedError) Error() string {
	if e.what == "" {
		return "interrupted"
	}
	return "interrupted: " + e.what
}

// asInterrupted recognises the end of a command stopped by the signal: its own
// interruptedError, or the cancellation of ctx surfacing from a call it was making.
func asInterrupted(ctx context.Context, err error) (interruptedError, bool) {
	var interrupted interruptedError
	if errors.As(err, &interrupted) {
		return interrupted, true
	}
	return interruptedError{}, ctx.Err() != nil && errors.Is(err, context.Canceled)
}

// noArgs refuses positional arguments as misuse.
func noArgs(cmd *cobra.Command, args []string) error {
	if err := cobra.NoArgs(cmd, args); err != nil {
		return usageError{err}
	}
	return nil
}

// Env is what the commands read from the outside world, injectable for tests.
type Env struct {
	Stdout, Stderr io.Writer
	LookupEnv      func(string) (string, bool)
	Now            func() time.Time
	// StderrIsTerminal turns on the progress bar.
	StderrIsTerminal bool
	// AWS adjusts how the AWS configuration is loaded (region and counter are set by
	// each command); the zero value is the production setup.
	AWS awsapi.Options
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, env Env) int {
	root := newRoot(env)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if interrupted, ok := asInterrupted(ctx, err); ok {
		// One line, whatever the command was doing when the signal came.
		fmt.Fprintf(env.Stderr, "imdsguard: %v\n", interrupted)
		return ExitInterrupted
	}
	fmt.Fprintf(env.Stderr, "imdsguard: %v\n", err)
	var usage usageError
	// cobra reports an unknown subcommand as a plain error.
	if errors.As(err, &usage) || strings.HasPrefix(err.Error(), "unknown command") {
		return ExitUsage
	}
	return ExitFailure
}

func newRoot(env Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "imdsguard",
		Short: "Move EC2 instances to IMDSv2-only without breaking them",
		Long: "imdsguard enforces IMDSv2 (HttpTokens=required) only where IMDSv1 is provably unused,\n" +
			"judged from the MetadataNoToken metric and CloudTrail's credential deliveries.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	// Flag parsing errors are misuse.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newPlanCommand(env), newAuditCommand(env), newDemoCommand(env), newVersionCommand(env))
	return root
}

// OSEnv is the real environment.
func OSEnv(stderrIsTerminal bool) Env {
	return Env{Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv, Now: time.Now, StderrIsTerminal: stderrIsTerminal}
}
