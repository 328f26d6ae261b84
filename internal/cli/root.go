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
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// usageError marks a mistake in how the command was called (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

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
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, env Env) int {
	root := newRoot(env)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
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
	root.AddCommand(newPlanCommand(env), newAuditCommand(env), newDemoCommand(env))
	return root
}

// OSEnv is the real environment.
func OSEnv(stderrIsTerminal bool) Env {
	return Env{Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv, Now: time.Now, StderrIsTerminal: stderrIsTerminal}
}
