package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"
)

// demoProgram is the demo's own binary. It is apart from imdsguard so that the CLI links
// none of the emulators and stand-ins the demo runs.
const demoProgram = "imdsguard-demo"

// newDemoCommand runs imdsguard-demo, from the directory imdsguard is in, with the
// arguments given.
func newDemoCommand(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "demo [flags]",
		Short: "Plan and remediate a sample fleet in local AWS emulators (runs " + demoProgram + ")",
		Long: "demo runs " + demoProgram + ", built next to imdsguard by `make build`: it starts moto_server and\n" +
			"the stand-ins on loopback ports, seeds a sample fleet, runs `imdsguard plan` against it and then\n" +
			"the deployed pipeline, and stops the emulators. No AWS account is touched. Its flags are\n" +
			demoProgram + "'s: see `imdsguard demo --help` after `make build`, or the README.",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding %s: %w", demoProgram, err)
			}
			path := filepath.Join(filepath.Dir(self), demoProgram)
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("%s is not next to imdsguard (%s): build both with `make build`, or run `make demo`", demoProgram, path)
			}
			run := exec.CommandContext(cmd.Context(), path, args...)
			run.Stdin, run.Stdout, run.Stderr = os.Stdin, env.Stdout, env.Stderr
			err = run.Run()
			var exited *exec.ExitError
			if errors.As(err, &exited) {
				return ExitCodeError{Code: exited.ExitCode()}
			}
			return err
		},
	}
}
