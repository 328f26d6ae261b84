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
	// Stdin answers the commands that ask before they change anything (rollback).
	Stdin          io.Reader
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
	return Execute(ctx, newRoot(env), args, env)
}

// Execute runs a command tree made with the conventions of this package (SilenceErrors,
// misuse as usageError) and returns the process exit code: 0, 1 for a failure, 2 for
// misuse, 130 when interrupted, or the code of a program it ran (ExitCodeError).
func Execute(ctx context.Context, root *cobra.Command, args []string, env Env) int {
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var exited ExitCodeError
	if errors.As(err, &exited) {
		// The program has said what went wrong itself.
		return exited.Code
	}
	name := root.Name()
	if interrupted, ok := asInterrupted(ctx, err); ok {
		// One line, whatever the command was doing when the signal came.
		fmt.Fprintf(env.Stderr, "%s: %v\n", name, interrupted)
		return ExitInterrupted
	}
	fmt.Fprintf(env.Stderr, "%s: %v\n", name, err)
	var usage usageError
	// cobra reports an unknown subcommand as a plain error.
	if errors.As(err, &usage) || strings.HasPrefix(err.Error(), "unknown command") {
		return ExitUsage
	}
	return ExitFailure
}

// ExitCodeError is the end of a program a command ran, which exited with Code and has
// spoken for itself on its standard error.
type ExitCodeError struct{ Code int }

func (e ExitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Usagef is misuse (exit code 2), for commands made outside this package.
func Usagef(format string, args ...any) error { return usagef(format, args...) }

// NewRoot is a root command with this package's conventions, for a program of its own
// (the demo): errors and usage are silenced (Execute reports them), flag errors are
// misuse.
func NewRoot(use, short, long string, env Env) *cobra.Command {
	root := &cobra.Command{Use: use, Short: short, Long: long, SilenceUsage: true, SilenceErrors: true}
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	return root
}

func newRoot(env Env) *cobra.Command {
	root := NewRoot("imdsguard", "Move EC2 instances to IMDSv2-only without breaking them",
		"imdsguard enforces IMDSv2 (HttpTokens=required) only where IMDSv1 is provably unused,\n"+
			"judged from the MetadataNoToken metric and CloudTrail's credential deliveries.", env)
	root.AddCommand(newPlanCommand(env), newAuditCommand(env), newApplyCommand(env), newStatusCommand(env), newRollbackCommand(env), newDemoCommand(env), newVersionCommand(env))
	root.AddCommand(newGuardrailsCommand(env))
	return root
}

// OSEnv is the real environment.
func OSEnv(stderrIsTerminal bool) Env {
	return Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv, Now: time.Now, StderrIsTerminal: stderrIsTerminal}
}
