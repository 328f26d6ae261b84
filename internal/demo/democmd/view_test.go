package democmd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrap(t *testing.T) {
	text := "detect judged 46 instances, queued 36 verdicts; remediate: 12 enforced, 10 ticketed, " +
		"14 deferred, and https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/use-a-supported-sdk-version-for-imdsv2.html"
	for _, width := range []int{20, 37, 60, 97} {
		lines := wrap(text, width, "  ")
		if got := strings.Join(strings.Fields(strings.Join(lines, " ")), " "); strings.ReplaceAll(got, " ", "") != strings.ReplaceAll(text, " ", "") {
			t.Errorf("width %d: the words changed: %q", width, got)
		}
		for i, l := range lines {
			if n := runes(l); n > width {
				t.Errorf("width %d: line %d is %d wide: %q", width, i, n, l)
			}
			if i > 0 && !strings.HasPrefix(l, "  ") {
				t.Errorf("width %d: line %d does not hang: %q", width, i, l)
			}
		}
		if width >= 60 && len(lines) > (runes(text)+width-1)/(width-10)+1 {
			t.Errorf("width %d: %d lines for %d characters", width, len(lines), runes(text))
		}
	}
	if got := wrap("", 10, "  "); len(got) != 1 || got[0] != "" {
		t.Errorf("empty text: %q", got)
	}
}

func TestExcerpt(t *testing.T) {
	long := strings.Repeat("word ", 40)
	body := "Title\n\n== Why ==\n" + long + "\n\nsecond paragraph\n\n== Evidence ==\n- one\n- two\n- three\n\n" +
		"== Software ==\nUser agents:\n- agent/1.0\n    - upgrade agent from 1.0 to 2.0\n\n== What to do ==\n- fix\n- trace\n- recheck\n\nDecision x."
	for _, n := range []int{8, 11, 15, 40} {
		lines := excerpt("Title", body, 60, n)
		if len(lines) > n {
			t.Errorf("n %d: %d lines:\n%s", n, len(lines), strings.Join(lines, "\n"))
		}
		for _, l := range lines {
			if runes(l) > 60 {
				t.Errorf("n %d: line wider than 60: %q", n, l)
			}
		}
		for _, h := range []string{"Subject: Title", "== Why ==", "== Evidence ==", "== Software ==", "== What to do =="} {
			if !strings.Contains(strings.Join(lines, "\n"), h) {
				t.Errorf("n %d: no %q:\n%s", n, h, strings.Join(lines, "\n"))
			}
		}
		if strings.Contains(strings.Join(lines, "\n"), "User agents:") {
			t.Errorf("n %d: the line introducing a list is kept", n)
		}
	}
	// With room for every section's first item: the nested line stays with its item.
	lines := excerpt("Title", body, 60, 11)
	joined := strings.Join(lines, "\n")
	for _, want := range []string{"- one", "- agent/1.0\n  - upgrade agent from 1.0 to 2.0", "- fix", "[... 6 more lines"} {
		if !strings.Contains(joined, want) {
			t.Errorf("11 lines lack %q:\n%s", want, joined)
		}
	}
	// All of it when there is room: nothing is said to be left out.
	if all := strings.Join(excerpt("Title", body, 300, 40), "\n"); strings.Contains(all, "more lines") || !strings.Contains(all, "Decision x.") {
		t.Errorf("40 lines: %s", all)
	}
	// A body without headings is cut after n lines.
	var plain []string
	for i := range 30 {
		plain = append(plain, fmt.Sprintf("line %d", i))
	}
	if got := excerpt("S", strings.Join(plain, "\n"), 60, 5); len(got) != 5 || !strings.HasPrefix(got[len(got)-1], "[... 27 more lines;") {
		t.Errorf("plain body: %q", got)
	}
}

func TestProjectVenv(t *testing.T) {
	root := t.TempDir()
	self := filepath.Join(root, "bin", "imdsguard-demo")
	venv := filepath.Join(root, ".venv", "bin")
	executable := func() (string, error) { return self, nil }
	missing := func(string) (string, error) { return "", exec.ErrNotFound }
	onPath := func(string) (string, error) { return "/usr/bin/moto_server", nil }

	if got := projectVenv(executable, missing); got != "" {
		t.Errorf("no .venv: %q", got)
	}
	if err := os.MkdirAll(venv, 0o755); err != nil {
		t.Fatal(err)
	}
	moto := filepath.Join(venv, "moto_server")
	if err := os.WriteFile(moto, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := projectVenv(executable, missing); got != "" {
		t.Errorf("moto_server in .venv not executable: %q", got)
	}
	if err := os.Chmod(moto, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := projectVenv(executable, missing); got != venv {
		t.Errorf("moto_server in .venv: %q, want %q", got, venv)
	}
	if got := projectVenv(executable, onPath); got != "" {
		t.Errorf("moto_server on the PATH already: %q", got)
	}
}
