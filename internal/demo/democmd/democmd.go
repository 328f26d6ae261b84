// Package democmd is the demo program's command (cmd/imdsguard-demo, also run by
// `imdsguard demo`). It is apart from package demo, which the CLI's tests use to seed
// their fleets, because it runs the CLI itself.
package democmd

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/cli"
	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/report"
)

// Command is the demo program (cmd/imdsguard-demo, also run by `imdsguard demo`): it
// starts the emulators, seeds the sample fleet, runs `imdsguard plan` against it exactly
// as against a real account, then the deployed pipeline, and stops the emulators. It is a
// program of its own so that the imdsguard CLI links none of the stand-ins.
//
// By default it prints about one screen, at most Width columns: the legend of the four
// actions, the plan one row per kind of instance, what the pipeline did, one ticket
// shortened, and the command to run next. --verbose prints the plan table of every
// instance, every outcome and a whole ticket.
func Command(env cli.Env) *cobra.Command {
	var copies int
	var format string
	var pipeline, verbose bool
	cmd := cli.NewRoot("imdsguard-demo", "Run imdsguard plan and the pipeline against a sample fleet in local AWS emulators",
		"imdsguard-demo starts moto_server and a CloudTrail stand-in on loopback ports, seeds a sample\n"+
			"fleet with one kind of instance per verdict rule, runs `imdsguard plan` against it exactly as\n"+
			"against a real account (through AWS_ENDPOINT_URL), then runs the detect and remediate pipeline\n"+
			"on the fleet in enforce mode, and stops the emulators. No AWS account is touched.\n\n"+
			"It prints about one screen: what the four actions mean, the plan one row per kind of\n"+
			"instance, what the pipeline did, one of its tickets shortened, and what to run next.\n"+
			"--verbose prints the plan of every instance, every outcome and a whole ticket.", env)
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if err := cobra.NoArgs(cmd, args); err != nil {
			return cli.Usagef("%v", err)
		}
		return nil
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if copies < 1 || copies > 50 {
			return cli.Usagef("--copies must be from 1 to 50, got %d", copies)
		}
		f, err := report.ParseFormat(format)
		if err != nil {
			return cli.Usagef("--format: %v", err)
		}
		if dir := projectVenv(os.Executable, exec.LookPath); dir != "" {
			if err := os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH")); err != nil {
				return fmt.Errorf("setting PATH: %w", err)
			}
		}
		ctx := cmd.Context()
		now := env.Now()
		fmt.Fprintf(env.Stderr, "imdsguard-demo: starting moto_server and the CloudTrail stand-in, seeding %d instances...\n",
			copies*(len(demo.Kinds(now.UTC()))+len(demo.GroupKinds())))
		emulators, err := demo.Start(ctx, copies, now)
		if err != nil {
			return err
		}
		defer emulators.Stop()
		dir, err := os.MkdirTemp("", "imdsguard-demo-")
		if err != nil {
			return fmt.Errorf("making a scratch directory: %w", err)
		}
		defer os.RemoveAll(dir)
		if err := emulators.PointAWSAt(dir); err != nil {
			return err
		}
		v := newView(env.Stdout, verbose, copies, emulators.Fleet)

		if f != report.FormatTable {
			// For machines: the plan exactly as `imdsguard plan --format` writes it.
			if code := cli.Main(ctx, []string{"plan", "--region", demo.Region, "--format", string(f)}, env); code != cli.ExitOK {
				return cli.ExitCodeError{Code: code}
			}
		} else {
			v.intro()
			// The plan is read back from its JSON, to be shown in the demo's order and size.
			path := filepath.Join(dir, "plan.json")
			if code := cli.Main(ctx, []string{"plan", "--region", demo.Region, "--format", "json", "--output", path}, env); code != cli.ExitOK {
				return cli.ExitCodeError{Code: code}
			}
			plan, err := readPlan(path)
			if err != nil {
				return err
			}
			if err := v.plan(plan); err != nil {
				return err
			}
		}
		if pipeline {
			var p demo.Pipeline
			if err := emulators.RunPipeline(ctx, now, &p); err != nil {
				return err
			}
			if err := v.pipeline(&p); err != nil {
				return err
			}
			v.tickets(&p)
			v.safetyNet(&p)
		}
		if f == report.FormatTable {
			v.next()
		}
		return nil
	}
	fl := cmd.Flags()
	fl.IntVar(&copies, "copies", 2, "instances of each kind to seed, from 1 to 50")
	fl.BoolVar(&pipeline, "pipeline", true, "after the plan, run the detect and remediate pipeline on the fleet (--pipeline=false: the plan only)")
	fl.StringVar(&format, "format", string(report.FormatTable),
		"table: the demo's view of the plan; json, csv or markdown: the plan as imdsguard plan writes it, for machines")
	fl.BoolVarP(&verbose, "verbose", "v", false, "print everything: the plan of every instance, every outcome, a whole ticket")
	return cmd
}

// projectVenv is the project's virtual environment's bin folder, where `make moto`
// installs moto_server, when moto_server is not on the PATH but is there: the demo is
// bin/imdsguard-demo, and the environment .venv next to bin. Make puts it on the PATH for
// `make demo`; this does the same for bin/imdsguard-demo run by hand. "" otherwise.
func projectVenv(executable func() (string, error), lookPath func(string) (string, error)) string {
	if _, err := lookPath(motoServer); err == nil {
		return ""
	}
	self, err := executable()
	if err != nil {
		return ""
	}
	dir := filepath.Join(filepath.Dir(filepath.Dir(self)), ".venv", "bin")
	if fi, err := os.Stat(filepath.Join(dir, motoServer)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return ""
	}
	return dir
}

// motoServer is the program fakeaws.StartMoto runs.
const motoServer = "moto_server"

// readPlan reads the plan document `imdsguard plan --format json` wrote.
func readPlan(path string) (*report.Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the plan: %w", err)
	}
	var p report.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("reading the plan %s: %w", path, err)
	}
	return &p, nil
}
