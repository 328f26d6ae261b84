package democmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imdsguard/imdsguard/internal/cli"
	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/report"
	"github.com/imdsguard/imdsguard/internal/testsupport"
	"github.com/imdsguard/imdsguard/internal/testsupport/fleetwant"
)

// The demo's output as a new user sees it: the program runs end to end against its own
// emulators (moto_server and the CloudTrail stand-in, started and stopped by it), as
// `make demo` runs it.

// runDemo runs imdsguard-demo with args and returns its exit code and output. The guard's
// settings come from their defaults only, whatever the environment says.
func runDemo(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if _, err := exec.LookPath("moto_server"); err != nil {
		if os.Getenv(testsupport.RequireMotoEnv) != "1" {
			t.Skipf("SKIPPING DEMO TEST: moto_server is not on the PATH (%v). Install it with `make moto`; "+
				"set %s=1 to make this a failure.", err, testsupport.RequireMotoEnv)
		}
		t.Fatalf("moto_server: %v", err)
	}
	// The demo points the standard AWS configuration of this process at its emulators.
	for k := range demo.AWSEnv("", "", "") {
		if v, ok := os.LookupEnv(k); ok {
			t.Setenv(k, v) // restored when the test ends
		} else {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	var out, errOut bytes.Buffer
	env := cli.Env{
		Stdout: &out, Stderr: &errOut, Now: time.Now,
		LookupEnv: func(k string) (string, bool) {
			if strings.HasPrefix(k, "IMDSGUARD_") {
				return "", false
			}
			return os.LookupEnv(k)
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	code = cli.Execute(ctx, Command(env), args, env)
	return code, out.String(), errOut.String()
}

// kinds are the names of the sample fleet's kinds, sorted.
func kinds() []string {
	var names []string
	for _, k := range append(demo.Kinds(time.Now().UTC()), demo.GroupKinds()...) {
		names = append(names, k.Name)
	}
	slices.Sort(names)
	return names
}

func codes(w fleetwant.Want) string {
	s := make([]string, len(w.Codes))
	for i, c := range w.Codes {
		s[i] = string(c)
	}
	return strings.Join(s, "+")
}

// section returns the lines from the first one that starts with from up to (not
// including) the next blank line.
func section(t *testing.T, lines []string, from string) []string {
	t.Helper()
	for i, l := range lines {
		if strings.HasPrefix(l, from) {
			end := slices.Index(lines[i:], "")
			if end < 0 {
				end = len(lines) - i
			}
			return lines[i : i+end]
		}
	}
	t.Fatalf("no line starts with %q", from)
	return nil
}

// TestDemoDefaultOutput: the default output fits 100 columns and about a screen, and
// holds the legend, every kind's verdict (so every verdict rule of the fleet), what the
// pipeline did, an example ticket and the command to run next.
func TestDemoDefaultOutput(t *testing.T) {
	code, stdout, stderr := runDemo(t)
	if code != cli.ExitOK {
		t.Fatalf("exit %d\nstderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	for i, l := range lines {
		if n := len([]rune(l)); n > Width {
			t.Errorf("line %d is %d columns wide (at most %d): %q", i+1, n, Width, l)
		}
	}
	// About one screen: 60 lines for the instances, and a few for their sources.
	if len(lines) > 70 {
		t.Errorf("%d lines, want at most 70 (about one screen):\n%s", len(lines), stdout)
	}
	// The start-up progress on stderr is short; the plan writes nothing there.
	if n := strings.Count(stderr, "\n"); n < 1 || n > 2 {
		t.Errorf("stderr has %d lines, want 1 or 2:\n%s", n, stderr)
	}

	// The legend: one line per action, in the summary's order, before the plan.
	plan := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "1. The plan") })
	if plan < 0 {
		t.Fatalf("no plan:\n%s", stdout)
	}
	var legendActions []string
	for _, l := range lines[:plan] {
		if f := strings.Fields(l); len(f) > 3 && slices.Contains(policy.Actions, policy.Action(f[0])) {
			legendActions = append(legendActions, f[0])
		}
	}
	if want := []string{"remediate", "ticket", "defer", "skip"}; !slices.Equal(legendActions, want) {
		t.Errorf("legend lines for %v, want %v:\n%s", legendActions, want, strings.Join(lines[:plan], "\n"))
	}

	// The plan: one row per kind, by name, with the verdict the kind must get, all reason
	// codes included.
	rows := section(t, lines, "KIND ")
	var seen []string
	for _, kind := range kinds() {
		want := fleetwant.For(kind)
		re := regexp.MustCompile(`^` + regexp.QuoteMeta(kind) + `\s+` + string(want.Action) + `\s+` + regexp.QuoteMeta(codes(want)) + `(:|$)`)
		i := slices.IndexFunc(rows, re.MatchString)
		if i < 0 {
			t.Errorf("no row for %s: %s %s:\n%s", kind, want.Action, codes(want), strings.Join(rows, "\n"))
			continue
		}
		seen = append(seen, fmt.Sprintf("%03d %s", i, kind))
	}
	if !slices.IsSorted(seen) {
		t.Errorf("plan rows not by name: %v", seen)
	}
	summary := rows[len(rows)-1]
	counts := map[policy.Action]int{}
	for _, k := range kinds() {
		counts[fleetwant.For(k).Action] += 2
	}
	// The sources, after the plan: the clean group's template is fixed, the other's
	// ticketed.
	sources := strings.Join(strings.Fields(strings.Join(section(t, lines, "SOURCE "), " ")), " ")
	for _, want := range []string{"template web-lt fix optional: none of its 2 instances uses IMDSv1", "template batch-lt ticket optional:",
		"account defaults defer no preference:"} {
		if !strings.Contains(sources, want) {
			t.Errorf("the plan's sources lack %q: %s", want, sources)
		}
	}
	if want := fmt.Sprintf("%d remediate, %d ticket, %d defer, %d skip (%d instances)",
		counts[policy.ActionRemediate], counts[policy.ActionTicket], counts[policy.ActionDefer], counts[policy.ActionSkip],
		2*len(kinds())); !strings.HasPrefix(summary, want) {
		t.Errorf("plan summary %q, want it to start %q", summary, want)
	}

	// The pipeline: counts by result, the enforced kinds with their new options (the
	// fleet's targets), and that all went as planned.
	pipeline := strings.Join(strings.Fields(strings.Join(section(t, lines, "2. "), " ")), " ")
	if want := fmt.Sprintf("remediate: %d enforced, %d ticketed, %d deferred.",
		counts[policy.ActionRemediate], counts[policy.ActionTicket], counts[policy.ActionDefer]); !strings.Contains(pipeline, want) {
		t.Errorf("pipeline summary lacks %q: %s", want, pipeline)
	}
	if !strings.HasSuffix(pipeline, "All as planned.") {
		t.Errorf("pipeline summary does not say all went as planned: %s", pipeline)
	}
	checkEnforced(t, pipeline)
	for _, want := range []string{"template batch-lt ticketed, unchanged (asg-batch-v1-1 and asg-batch-v1-2 still use IMDSv1)",
		"template web-lt fixed (new default version 2, HttpTokens required)"} {
		if !strings.Contains(pipeline, want) {
			t.Errorf("the pipeline does not say %q: %s", want, pipeline)
		}
	}

	// The safety net: one enforcement breaks, and is put back; the others are verified.
	net := strings.Join(strings.Fields(strings.Join(section(t, lines, "4. "), " ")), " ")
	if want := fmt.Sprintf("verify watched %[1]d enforced instances: %[2]d verified, 1 rolled back. web-1 broke (EC2 rejected 3 IMDSv1 calls): it is back to HttpTokens optional, hop limit 2",
		counts[policy.ActionRemediate], counts[policy.ActionRemediate]-1); !strings.Contains(net, want) {
		t.Errorf("the safety net lacks %q: %s", want, net)
	}

	// The example ticket: the subject and the start of the body, shortened.
	ticket := section(t, lines, "3. ")
	// Every instance ticket, and the ticket of the launch template one of whose
	// instances still uses IMDSv1 (batch-lt).
	if want := fmt.Sprintf("3. One of the %d tickets on the notifications topic", counts[policy.ActionTicket]+1); !strings.HasPrefix(ticket[0], want) {
		t.Errorf("ticket heading %q, want %q", ticket[0], want)
	}
	if len(ticket) < 6 || len(ticket) > 17 {
		t.Errorf("example ticket of %d lines, want about 15:\n%s", len(ticket), strings.Join(ticket, "\n"))
	}
	for _, want := range []string{"  Subject: IMDSv1 still used on i-", "  == Why ==", "  == What to do ==", "--verbose",
		"  and the template's: IMDSv1 kept alive by launch-template lt-"} {
		if !slices.ContainsFunc(ticket, func(l string) bool { return strings.Contains(l, want) }) {
			t.Errorf("example ticket lacks %q:\n%s", want, strings.Join(ticket, "\n"))
		}
	}

	// What to run next, last.
	if next := section(t, lines, "Next, "); !slices.Contains(next, "   AWS_PROFILE=<profile> bin/imdsguard plan --region <region>") || lines[len(lines)-1] != next[len(next)-1] {
		t.Errorf("the next command is not at the end:\n%s", strings.Join(next, "\n"))
	}
}

// checkEnforced reads "Now HttpTokens=required with hop limit 1: a, b; 2: c; hop limit
// 1, endpoint left disabled: d." and checks each remediated kind is
// named once, with its target options.
func checkEnforced(t *testing.T, pipeline string) {
	t.Helper()
	_, enforced, ok := strings.Cut(pipeline, ". Now ")
	enforced, _, _ = strings.Cut(enforced, ".")
	if !ok {
		t.Fatalf("no enforced options: %s", pipeline)
	}
	got := map[string]string{}
	tokens := ""
	number := regexp.MustCompile(`\d+`)
	for _, group := range strings.Split(enforced, "; ") {
		label, names, ok := strings.Cut(group, ": ")
		if !ok {
			t.Fatalf("group %q has no kinds", group)
		}
		if tok, _, found := strings.Cut(strings.TrimPrefix(label, "HttpTokens="), " "); strings.HasPrefix(label, "HttpTokens=") && found {
			tokens = tok
		}
		hop, _ := strconv.Atoi(number.FindString(label))
		endpoint := policy.EndpointEnabled
		if strings.Contains(label, "endpoint left disabled") {
			endpoint = policy.EndpointDisable
		}
		for _, name := range strings.Split(names, ", ") {
			if _, twice := got[name]; twice {
				t.Errorf("%s named twice: %s", name, enforced)
			}
			got[name] = fmt.Sprintf("%s hop %d endpoint %s", tokens, hop, endpoint)
		}
	}
	want := map[string]string{}
	for _, kind := range kinds() {
		if w := fleetwant.For(kind); w.Action == policy.ActionRemediate {
			want[kind] = fmt.Sprintf("%s hop %d endpoint %s", w.Target.HTTPTokens, w.Target.HopLimit, w.Target.HTTPEndpoint)
		}
	}
	for kind, w := range want {
		if got[kind] != w {
			t.Errorf("%s enforced with %q, want %q: %s", kind, got[kind], w, enforced)
		}
	}
	for kind := range got {
		if _, ok := want[kind]; !ok {
			t.Errorf("%s is said to be enforced; it must not be: %s", kind, enforced)
		}
	}
}

// TestDemoVerbose: --verbose lists every instance, in the plan table and in the table of
// outcomes, in the same order (by name, then id), and prints a whole ticket.
func TestDemoVerbose(t *testing.T) {
	code, stdout, stderr := runDemo(t, "--verbose", "--copies", "1")
	if code != cli.ExitOK {
		t.Fatalf("exit %d\nstderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	lines := strings.Split(stdout, "\n")
	var want []string
	for _, k := range kinds() {
		want = append(want, k+"-1")
	}
	// The plan table: INSTANCE NAME STATE ...; the outcomes: INSTANCE NAME ACTION ...
	names := func(header string) []string {
		var out []string
		for _, row := range section(t, lines, header)[1:] {
			if f := strings.Fields(row); len(f) > 1 {
				out = append(out, f[1])
			}
		}
		return out
	}
	planned, outcomes := names("INSTANCE             NAME                   STATE"), names("INSTANCE             NAME                   ACTION")
	if !slices.Equal(planned, want) {
		t.Errorf("plan table lists %v, want every instance by name %v", planned, want)
	}
	if !slices.Equal(outcomes, want) {
		t.Errorf("outcomes list %v, want every instance by name %v", outcomes, want)
	}
	for _, w := range []string{"Why:", "== Software still using IMDSv1 ==", "== What to do ==", "Not a dry run."} {
		if !strings.Contains(stdout, w) {
			t.Errorf("verbose output lacks %q", w)
		}
	}
	if strings.Contains(stdout, "more lines") {
		t.Error("verbose output shortened the ticket")
	}
}

// TestDemoFormatJSON: with a format for machines the plan is exactly what `imdsguard plan`
// writes, with nothing around it.
func TestDemoFormatJSON(t *testing.T) {
	code, stdout, stderr := runDemo(t, "--format", "json", "--pipeline=false", "--copies", "1")
	if code != cli.ExitOK {
		t.Fatalf("exit %d\nstderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	var p report.Plan
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("stdout is not a plan: %v\n%s", err, stdout)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Errorf("more than the plan on stdout (%v):\n%s", err, stdout)
	}
	if len(p.Instances) != len(kinds()) {
		t.Errorf("%d instances in the plan, want %d", len(p.Instances), len(kinds()))
	}
}

// TestDemoMisuse: bad flags stop before any emulator starts, with exit code 2.
func TestDemoMisuse(t *testing.T) {
	for _, args := range [][]string{{"--copies", "0"}, {"--copies", "51"}, {"--format", "xml"}, {"extra"}, {"--no-such-flag"}} {
		var out, errOut bytes.Buffer
		env := cli.Env{Stdout: &out, Stderr: &errOut, Now: time.Now, LookupEnv: os.LookupEnv}
		if code := cli.Execute(context.Background(), Command(env), args, env); code != cli.ExitUsage || out.Len() != 0 ||
			strings.Contains(errOut.String(), "starting moto_server") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 before anything starts", args, code, out.String(), errOut.String())
		}
	}
}
