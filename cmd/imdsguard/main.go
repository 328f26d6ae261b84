// Command imdsguard moves EC2 instances to IMDSv2-only where IMDSv1 is provably unused.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/imdsguard/imdsguard/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.OSEnv(term.IsTerminal(int(os.Stderr.Fd()))))
	stop()
	os.Exit(code)
}
