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
	// The first SIGINT or SIGTERM cancels ctx: the command winds down, writes nothing
	// half-done and exits 130. Cancelling also restores the default signal handling, so a
	// second signal ends the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	code := cli.Main(ctx, os.Args[1:], cli.OSEnv(term.IsTerminal(int(os.Stderr.Fd()))))
	stop()
	os.Exit(code)
}
