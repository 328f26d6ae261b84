package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/demo"
)

func newDemoCommand(env Env) *cobra.Command {
	var copies int
	var format string
	var pipeline bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run imdsguard plan against a sample fleet in local AWS emulators",
		Long: "demo starts moto_server and a CloudTrail stand-in on loopback ports, seeds a sample fleet\n" +
			"with one kind of instance per verdict rule, runs `imdsguard plan` against it exactly as\n" +
			"against a real account (through AWS_ENDPOINT_URL) and prints the plan; then runs the\n" +
			"detect and remediate pipeline on the fleet in enforce mode, and stops the emulators.\n" +
			"No real AWS account is touched.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if copies < 1 || copies > 50 {
				return usagef("--copies must be from 1 to 50, got %d", copies)
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
			plan := newRoot(env)
			plan.SetArgs([]string{"plan", "--region", demo.Region, "--format", format})
			if err := plan.ExecuteContext(ctx); err != nil || !pipeline {
				return err
			}
			fmt.Fprintf(env.Stdout, "\nNow the deployed pipeline, in enforce mode against the emulators: "+
				"a scheduled sweep to detect, verdicts through the remediation queue to remediate.\n\n")
			return emulators.RunPipeline(ctx, now, env.Stdout)
		},
	}
	cmd.Flags().IntVar(&copies, "copies", 2, "instances of each kind to seed")
	cmd.Flags().BoolVar(&pipeline, "pipeline", true, "after the plan, run the detect and remediate pipeline on the fleet")
	cmd.Flags().StringVar(&format, "format", "table", "plan output format: table, json, csv or markdown")
	return cmd
}
