//go:build !unix

package fakeaws

import "os/exec"

func setProcessGroup(*exec.Cmd) {}

// signalGroup: without process groups only the direct child can be killed.
func signalGroup(cmd *exec.Cmd, _ bool) { _ = cmd.Process.Kill() }
