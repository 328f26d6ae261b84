package democmd

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/imdsguard/imdsguard/internal/demo"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/report"
)

// Width is the widest line of the demo's default output, in columns: it fits a terminal
// of 100 columns, and the whole of it about one screen.
const Width = 100

// legend says what each action means, one line each, in the plan summary's order.
var legend = []struct {
	action policy.Action
	means  string
}{
	{policy.ActionRemediate, "IMDSv1 is provably unused: require IMDSv2 (HttpTokens=required), set the hop limit"},
	{policy.ActionTicket, "IMDSv1 is still in use: open a ticket naming the caller and the fix; change nothing"},
	{policy.ActionDefer, "evidence missing, too short, stale or unreadable (no datapoint is not a zero): wait"},
	{policy.ActionSkip, "nothing to do: the instance is gone, already IMDSv2-only, or exempt by its tag"},
}

// view prints the demo for people: by default a screenful, with --verbose everything.
type view struct {
	w       io.Writer
	verbose bool
	copies  int
	fleet   []demo.Seeded
	// kindOf is the kind of each seeded instance, by id.
	kindOf map[string]string
	// planned is the plan's verdict of each instance, by id; nil when the plan was printed
	// in a format for machines and not read back.
	planned map[string]report.Instance
	// hinted is set once the output has said how to see everything (--verbose).
	hinted bool
}

func newView(w io.Writer, verbose bool, copies int, fleet []demo.Seeded) *view {
	v := &view{w: w, verbose: verbose, copies: copies, fleet: fleet, kindOf: map[string]string{}}
	for _, s := range fleet {
		v.kindOf[s.ID] = s.Kind.Name
	}
	return v
}

// byNameThenID is the order of every list of instances in the demo.
func byNameThenID(nameA, idA, nameB, idB string) int {
	return cmp.Or(cmp.Compare(nameA, nameB), cmp.Compare(idA, idB))
}

func (v *view) printf(format string, args ...any) { fmt.Fprintf(v.w, format, args...) }

// intro names what runs and where, and the legend of the four actions.
func (v *view) intro() {
	kinds := len(v.fleet) / max(v.copies, 1)
	v.wrapped("", fmt.Sprintf("imdsguard demo: %d instances (%d kinds x %d) in local AWS emulators; no AWS account is touched.",
		len(v.fleet), kinds, v.copies))
	for _, l := range legend {
		v.printf("  %-9s  %s\n", l.action, l.means)
	}
	v.printf("\n")
}

// plan prints the plan: one row per kind of instance (per verdict, should the copies of
// a kind ever disagree), or with --verbose the whole plan table.
func (v *view) plan(p *report.Plan) error {
	v.planned = map[string]report.Instance{}
	for _, in := range p.Instances {
		v.planned[in.InstanceID] = in
	}
	if v.verbose {
		v.printf("1. The plan: imdsguard plan --region %s --format json (read-only), every instance:\n\n", demo.Region)
		return report.WriteTableSorted(v.w, p, func(a, b report.Instance) int {
			return byNameThenID(a.Name, a.InstanceID, b.Name, b.InstanceID)
		})
	}
	v.printf("1. The plan: imdsguard plan --region %s --format json (read-only), one row per kind:\n", demo.Region)
	type row struct{ kind, action, why string }
	counts := map[row]int{}
	for _, in := range p.Instances {
		kind, ok := v.kindOf[in.InstanceID]
		if !ok {
			kind = cmp.Or(in.Name, in.InstanceID)
		}
		counts[row{kind, string(in.Action), why(in, p.Settings, p.GeneratedAt)}]++
	}
	rows := slices.SortedFunc(maps.Keys(counts), func(a, b row) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.action, b.action), cmp.Compare(a.why, b.why))
	})
	perKind := map[string]int{}
	for r, n := range counts {
		perKind[r.kind] += n
	}
	cells := make([][3]string, 0, len(rows)+1)
	cells = append(cells, [3]string{"KIND", "ACTION", "REASON: EVIDENCE"})
	for _, r := range rows {
		kind := r.kind
		if n := counts[r]; n != perKind[r.kind] || n != v.copies {
			kind = fmt.Sprintf("%s (%d)", kind, n)
		}
		cells = append(cells, [3]string{kind, r.action, r.why})
	}
	v.columns(cells)
	v.wrapped("", summary(p))
	v.sources(p)
	return nil
}

// sources prints the plan's sources, what launches the instances, one row each (AMIs
// with --verbose only, where the plan table has them all).
func (v *view) sources(p *report.Plan) {
	if v.verbose {
		return
	}
	rows := [][3]string{{"SOURCE", "ACTION", "LAUNCHES: WHY"}}
	for _, s := range p.Sources {
		if s.Kind == policy.SourceAMI || len(s.Reasons) == 0 {
			continue
		}
		label := "template " + cmp.Or(s.Name, s.ID)
		if s.Kind == policy.SourceAccountDefaults {
			label = "account defaults"
		}
		launches := "no preference"
		if s.Launches != nil {
			launches = s.Launches.HTTPTokens
		}
		rows = append(rows, [3]string{label, string(s.Action), launches + ": " + sourceWhy(s)})
	}
	if len(rows) == 1 {
		return
	}
	v.printf("\n")
	v.columns(rows)
}

// sourceWhy is a source's reason, short: the instances it names by their kind.
func sourceWhy(s report.Source) string {
	switch s.Action {
	case policy.SourceFix:
		return fmt.Sprintf("none of its %d instances uses IMDSv1", len(s.Instances))
	case policy.SourceTicket:
		if s.Reasons[0].Code == policy.ReasonSourceIMDSv1Used {
			return fmt.Sprintf("some of its %d instances still use IMDSv1", len(s.Instances))
		}
	case policy.SourceDefer:
		if s.Kind == policy.SourceAccountDefaults {
			return "until every instance is compliant or verified"
		}
	}
	detail := s.Reasons[0].Detail
	if len(detail) > 60 {
		detail = detail[:57] + "..."
	}
	return detail
}

// columns prints rows of three cells: the first two aligned, the third wrapped in the
// columns left.
func (v *view) columns(rows [][3]string) {
	var w0, w1 int
	for _, r := range rows {
		w0, w1 = max(w0, runes(r[0])), max(w1, runes(r[1]))
	}
	indent := strings.Repeat(" ", w0+2+w1+2)
	for _, r := range rows {
		lead := pad(r[0], w0) + "  " + pad(r[1], w1) + "  "
		for i, line := range wrap(r[2], Width-len(indent), "  ") {
			if i == 0 {
				v.printf("%s%s\n", lead, line)
			} else {
				v.printf("%s%s\n", indent, line)
			}
		}
	}
}

// wrapped prints text wrapped to Width, each line after indent.
func (v *view) wrapped(indent, text string) {
	for _, line := range wrap(text, Width-runes(indent), "") {
		v.printf("%s%s\n", indent, line)
	}
}

// summary counts the plan's actions and its API calls.
func summary(p *report.Plan) string {
	var actions []string
	for _, a := range policy.Actions {
		actions = append(actions, fmt.Sprintf("%d %s", p.Summary.Count(a), a))
	}
	calls := 0
	for _, n := range p.APICalls {
		calls += n
	}
	return fmt.Sprintf("%s (%d instances), from %d AWS API calls.", strings.Join(actions, ", "), len(p.Instances), calls)
}

// why is an instance's reason codes (primary first, as the plan table joins them) and
// the evidence behind the primary, short enough for one row of the compact plan.
func why(in report.Instance, s report.Settings, now time.Time) string {
	codes := make([]string, len(in.Reasons))
	for i, r := range in.Reasons {
		codes[i] = string(r.Code)
	}
	text := strings.Join(codes, "+")
	if e := evidence(in, s, now); e != "" {
		text += ": " + e
	}
	return text
}

var apiError = regexp.MustCompile(`api error ([A-Za-z]+)`)

// evidence is the evidence behind an instance's primary reason in a few words.
func evidence(in report.Instance, s report.Settings, now time.Time) string {
	if len(in.Reasons) == 0 {
		return ""
	}
	primary, e := in.Reasons[0], in.Evidence
	lookback := int(s.Lookback / time.Hour)
	switch primary.Code {
	case policy.ReasonTerminated:
		if in.Current == nil {
			return "not found"
		}
	case policy.ReasonCompliant:
		return "HttpTokens is already required"
	case policy.ReasonExempt:
		// "tag imdsguard:exempt=2026-11-22 exempts the instance until ...": the tag.
		if tag, ok := strings.CutPrefix(primary.Detail, "tag "); ok {
			tag, _, _ = strings.Cut(tag, " ")
			if _, value, _ := strings.Cut(tag, "="); value == now.UTC().Format(time.DateOnly) {
				return "tag " + tag + ", until today ends (UTC)"
			}
			return "tag " + tag
		}
	case policy.ReasonEndpointDisabled:
		return report.JoinNonEmpty("endpoint disabled (and left so)", hops(in))
	case policy.ReasonNotRunning:
		return in.State + "; usage is judged only while it runs"
	case policy.ReasonIMDSv1UsedMetric:
		if e.MetadataNoTokenSum != nil {
			text := number(*e.MetadataNoTokenSum) + " IMDSv1 calls"
			if e.LastV1Use != nil {
				text += ", the last " + shortTime(*e.LastV1Use, now)
			}
			return text
		}
	case policy.ReasonInsufficientMetrics:
		if e.ObservedHours != nil {
			return fmt.Sprintf("only %d of the %d hours needed observed", *e.ObservedHours, s.MinObservedHours)
		}
	case policy.ReasonStaleMetrics:
		if e.LastDatapoint != nil {
			return fmt.Sprintf("newest datapoint %s old (more than %s)", policy.ShortDuration(now.Sub(*e.LastDatapoint)), policy.ShortDuration(s.MaxMetricStaleness))
		}
		return fmt.Sprintf("no datapoint in %dh", lookback)
	case policy.ReasonIMDSv1UsedCloudTrail:
		ct := e.CloudTrail
		if hasReason(in, policy.ReasonPossibleCredentialTheft) && len(ct.SourceIPs) > 0 {
			return "from " + strings.Join(ct.SourceIPs, ", ")
		}
		if len(ct.UserAgents) > 0 {
			agent, _, _ := strings.Cut(ct.UserAgents[0], " ")
			return "credentials used by " + agent
		}
		return fmt.Sprintf("%d IMDSv1 credential deliveries", ct.V1Deliveries)
	case policy.ReasonCloudTrailUnavailable:
		switch m := apiError.FindStringSubmatch(primary.Detail); {
		case m != nil:
			return "CloudTrail said " + m[1]
		case strings.Contains(primary.Detail, "malformed"):
			return "CloudTrail has a malformed event"
		}
		return "CloudTrail could not be read"
	case policy.ReasonIMDSv1Unused:
		if e.MetadataNoTokenSum != nil && e.ObservedHours != nil {
			return report.JoinNonEmpty(fmt.Sprintf("%s IMDSv1 calls in %dh", number(*e.MetadataNoTokenSum), *e.ObservedHours), hops(in))
		}
	default:
		return primary.Detail
	}
	return ""
}

// hops is the hop limit a remediation sets: "hop 2->1", or on a container host whose
// hop limit stays, "hop 3 kept".
func hops(in report.Instance) string {
	switch {
	case in.Current == nil || in.Target == nil:
		return ""
	case in.Current.HopLimit != in.Target.HopLimit:
		return fmt.Sprintf("hop %d->%d", in.Current.HopLimit, in.Target.HopLimit)
	case hasReason(in, policy.ReasonContainerHost):
		return fmt.Sprintf("hop %d kept", in.Target.HopLimit)
	}
	return ""
}

func hasReason(in report.Instance, code policy.ReasonCode) bool {
	return slices.ContainsFunc(in.Reasons, func(r policy.Reason) bool { return r.Code == code })
}

// pipeline prints what the deployed pipeline did: counts by result and the enforced
// instances' new options, checked against the plan; with --verbose every outcome.
func (v *view) pipeline(p *demo.Pipeline) error {
	v.printf("\n2. The deployed pipeline, in enforce mode: sweep -> detect -> queue -> remediate -> ledger\n")
	counts := map[string]int{}
	for _, o := range p.Outcomes {
		if o.Last != nil {
			counts[o.Last.Result]++
		}
	}
	var results []string
	for _, r := range resultOrder(counts) {
		results = append(results, fmt.Sprintf("%d %s", counts[r], r))
	}
	handled := "remediate"
	if p.Handled != p.Queued {
		handled = fmt.Sprintf("remediate handled %d", p.Handled)
	}
	v.wrapped("   ", fmt.Sprintf("detect judged %d instances, queued %d verdicts; %s: %s.",
		p.Judged, p.Queued, handled, strings.Join(results, ", ")))
	v.wrapped("   ", strings.TrimSpace(v.sourceOutcomes(p)+" "+v.enforced(p)+" "+v.asPlanned(p)))
	if !v.verbose {
		return nil
	}
	v.printf("\n")
	outcomes := slices.Clone(p.Outcomes)
	slices.SortFunc(outcomes, func(a, b demo.Outcome) int { return byNameThenID(a.Name, a.ID, b.Name, b.ID) })
	tw := tabwriter.NewWriter(v.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tNAME\tACTION\tRESULT\tNOW")
	for _, o := range outcomes {
		if o.Last == nil {
			fmt.Fprintf(tw, "%s\t%s\tskip\tnot queued\t-\n", o.ID, o.Name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.ID, o.Name, o.Last.Action, o.Last.Result, options(o.Last.Applied))
	}
	return tw.Flush()
}

var instanceIDs = regexp.MustCompile(`i-[0-9a-f]{8,17}`)

// sourceOutcomes says what became of the sources: a template fixed, one ticketed, with
// the instances that keep it so named.
func (v *view) sourceOutcomes(p *demo.Pipeline) string {
	names := map[string]string{}
	for _, s := range v.fleet {
		names[s.ID] = s.Name
	}
	var parts []string
	for _, s := range p.Sources {
		if s.Last == nil {
			continue
		}
		name := "template " + cmp.Or(s.Name, s.ID)
		if s.Kind == policy.SourceAccountDefaults {
			name = "the account defaults"
		}
		switch s.Last.Result {
		case ledger.ResultSourceFixed:
			if s.Kind == policy.SourceLaunchTemplate {
				parts = append(parts, fmt.Sprintf("%s fixed (new default version %d, HttpTokens required)", name, s.DefaultVersion))
			} else {
				parts = append(parts, name+" fixed (HttpTokens required)")
			}
		case ledger.ResultTicketed, ledger.ResultTicketUpdated, ledger.ResultTicketUnchanged:
			var users []string
			if len(s.Last.Reasons) > 0 {
				for _, id := range instanceIDs.FindAllString(s.Last.Reasons[0].Detail, -1) {
					users = append(users, cmp.Or(names[id], id))
				}
			}
			slices.Sort(users)
			parts = append(parts, fmt.Sprintf("%s ticketed, unchanged (%s still use IMDSv1)", name, strings.Join(users, " and ")))
		default:
			parts = append(parts, fmt.Sprintf("%s %s", name, s.Last.Result))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "Sources: " + strings.Join(parts, "; ") + "."
}

// safetyNet prints what verify did after the enforcements.
func (v *view) safetyNet(p *demo.Pipeline) {
	n := p.SafetyNet
	if n == nil {
		return
	}
	v.printf("\n4. The safety net: verify watches each enforcement (72h deployed, 1h here) and undoes breakage\n")
	line := fmt.Sprintf("verify watched %d enforced instances: %d verified, %d rolled back.", n.Summary.Watched, n.Summary.Verified, n.Summary.RolledBack)
	if n.Summary.RolledBack > 0 {
		what, _, _ := strings.Cut(n.Why, " after ")
		line += fmt.Sprintf(" %s broke (%s): it is back to HttpTokens %s, hop limit %d, ticketed, and not enforced again for a lookback.",
			n.Broke.Name, what, n.Tokens, n.HopLimit)
	}
	v.wrapped("   ", line)
}

// resultOrder lists the results counted: enforced, ticketed, deferred, then any other.
func resultOrder(counts map[string]int) []string {
	rank := func(r string) int {
		if i := slices.Index([]string{ledger.ResultEnforced, ledger.ResultTicketed, ledger.ResultDeferred}, r); i >= 0 {
			return i
		}
		return 3
	}
	return slices.SortedFunc(maps.Keys(counts), func(a, b string) int { return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a, b)) })
}

// options are metadata options as the pipeline table shows them: "required, hop 1".
func options(o *policy.MetadataOptions) string {
	if o == nil {
		return "-"
	}
	text := fmt.Sprintf("%s, hop %d", o.HTTPTokens, o.HopLimit)
	if o.HTTPEndpoint == policy.EndpointDisable {
		text += ", endpoint disabled"
	}
	return text
}

// enforced names the kinds of the enforced instances by the options they have now, as
// "Now HttpTokens=required with hop limit 1: web, ...; 2: eks-node; hop limit 1, endpoint
// left disabled: endpoint-off."
func (v *view) enforced(p *demo.Pipeline) string {
	type group struct {
		tokens   string
		hop      int32
		disabled bool
	}
	kinds := map[group]map[string]int{}
	perKind := map[string]int{}
	for _, s := range v.fleet {
		perKind[s.Kind.Name]++
	}
	for _, o := range p.Outcomes {
		if o.Last == nil || o.Last.Result != ledger.ResultEnforced || o.Last.Applied == nil {
			continue
		}
		a := o.Last.Applied
		g := group{a.HTTPTokens, a.HopLimit, a.HTTPEndpoint == policy.EndpointDisable}
		if kinds[g] == nil {
			kinds[g] = map[string]int{}
		}
		kinds[g][o.Kind.Name]++
	}
	if len(kinds) == 0 {
		return ""
	}
	groups := slices.SortedFunc(maps.Keys(kinds), func(a, b group) int {
		return cmp.Or(cmp.Compare(a.tokens, b.tokens), boolCompare(a.disabled, b.disabled), cmp.Compare(a.hop, b.hop))
	})
	var parts []string
	for i, g := range groups {
		var label string
		switch {
		case i == 0 || g.tokens != groups[i-1].tokens:
			label = fmt.Sprintf("HttpTokens=%s with hop limit %d", g.tokens, g.hop)
		case g.disabled != groups[i-1].disabled:
			label = fmt.Sprintf("hop limit %d", g.hop)
		default:
			label = fmt.Sprint(g.hop)
		}
		if g.disabled {
			label += ", endpoint left disabled"
		}
		var names []string
		for _, k := range slices.Sorted(maps.Keys(kinds[g])) {
			if n := kinds[g][k]; n != perKind[k] {
				k = fmt.Sprintf("%s (%d of %d)", k, n, perKind[k])
			}
			names = append(names, k)
		}
		parts = append(parts, label+": "+strings.Join(names, ", "))
	}
	return "Now " + strings.Join(parts, "; ") + "."
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// asPlanned compares the pipeline with the plan: the action of every verdict detect
// queued, and the options of every enforced instance against the plan's target.
func (v *view) asPlanned(p *demo.Pipeline) string {
	if v.planned == nil {
		return ""
	}
	var differ []string
	for _, o := range p.Outcomes {
		planned, ok := v.planned[o.ID]
		switch {
		case !ok:
			differ = append(differ, o.Name+" (not in the plan)")
		case o.Last == nil:
			if planned.Action != policy.ActionSkip {
				differ = append(differ, fmt.Sprintf("%s (planned %s, not queued)", o.Name, planned.Action))
			}
		case o.Last.Action != planned.Action:
			differ = append(differ, fmt.Sprintf("%s (planned %s, %s)", o.Name, planned.Action, o.Last.Result))
		case o.Last.Result == ledger.ResultEnforced && !sameOptions(o.Last.Applied, planned.Target):
			differ = append(differ, fmt.Sprintf("%s (now %s, planned %s)", o.Name, options(o.Last.Applied), targetText(planned.Target)))
		}
	}
	if len(differ) == 0 {
		return "All as planned."
	}
	slices.Sort(differ)
	return fmt.Sprintf("%d differ from the plan: %s.", len(differ), strings.Join(differ, ", "))
}

func sameOptions(applied *policy.MetadataOptions, target *report.Options) bool {
	if applied == nil || target == nil {
		return applied == nil && target == nil
	}
	return applied.HTTPTokens == target.HTTPTokens && applied.HopLimit == target.HopLimit && applied.HTTPEndpoint == target.HTTPEndpoint
}

func targetText(t *report.Options) string {
	if t == nil {
		return "no change"
	}
	return options(&policy.MetadataOptions{HTTPTokens: t.HTTPTokens, HopLimit: t.HopLimit, HTTPEndpoint: t.HTTPEndpoint})
}

// exampleTicketLines is how many lines of the example ticket the default output shows.
const exampleTicketLines = 11

// tickets prints one ticket of the notifications topic, shortened (with --verbose every
// ticket's subject and the example whole).
func (v *view) tickets(p *demo.Pipeline) {
	names := map[string]string{}
	reasons := map[string][]policy.Reason{}
	for _, o := range p.Outcomes {
		names[o.ID] = o.Name
		if o.Last != nil {
			reasons[o.ID] = o.Last.Reasons
		}
	}
	tickets := slices.Clone(p.Tickets)
	slices.SortFunc(tickets, func(a, b demo.Ticket) int {
		return byNameThenID(names[a.InstanceID], a.InstanceID, names[b.InstanceID], b.InstanceID)
	})
	if len(tickets) == 0 {
		v.printf("\n3. No ticket was published to the notifications topic.\n")
		return
	}
	example := tickets[0]
	// A ticket that names the software still using IMDSv1 and its fix, if there is one:
	// CloudTrail's evidence, without the theft alarm that would crowd it.
	for _, t := range tickets {
		rs := reasons[t.InstanceID]
		if len(rs) > 0 && rs[0].Code == policy.ReasonIMDSv1UsedCloudTrail &&
			!slices.ContainsFunc(rs, func(r policy.Reason) bool { return r.Code == policy.ReasonPossibleCredentialTheft }) {
			example = t
			break
		}
	}
	if v.verbose {
		v.printf("\n3. The %d tickets on the notifications topic:\n", len(tickets))
		for _, t := range tickets {
			v.printf("   %s\n", t.Subject)
		}
		v.printf("\nThe ticket of %s, as a subscriber receives it:\n\n", names[example.InstanceID])
		v.printf("Subject: %s\n\n%s\n", example.Subject, strings.TrimRight(example.Body, "\n"))
		return
	}
	v.printf("\n3. One of the %d tickets on the notifications topic (%s), shortened:\n", len(tickets), names[example.InstanceID])
	for _, line := range excerpt(example.Subject, example.Body, Width-2, exampleTicketLines) {
		v.printf("  %s\n", line)
		v.hinted = v.hinted || strings.Contains(line, "--verbose")
	}
	// The tickets of sources are keyed by the template's id in the place of an instance's.
	for _, t := range tickets {
		if strings.HasPrefix(t.InstanceID, "lt-") {
			v.printf("  and the template's: %s\n", cut(t.Subject, Width-24))
			break
		}
	}
}

// excerpt shortens a ticket to at most n lines of at most width columns: the subject,
// then each section's heading ("== Why ==") with as many of its items as fit, the first
// item of every section before the second of any. An item is a line with the lines
// indented under it (by two spaces here), each cut with "..." rather than wrapped. Blank lines, the subject repeated and the lines that
// introduce a list (ending in ":") are left out. A body without headings is one section.
func excerpt(subject, body string, width, n int) []string {
	type section struct {
		heading string
		items   [][]string
		taken   int
	}
	var sections []*section
	lines := 0
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimRight(line, " ")
		trimmed := strings.TrimLeft(line, " ")
		switch {
		case strings.HasPrefix(line, "== ") && strings.HasSuffix(line, " =="):
			sections = append(sections, &section{heading: line})
			continue
		case trimmed == "" || line == subject:
			continue
		}
		if strings.HasSuffix(line, ":") {
			continue
		}
		lines++
		if len(sections) == 0 {
			sections = append(sections, &section{})
		}
		s := sections[len(sections)-1]
		if trimmed != line && len(s.items) > 0 {
			last := &s.items[len(s.items)-1]
			*last = append(*last, "  "+trimmed)
			continue
		}
		s.items = append(s.items, []string{line})
	}
	render := func(item []string) []string {
		out := make([]string, len(item))
		for i, line := range item {
			out[i] = cut(line, width)
		}
		return out
	}
	// The subject and the closing line, then the headings.
	room := n - 2
	for _, s := range sections {
		if s.heading != "" {
			room--
		}
	}
	for round, took := 0, true; took; round++ {
		took = false
		for _, s := range sections {
			if s.taken != round || round >= len(s.items) {
				continue
			}
			if cost := len(render(s.items[round])); cost <= room {
				room -= cost
				s.taken++
				took = true
			}
		}
	}
	out := []string{cut("Subject: "+subject, width)}
	shown := 0
	for _, s := range sections {
		if s.heading != "" {
			out = append(out, s.heading)
		}
		for _, item := range s.items[:s.taken] {
			out = append(out, render(item)...)
			shown += len(item)
		}
	}
	if more := lines - shown; more > 0 {
		out = append(out, cut(fmt.Sprintf("[... %d more lines; this demo in full: bin/imdsguard-demo --verbose]", more), width))
	}
	return out
}

// next says what to run against a real account.
func (v *view) next() {
	v.printf("\nNext, plan a real account (read-only; README lists the permissions plan needs):\n")
	v.printf("   AWS_PROFILE=<profile> bin/imdsguard plan --region <region>\n")
	if !v.verbose && !v.hinted {
		v.printf("This demo in full: bin/imdsguard-demo --verbose\n")
	}
}
