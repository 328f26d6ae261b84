package fakeaws

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// BuildLambda builds the main package pkg as Lambda's provided.al2023 runtime expects it,
// but for the host platform: BuildBinary into outDir/bootstrap with the tag lambda.norpc.
// pkg is an import path or a path relative to the module root ("./functions/detect"). It
// returns the absolute path of the binary.
func BuildLambda(ctx context.Context, pkg, outDir string) (string, error) {
	return BuildBinary(ctx, pkg, filepath.Join(outDir, "bootstrap"), "-tags", "lambda.norpc")
}

// BuildBinary builds the main package pkg for the host into out, from the module root
// (found by walking up from the working directory to go.mod), with CGO_ENABLED=0 and
// -trimpath as every imdsguard binary is built, and the extra go build flags given. One
// build configuration for every binary a test builds means the packages they share are
// compiled once: a build with cgo would compile the whole SDK again. It returns the
// absolute path of the binary.
func BuildBinary(ctx context.Context, pkg, out string, flags ...string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	if out, err = filepath.Abs(out); err != nil {
		return "", err
	}
	// `go test` puts its own toolchain first on PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	args := append(append([]string{"build", "-trimpath", "-buildvcs=false"}, flags...), "-o", out, pkg)
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	cmd.WaitDelay = lambdaWaitDelay
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// moduleRoot is the nearest directory at or above the working directory with a go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !fi.IsDir() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}
