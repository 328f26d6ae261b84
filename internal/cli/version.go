package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version, when set at link time, is the version imdsguard reports, ahead of what the
// build info says: a release build can stamp its tag with
//
//	go build -ldflags "-X github.com/imdsguard/imdsguard/internal/cli.version=v1.2.3" ./cmd/imdsguard
var version string

// Version is imdsguard's version: the one set at link time, else the main module's
// version (as `go install ...@v1.2.3` stamps it), else the VCS revision the binary was
// built from ("-dirty" when the work tree had changes), else "devel".
func Version() string {
	if version != "" {
		return version
	}
	info, _ := debug.ReadBuildInfo()
	return versionFrom(info)
}

// versionFrom reads the version from build info (nil when there is none).
func versionFrom(info *debug.BuildInfo) string {
	if info == nil {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var revision string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if revision == "" {
		return "devel"
	}
	if modified {
		revision += "-dirty"
	}
	return revision
}

func newVersionCommand(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print imdsguard's version",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(env.Stdout, "imdsguard", Version())
			return err
		},
	}
}
