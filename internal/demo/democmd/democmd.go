// Package democmd is the demo program's command (cmd/imdsguard-demo, also run by
// `imdsguard demo`). It is apart from package demo, which the CLI's tests use to seed
// their fleets, because it runs the CLI itself.
package democmd

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/cli"
	"github.com/imdsguard/imdsguard/internal/demo"
)

// Command is the demo program (cmd/imdsguard-demo, also run by `imdsguard demo`): it
// starts the emulators, seeds the sample fleet, runs `imdsguard plan` against it exactly
// as against a real account, then the deployed pipeline, and stops the emulators. It is a
// program of its own so that the imdsguard CLI links none of the stand-ins.
func Command(env cli.Env) *cobra.Command {
	var copies int
	var format string
	var pipeline bool
	cmd := cli.NewRoot("imdsguard-demo", "Run imdsguard plan against a sample fleet in local AWS emulators",
		"imdsguard-demo starts moto_server and a CloudTrail stand-in on loopback ports, seeds a sample fleet\n"+
			"with one kind of instance per verdict rule, runs `imdsguard plan` against it exactly as\n"+
			"against a real account (through AWS_ENDPOINT_URL) and prints the plan; then runs the\n"+
			"detect and remediate pipeline on the fleet in enforce mode, and stops the emulators.\n"+
			"No real AWS account is touched.", env)
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
		ctx := cmd.Context()
		now := env.Now()
		fmt.Fprintln(env.Stderr, "starting moto_server and the CloudTrail stand-in, seeding the sample fleet...")
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
		fmt.Fprintf(env.Stderr, "seeded %d instances; running: imdsguard plan --region %s --format %s\n\n",
			len(emulators.Fleet), demo.Region, format)
		if code := cli.Main(ctx, []string{"plan", "--region", demo.Region, "--format", format}, env); code != cli.ExitOK || !pipeline {
			if code != cli.ExitOK {
				return cli.ExitCodeError{Code: code}
			}
			return nil
		}
		fmt.Fprintf(env.Stdout, "\nNow the deployed pipeline, in enforce mode against the emulators: "+
			"a scheduled sweep to detect, verdicts through the remediation queue to remediate.\n\n")
		return emulators.RunPipeline(ctx, now, env.Stdout)
	}
	cmd.Flags().IntVar(&copies, "copies", 2, "instances of each kind to seed")
	cmd.Flags().BoolVar(&pipeline, "pipeline", true, "after the plan, run the detect and remediate pipeline on the fleet")
	cmd.Flags().StringVar(&format, "format", "table", "plan output format: table, json, csv or markdown")
	return cmd
}
