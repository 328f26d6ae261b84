// Command imdsguard-demo plans and remediates a sample fleet in local AWS emulators; it
// touches no AWS account. `make demo` runs it, and so does `imdsguard demo`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/imdsguard/imdsguard/internal/cli"
	"github.com/imdsguard/imdsguard/internal/demo/democmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env := cli.OSEnv(term.IsTerminal(int(os.Stderr.Fd())))
	code := cli.Execute(ctx, democmd.Command(env), os.Args[1:], env)
	stop()
	os.Exit(code)
}
