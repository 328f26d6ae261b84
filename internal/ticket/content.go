package ticket

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// Content is one ticket, independent of where it goes: Compose builds it from a verdict,
// and Markdown (OpsCenter, GitHub), ADF (Jira Cloud REST v3) and PlainText (SNS e-mail,
// Jira Data Center) render it. Compose cleans every string from the outside (clean: one
// line, no control or bidirectional-formatting characters, bounded length) and puts it
// in a Plain or Code span, never in markup; the renderers escape what their format
// needs and pass every text through safeLine again, so a hand-built Content cannot
// break them either.
type Content struct {
	// Title is the ticket's title, "[dry-run] " first for a dry run.
	Title  string
	DryRun bool
	// Sections in display order. A section without a heading is an untitled preamble.
	Sections []Section
	// Footer is the closing line: decision id and time, dry run or not.
	Footer []Span
	// Advice is AdviseUserAgent for each IMDSv1 user agent, in evidence order. Its
	// UserAgent and Version are as CloudTrail recorded them, not cleaned: whoever made
	// the call chose them, so escape them before display (the renderers use clean text).
	Advice []SDKAdvice

	evidence evidenceKey
}

// Section is a titled part of the ticket. Warning sections are rendered loudly (ADF
// warning panel, Markdown block quote, upper-case banner in plain text).
type Section struct {
	Heading string
	Warning bool
	Blocks  []Block
	// Short, when set, replaces Blocks in a shortened rendering (MarkdownWithin).
	Short []Block
}

// Block is a paragraph (Spans) or a bullet list (Items).
type Block struct {
	Spans []Span
	Items []Item
}

// Item is one bullet, optionally with one level of sub-bullets.
type Item struct {
	Spans    []Span
	Children []Item
}

// Style is how a span of text is set.
type Style int

const (
	// Plain text.
	Plain Style = iota
	// Strong (bold) text.
	Strong
	// Code is literal text: identifiers, commands, user agents, addresses.
	Code
)

// Span is a run of text in one style. Text is never empty.
type Span struct {
	Text  string
	Style Style
}

// ComposeOptions are the settings a ticket depends on.
type ComposeOptions struct {
	// ExemptTag is the tag key that exempts an instance (default imdsguard:exempt).
	ExemptTag string
	// DryRun marks the ticket as opened by a dry run: nothing was changed.
	DryRun bool
}

const (
	defaultExemptTag  = "imdsguard:exempt"
	dryRunPrefix      = "[dry-run] "
	packetAnalyzerURL = "https://github.com/aws/aws-imds-packet-analyzer"
	sdkVersionsURL    = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/use-a-supported-sdk-version-for-imdsv2.html"
	// Limits keep a ticket readable when the evidence is large or hostile; the digest
	// still covers everything.
	maxNameRunes      = 64
	maxTextRunes      = 1024
	maxUserAgentRunes = 512
	maxListed         = 20

	headingEvidence = "Evidence"
	headingSoftware = "Software still using IMDSv1"
)

// Compose builds the ticket for a verdict.
func Compose(v message.Verdict, opts ComposeOptions) Content {
	tag := clean(opts.ExemptTag, maxTextRunes)
	if tag == "" {
		tag = defaultExemptTag
	}
	id := clean(v.InstanceID, maxTextRunes)
	region := clean(v.Region, maxTextRunes)
	c := Content{DryRun: opts.DryRun, evidence: newEvidenceKey(v)}

	title := fmt.Sprintf("IMDSv1 still used on %s", id)
	if name := clean(v.Name, maxNameRunes); name != "" {
		title += " (" + name + ")"
	}
	title += fmt.Sprintf(" in %s/%s", clean(v.AccountID, maxTextRunes), region)
	if opts.DryRun {
		title = dryRunPrefix + title
	}
	c.Title = title

	if opts.DryRun {
		c.Sections = append(c.Sections, Section{Blocks: []Block{{Spans: []Span{
			{"DRY RUN:", Strong},
			{" imdsguard runs in dry-run mode and changed nothing on this instance. The findings below are real.", Plain},
		}}}})
	}

	for _, ua := range dedupe(v.Evidence.Trail().UserAgents) {
		c.Advice = append(c.Advice, AdviseUserAgent(ua))
	}

	// Possible theft comes first: it is the one thing on the ticket that cannot wait.
	if theft, ok := reasonFor(v, policy.ReasonPossibleCredentialTheft); ok {
		c.Sections = append(c.Sections, theftSection(v, theft))
	}
	c.Sections = append(c.Sections, whySection(v), evidenceSection(v), softwareSection(c.Advice))
	c.Sections = append(c.Sections, nextSteps(v, c.Advice, tag, id, region))

	c.Footer = []Span{
		{"Decision ", Plain}, {nonEmpty(clean(v.DecisionID, maxTextRunes)), Code},
		{" made " + timeText(v.CreatedAt) + ". ", Plain},
	}
	if opts.DryRun {
		c.Footer = append(c.Footer, Span{"Dry run: nothing was changed.", Strong})
	} else {
		c.Footer = append(c.Footer, Span{"Not a dry run.", Plain})
	}
	c.Footer = append(c.Footer, Span{" Evidence digest ", Plain}, Span{c.EvidenceDigest()[:16], Code}, Span{".", Plain})
	return c
}

// whySection states the verdict: the primary reason, then the secondary ones.
func whySection(v message.Verdict) Section {
	s := Section{Heading: "Why"}
	if len(v.Reasons) == 0 {
		s.Blocks = append(s.Blocks, Block{Spans: []Span{{"The verdict carries no reason.", Plain}}})
		return s
	}
	primary := v.Reasons[0]
	s.Blocks = append(s.Blocks, Block{Spans: reasonSpans(primary)})
	var also []Item
	for _, r := range v.Reasons[1:] {
		also = append(also, Item{Spans: reasonSpans(r)})
	}
	if len(also) > 0 {
		s.Blocks = append(s.Blocks, Block{Spans: []Span{{"Also noted:", Plain}}}, Block{Items: also})
	}
	action := clean(string(v.Action), maxTextRunes)
	if v.Action == policy.ActionTicket {
		s.Blocks = append(s.Blocks, Block{Spans: []Span{{"imdsguard will not require IMDSv2 on this instance while IMDSv1 is in use: requiring it now would break whatever still uses IMDSv1.", Plain}}})
	} else if action != "" {
		s.Blocks = append(s.Blocks, Block{Spans: []Span{{"Verdict: ", Plain}, {action, Code}, {".", Plain}}})
	}
	return s
}

func reasonSpans(r policy.Reason) []Span {
	out := []Span{{nonEmpty(clean(string(r.Code), maxTextRunes)), Code}}
	if d := clean(r.Detail, maxTextRunes); d != "" {
		out = append(out, Span{": " + d, Plain})
	}
	return out
}

func reasonFor(v message.Verdict, code policy.ReasonCode) (policy.Reason, bool) {
	for _, r := range v.Reasons {
		if r.Code == code {
			return r, true
		}
	}
	return policy.Reason{}, false
}

// theftSection is the loud part: credentials fetched over IMDSv1 were used elsewhere.
func theftSection(v message.Verdict, theft policy.Reason) Section {
	id := nonEmpty(clean(v.InstanceID, maxTextRunes))
	region := nonEmpty(clean(v.Region, maxTextRunes))
	s := Section{Heading: "WARNING: possible credential theft", Warning: true}
	s.Blocks = append(s.Blocks, Block{Spans: []Span{
		{"Role credentials this instance fetched over IMDSv1 were used from an address that is not the instance's.", Strong},
		{" Anyone who can make the instance (or an SSRF bug in software on it) send a plain GET to 169.254.169.254 gets these credentials. Treat them as stolen until you know the address.", Plain},
	}})
	s.Blocks = append(s.Blocks, Block{Spans: reasonSpans(theft)})
	items := []Item{
		{Spans: []Span{
			{"Revoke the role's sessions now: ", Strong},
			{"IAM console, Roles, the instance profile's role, \"Revoke active sessions\". It attaches an inline policy that denies every action to credentials issued before that moment (condition ", Plain},
			{"aws:TokenIssueTime", Code},
			{"). The instance's own current credentials are denied too until EC2 rotates them.", Plain},
		}, Children: []Item{{Spans: []Span{
			{"Or attach the deny yourself: ", Plain},
			{`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"YYYY-MM-DDTHH:MM:SSZ"}}}]}`, Code},
			{" with the current UTC time.", Plain},
		}}}},
		{Spans: []Span{
			{"Investigate in CloudTrail ", Strong},
			{"everything the role session named after the instance did from those addresses: ", Plain},
			{shellCommand("aws cloudtrail lookup-events --region %s --lookup-attributes AttributeKey=Username,AttributeValue=%s", region, id), Code},
			{", then look at sourceIPAddress, eventName and the resources touched (LookupEvents covers 90 days of management events; use a trail or CloudTrail Lake for data events).", Plain},
		}},
		{Spans: []Span{
			{"Close the hole: ", Strong},
			{"find how the credentials left the instance (an SSRF in a web application is the usual way), fix the software below so that IMDSv2 can be required, and consider limiting where the role works with the ", Plain},
			{"aws:EC2InstanceSourceVPC", Code}, {" and ", Plain}, {"aws:EC2InstanceSourcePrivateIPv4", Code},
			{" condition keys.", Plain},
		}},
		{Spans: []Span{{"If the address is your own NAT gateway, proxy or VPN egress, say so on this ticket: it is then a false alarm.", Plain}}},
	}
	s.Blocks = append(s.Blocks, Block{Items: items})
	s.Short = []Block{
		{Spans: []Span{{"Role credentials this instance fetched over IMDSv1 were used from an address that is not the instance's: treat them as stolen.", Strong}}},
		{Items: []Item{
			{Spans: []Span{{"Revoke the role's sessions now ", Strong}, {"(IAM console, Roles, \"Revoke active sessions\").", Plain}}},
			{Spans: []Span{{"Investigate in CloudTrail: ", Strong},
				{shellCommand("aws cloudtrail lookup-events --region %s --lookup-attributes AttributeKey=Username,AttributeValue=%s", region, id), Code}}},
		}},
	}
	return s
}

// evidenceSection lists what the verdict saw.
func evidenceSection(v message.Verdict) Section {
	ev := v.Evidence
	var items []Item
	if ev.MetadataNoTokenSum != nil {
		spans := []Span{{"CloudWatch MetadataNoToken (IMDSv1 calls): ", Plain}, {formatCount(*ev.MetadataNoTokenSum), Strong}}
		if ev.ObservedHours != nil {
			spans = append(spans, Span{fmt.Sprintf(" in %d observed hours", *ev.ObservedHours), Plain})
		}
		items = append(items, Item{Spans: spans})
	} else {
		items = append(items, Item{Spans: []Span{{"CloudWatch MetadataNoToken: not read for this verdict.", Plain}}})
	}
	if ev.LastV1Use != nil {
		items = append(items, Item{Spans: []Span{{"Last IMDSv1 use: ", Plain}, {timeText(*ev.LastV1Use), Strong}}})
	}
	if ev.LastDatapoint != nil {
		items = append(items, Item{Spans: []Span{{"Last MetadataNoToken datapoint: " + timeText(*ev.LastDatapoint), Plain}}})
	}
	if ct := ev.CloudTrail; ct != nil {
		items = append(items, Item{Spans: []Span{
			{"CloudTrail credential deliveries: ", Plain},
			{strconv.Itoa(ct.V1Deliveries) + " over IMDSv1", Strong},
			{fmt.Sprintf(" (ec2RoleDelivery 1.0), %d over IMDSv2. The lookup stops at the first IMDSv1 delivery, so these are lower bounds; the calls made are named in the reason above.", ct.V2Deliveries), Plain},
		}})
		if ips := dedupe(ct.SourceIPs); len(ips) > 0 {
			items = append(items, Item{Spans: codeList("Source addresses of the IMDSv1 credentials' calls: ", ips)})
		}
	} else {
		items = append(items, Item{Spans: []Span{{"CloudTrail: not looked up for this verdict (the metric settled it).", Plain}}})
	}
	if cur := v.Current; cur != nil {
		items = append(items, Item{Spans: []Span{
			{"Current metadata options: ", Plain},
			{fmt.Sprintf("HttpTokens=%s, HttpPutResponseHopLimit=%d, HttpEndpoint=%s",
				nonEmpty(clean(cur.HTTPTokens, maxTextRunes)), cur.HopLimit, nonEmpty(clean(cur.HTTPEndpoint, maxTextRunes))), Code},
		}})
	}
	return Section{Heading: headingEvidence, Blocks: []Block{{Items: items}}}
}

// softwareSection names what still uses IMDSv1, one user agent per bullet with advice.
func softwareSection(advice []SDKAdvice) Section {
	s := Section{Heading: headingSoftware}
	if len(advice) == 0 {
		s.Blocks = append(s.Blocks, Block{Spans: []Span{{"CloudWatch counts IMDSv1 calls but does not say which process made them, and CloudTrail named no user agent: trace the callers on the host (see What to do).", Plain}}})
		return s
	}
	s.Blocks = append(s.Blocks, Block{Spans: []Span{{"User agents of the calls made with credentials fetched over IMDSv1:", Plain}}})
	var items []Item
	for i, a := range advice {
		if i == maxListed {
			items = append(items, Item{Spans: []Span{{fmt.Sprintf("... and %d more user agents.", len(advice)-maxListed), Plain}}})
			break
		}
		items = append(items, Item{
			Spans:    []Span{{nonEmpty(clean(a.UserAgent, maxUserAgentRunes)), Code}},
			Children: []Item{{Spans: adviceSpans(a)}},
		})
	}
	s.Blocks = append(s.Blocks, Block{Items: items})
	return s
}

func adviceSpans(a SDKAdvice) []Span {
	if !a.Recognised {
		return []Span{{a.Advice, Plain}}
	}
	// SDK names the version inside an agent as the user agent spelt it.
	head := clean(a.SDK, maxTextRunes)
	if a.Version != "" {
		head += " " + clean(a.Version, maxTextRunes)
	}
	style := Plain
	if a.Outdated {
		style = Strong
	}
	return []Span{{head + ": ", Plain}, {clean(a.Advice, maxTextRunes), style}}
}

// nextSteps says what to do, most specific first.
func nextSteps(v message.Verdict, advice []SDKAdvice, tag, id, region string) Section {
	var items []Item
	seen := map[string]bool{}
	speaks := false
	for _, a := range advice {
		if a.Outdated && !seen[a.Advice] {
			seen[a.Advice] = true
			items = append(items, Item{Spans: []Span{{capitalise(clean(a.Advice, maxTextRunes)) + ".", Strong}}})
		}
		if a.Recognised && !a.Outdated && a.Advice == adviceSpeaksV2 {
			speaks = true
		}
	}
	upgradeAll := "Upgrade every AWS SDK, the AWS CLI and the agents on the host to versions that speak IMDSv2 (AWS lists the minimum versions: "
	if len(items) > 0 {
		upgradeAll = "Then check the rest of the host: every AWS SDK, the AWS CLI and the agents must be versions that speak IMDSv2 (AWS lists the minimum versions: "
	}
	items = append(items, Item{Spans: []Span{
		{upgradeAll, Plain},
		{sdkVersionsURL, Code}, {"), and replace scripts that call 169.254.169.254 without a token.", Plain},
	}})
	items = append(items, Item{
		Spans: []Span{
			{"Trace the callers on the host ", Strong},
			{"with AWS's IMDS packet analyzer (", Plain}, {packetAnalyzerURL, Code},
			{"): it logs every IMDS call with the process, its command line and its parents.", Plain},
		},
		Children: []Item{
			{Spans: []Span{{"Clone it, install BCC (", Plain}, {"sudo bash install-deps.sh", Code}, {" assumes Amazon Linux 2; see the README for other systems) and run ", Plain}, {"sudo python3 src/imds_snoop.py", Code}, {".", Plain}}},
			{Spans: []Span{{"IMDSv1 calls are logged as WARNING: ", Plain}, {"grep WARNING /var/log/imds/imds-trace.log*", Code}, {".", Plain}}},
			{Spans: []Span{{"To catch callers that run at boot, install it as a service: ", Plain}, {"sudo ./activate-tracer-service.sh", Code}, {".", Plain}}},
		},
	})
	_, container := reasonFor(v, policy.ReasonContainerHost)
	if speaks {
		items = append(items, Item{Spans: []Span{
			{"For an SDK that already speaks IMDSv2, find why it falls back: on a test host set ", Plain},
			{"AWS_EC2_METADATA_V1_DISABLED=true", Code},
			{" (or ", Plain}, {"ec2_metadata_v1_disabled = true", Code},
			{" in the shared config) so that it fails loudly instead of using IMDSv1, and look for a custom metadata client.", Plain},
		}})
	}
	if speaks || container {
		items = append(items, Item{Spans: []Span{
			{"Containers are one more network hop: IMDSv2 answers them only with a hop limit of at least 2 (", Plain},
			{shellCommand("aws ec2 modify-instance-metadata-options --region %s --instance-id %s --http-put-response-hop-limit 2", region, id), Code},
			{").", Plain},
		}})
	}
	items = append(items, Item{Spans: []Span{
		{"Re-check after the fix: ", Plain},
		{shellCommand("imdsguard plan --instance-ids %s --region %s", id, region), Code},
		{". Once no IMDSv1 use is left, imdsguard requires IMDSv2 on its own.", Plain},
	}})
	items = append(items, Item{
		Spans: []Span{
			{"To exempt the instance ", Strong},
			{"while the fix is under way, tag it ", Plain},
			{tag + "=YYYY-MM-DD", Code},
			{" with the last day of the exemption (UTC); afterwards the rules apply again.", Plain},
		},
		Children: []Item{{Spans: []Span{{shellCommand("aws ec2 create-tags --region %s --resources %s --tags %s", region, id,
			"Key="+tag+",Value=YYYY-MM-DD"), Code}}}},
	})
	return Section{Heading: "What to do", Blocks: []Block{{Items: items}}}
}

func codeList(label string, values []string) []Span {
	spans := []Span{{label, Plain}}
	for i, val := range values {
		if i == maxListed {
			spans = append(spans, Span{fmt.Sprintf(" and %d more", len(values)-maxListed), Plain})
			break
		}
		if i > 0 {
			spans = append(spans, Span{", ", Plain})
		}
		spans = append(spans, Span{nonEmpty(clean(val, maxTextRunes)), Code})
	}
	return spans
}

// evidenceKey is the evidence that makes a ticket new: what was seen, not when or how
// often. Times, observed hours, the reason details (which embed times) and the counts
// (MetadataNoToken sums and delivery counts move with the rolling lookback window on
// every sweep while IMDSv1 is in use) are left out, so a daily sweep over an unchanged
// problem adds nothing to the ticket, while a new caller, address or reason does.
type evidenceKey struct {
	Schema       string   `json:"schema"`
	AccountID    string   `json:"account_id"`
	Region       string   `json:"region"`
	InstanceID   string   `json:"instance_id"`
	Action       string   `json:"action"`
	Primary      string   `json:"primary"`
	Secondary    []string `json:"secondary"`
	MetricUsed   bool     `json:"metric_shows_v1"`
	Checked      bool     `json:"cloudtrail_checked"`
	TrailShowsV1 bool     `json:"cloudtrail_shows_v1"`
	UserAgents   []string `json:"user_agents"`
	SourceIPs    []string `json:"source_ips"`
}

func newEvidenceKey(v message.Verdict) evidenceKey {
	k := evidenceKey{
		Schema:    "imdsguard.ticket-evidence/v1",
		AccountID: v.AccountID, Region: v.Region, InstanceID: v.InstanceID,
		Action:       string(v.Action),
		Secondary:    []string{},
		Checked:      v.Evidence.CloudTrail != nil,
		TrailShowsV1: v.Evidence.Trail().V1Deliveries > 0,
		UserAgents:   sortedSet(v.Evidence.Trail().UserAgents),
		SourceIPs:    sortedSet(v.Evidence.Trail().SourceIPs),
	}
	for i, r := range v.Reasons {
		if i == 0 {
			k.Primary = string(r.Code)
		} else {
			k.Secondary = append(k.Secondary, string(r.Code))
		}
	}
	k.Secondary = sortedSet(k.Secondary)
	if s := v.Evidence.MetadataNoTokenSum; s != nil && *s > 0 {
		k.MetricUsed = true
	}
	return k
}

// EvidenceDigest is a SHA-256 (hex) of the evidence that matters: action, reason codes,
// whether the metric and CloudTrail show IMDSv1, user agents and source addresses. Two
// verdicts that differ only in decision id, times, counts or wording have the same
// digest; a new user agent, a new address or a new reason changes it.
func (c Content) EvidenceDigest() string {
	b, err := json.Marshal(c.evidence)
	if err != nil {
		// A struct of strings, ints and bools always marshals.
		panic(fmt.Sprintf("ticket: marshalling the evidence key: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func sortedSet(in []string) []string {
	out := append([]string{}, in...)
	slices.Sort(out)
	return slices.Compact(out)
}

func dedupe(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// clean makes user-controlled text readable on one line: safeLine's characters, white
// space trimmed and its runs collapsed to one space, and at most max runes (then "…").
func clean(s string, max int) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range strings.TrimSpace(safeLine(s)) {
		if r == ' ' {
			space = true
			continue
		}
		if n >= max || (space && n+1 >= max) {
			b.WriteString("…")
			break
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// safeLine is s with nothing that could end a line or hide or reorder text in any
// renderer: invalid UTF-8, control characters, formatting characters (bidirectional
// overrides and isolates, zero-width marks) and non-characters become U+FFFD, and every
// white space (line and paragraph separators, NEL, vertical tab and form feed included)
// becomes a space. Every renderer passes all its text through it, so a Content built
// by hand is as safe as one from Compose; clean adds the tidying on top.
func safeLine(s string) string {
	return strings.Map(safeRune, strings.ToValidUTF8(s, "\uFFFD"))
}

func safeRune(r rune) rune {
	switch {
	case ' ' <= r && r <= '~':
		return r
	case unicode.IsSpace(r):
		return ' '
	case unicode.IsControl(r), unicode.Is(unicode.Cf, r), isNoncharacter(r):
		return utf8.RuneError
	}
	return r
}

// isNoncharacter: U+FDD0..U+FDEF and the last two code points of every plane, which
// XML (the SNS API's) and many parsers refuse.
func isNoncharacter(r rune) bool {
	return (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE
}

func nonEmpty(s string) string {
	if s == "" {
		return "(empty)"
	}
	return s
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "(unknown time)"
	}
	return t.UTC().Format(time.RFC3339)
}

func formatCount(f float64) string {
	if f == float64(int64(f)) {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

func capitalise(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if size == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[size:]
}

// shellCommand fills a command line's %s verbs with args, each shell-quoted: a ticket's
// commands are meant to be copied into a shell, so an outside value (an instance id, a
// region, a tag key) must stay one argument.
func shellCommand(format string, args ...string) string {
	quoted := make([]any, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	return fmt.Sprintf(format, quoted...)
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe characters.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("@%_+=:,./-", r))) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Markdown renders the ticket as CommonMark/GitHub-flavoured Markdown. Every line's
// structure (heading, list item, quote) is the renderer's own; text is escaped, and
// literal values and anything an autolinker could take for a link are code spans
// (mdWriter), so nothing a caller controls (user agents, tag values, reason details)
// can become HTML, a link, an image or formatting, or start a line.
func (c Content) Markdown() string {
	return c.markdown(true) + c.markdownFooter()
}

// MarkdownWithin renders Markdown of at most maxBytes bytes, for fields with a limit
// (an OpsItem description holds 2048 characters). When the full rendering is too long
// it leaves out the title (the ticket system shows it), puts the evidence last, drops
// the sub-bullets outside the software section, and finally cuts whole lines from the
// end, keeping the footer and saying that it shortened the ticket. Lines are cut whole,
// so no code span or escape is ever split.
func (c Content) MarkdownWithin(maxBytes int) string {
	if md := c.Markdown(); len(md) <= maxBytes {
		return md
	}
	footer := c.markdownFooter()
	body := c.compact().markdown(false)
	if len(body)+len(footer) <= maxBytes {
		return body + footer
	}
	const notice = "\n**Shortened:** the rest of this ticket did not fit.\n"
	budget := maxBytes - len(footer) - len(notice)
	cut := strings.LastIndexByte(body[:max(0, min(len(body), budget))], '\n')
	if cut < 0 {
		// Not even one line fits: the footer alone, cut at a line.
		return truncateLines(footer, maxBytes)
	}
	kept := strings.TrimRight(body[:cut+1], "\n")
	for {
		// A heading whose section was cut away says nothing.
		last := kept[strings.LastIndexByte(kept, '\n')+1:]
		if !strings.HasPrefix(last, "## ") {
			break
		}
		kept = strings.TrimRight(strings.TrimSuffix(kept, last), "\n")
	}
	return kept + "\n" + notice + footer
}

// compact is the ticket reordered and trimmed for a short rendering.
func (c Content) compact() Content {
	out := c
	out.Sections = nil
	var evidence []Section
	for _, s := range c.Sections {
		if s.Heading == headingEvidence {
			evidence = append(evidence, s)
			continue
		}
		if s.Short != nil {
			s.Blocks = s.Short
		} else if s.Heading != headingSoftware {
			s.Blocks = slices.Clone(s.Blocks)
			for i, bl := range s.Blocks {
				items := make([]Item, len(bl.Items))
				for j, it := range bl.Items {
					items[j] = Item{Spans: it.Spans}
				}
				s.Blocks[i].Items = items
			}
		}
		out.Sections = append(out.Sections, s)
	}
	out.Sections = append(out.Sections, evidence...)
	return out
}

func truncateLines(s string, maxBytes int) string {
	if len(s) <= maxBytes {
		return s
	}
	if cut := strings.LastIndexByte(s[:maxBytes], '\n'); cut >= 0 {
		return s[:cut+1]
	}
	return ""
}

func (c Content) markdownFooter() string {
	return "\n---\n\n" + mdSpans(c.Footer) + "\n"
}

func (c Content) markdown(withTitle bool) string {
	var b strings.Builder
	if withTitle {
		b.WriteString("# " + mdText(c.Title) + "\n")
	}
	for i, s := range c.Sections {
		if withTitle || i > 0 {
			b.WriteString("\n")
		}
		if s.Heading != "" {
			b.WriteString("## " + mdText(s.Heading) + "\n\n")
		}
		var body strings.Builder
		for i, bl := range s.Blocks {
			if i > 0 {
				body.WriteString("\n")
			}
			writeMarkdownBlock(&body, bl)
		}
		if !s.Warning {
			b.WriteString(body.String())
			continue
		}
		for _, line := range strings.SplitAfter(strings.TrimSuffix(body.String(), "\n"), "\n") {
			if strings.TrimSpace(line) == "" {
				b.WriteString(">\n")
			} else {
				b.WriteString("> " + strings.TrimSuffix(line, "\n") + "\n")
			}
		}
	}
	return b.String()
}

func writeMarkdownBlock(b *strings.Builder, bl Block) {
	if len(bl.Spans) > 0 {
		b.WriteString(mdSpans(bl.Spans) + "\n")
	}
	for _, it := range bl.Items {
		b.WriteString("- " + mdSpans(it.Spans) + "\n")
		for _, child := range it.Children {
			b.WriteString("  - " + mdSpans(child.Spans) + "\n")
		}
	}
}

// mdSpans renders spans as one line of Markdown inline content: Plain and Strong text
// through mdWriter, Code as code spans.
func mdSpans(spans []Span) string {
	var w mdWriter
	for _, s := range coalesce(spans) {
		text := safeLine(s.Text)
		switch s.Style {
		case Code:
			w.code(text)
		case Strong:
			// Emphasis delimiters must touch the text: keep surrounding spaces outside.
			inner := strings.Trim(text, " ")
			if inner == "" {
				w.text(text)
				continue
			}
			lead := text[:len(text)-len(strings.TrimLeft(text, " "))]
			w.text(lead)
			w.delimiter("**")
			w.text(inner)
			w.delimiter("**")
			w.text(text[len(lead)+len(inner):])
		default:
			w.text(text)
		}
	}
	return w.String()
}

// mdText is s as Markdown text: mdSpans of one plain span.
func mdText(s string) string {
	return mdSpans([]Span{{s, Plain}})
}

// coalesce joins neighbouring spans of one style, so that a word split across two
// spans is judged whole by mdWriter and two strong spans do not touch as "****".
func coalesce(spans []Span) []Span {
	var out []Span
	for _, s := range spans {
		if s.Text == "" {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Style == s.Style {
			out[n-1].Text += s.Text
			continue
		}
		out = append(out, s)
	}
	return out
}

// Markdown characters escaped wherever they are, and those escaped only where they
// would start a block (a list item, a definition): at the start of the line.
const (
	mdEscaped        = "\\`*_[]<>|~&#!$^{}=+"
	mdEscapedAtStart = "-:"
)

// mdWriter builds one line of Markdown inline content in which text stays text:
//
//   - Markdown punctuation is backslash-escaped, and so is what would start a block at
//     the start of the line ("-", ":", "1." and "1)"). CommonMark lets any ASCII
//     punctuation be escaped, so an escape is never wrong.
//   - A word that an autolinker could take for a link (linkable), or that holds a
//     backtick, is set as a code span instead. Escapes cannot stop autolinks:
//     cmark-gfm (GitHub) joins the text around escapes before it looks for e-mail
//     addresses, and renderers that link in a pass over the parsed text do the same
//     for URLs. A code span is literal in every CommonMark renderer and no autolinker
//     looks inside one.
//   - Neighbouring code spans are merged: written side by side, their fences would touch
//     and read as one longer fence.
//   - Runs of spaces collapse to one and leading spaces are dropped: HTML shows them as
//     one anyway, and four at the start of a line would start a code block.
type mdWriter struct {
	b strings.Builder
	// pendingCode is the literal text of the code span being gathered.
	pendingCode strings.Builder
	// started: something is written, the start-of-line rules are done.
	started bool
	// space: a space is due before what comes next.
	space bool
}

// text writes s, already through safeLine, as text.
func (w *mdWriter) text(s string) {
	for i, word := range strings.Split(s, " ") {
		if i > 0 && w.started {
			w.space = true
		}
		if word != "" {
			w.word(word)
		}
	}
}

func (w *mdWriter) word(word string) {
	if strings.ContainsRune(word, '`') {
		w.code(word)
		return
	}
	if !linkable(word) {
		w.escaped(word)
		return
	}
	// The punctuation around a link-like word stays text, "(see www.example.com).",
	// unless the word is link-like only with it: GFM links "WWW." as "WWW".
	rest := strings.TrimLeftFunc(word, isWordEdge)
	core := strings.TrimRightFunc(rest, isWordEdge)
	if !linkable(core) {
		w.code(word)
		return
	}
	w.escaped(word[:len(word)-len(rest)])
	w.code(core)
	w.escaped(rest[len(core):])
}

// code adds s, already through safeLine, to the code span being gathered.
func (w *mdWriter) code(s string) {
	if w.space {
		w.flushCode()
		w.b.WriteByte(' ')
		w.space = false
	}
	w.pendingCode.WriteString(s)
	w.started = true
}

// delimiter writes Markdown syntax of the renderer's own (the emphasis "**").
func (w *mdWriter) delimiter(d string) {
	w.separate()
	w.b.WriteString(d)
	w.started = true
}

func (w *mdWriter) escaped(s string) {
	if s == "" {
		return
	}
	w.separate()
	atStart := !w.started
	w.started = true
	digits := atStart
	for i, r := range s {
		switch {
		case strings.ContainsRune(mdEscaped, r),
			atStart && i == 0 && strings.ContainsRune(mdEscapedAtStart, r),
			digits && i > 0 && (r == '.' || r == ')'): // "1." or "1)" would start an ordered list
			w.b.WriteByte('\\')
		}
		if r < '0' || r > '9' {
			digits = false
		}
		w.b.WriteRune(r)
	}
}

// separate ends the code span being gathered and writes the space due.
func (w *mdWriter) separate() {
	w.flushCode()
	if w.space {
		w.b.WriteByte(' ')
		w.space = false
	}
}

func (w *mdWriter) flushCode() {
	if w.pendingCode.Len() > 0 {
		w.b.WriteString(mdCode(w.pendingCode.String()))
		w.pendingCode.Reset()
	}
}

func (w *mdWriter) String() string {
	w.flushCode()
	return w.b.String()
}

// isWordEdge is punctuation that prose puts around a word, as in "(www.example.com),".
func isWordEdge(r rune) bool {
	return strings.ContainsRune("()[]{}<>\"',.;:!?*_~", r)
}

// linkable reports whether an autolinker could take word (white space free) for a link:
// GFM's extended autolinks (www., http://, https://, ftp://, e-mail addresses, mailto:,
// xmpp:), and those of other common renderers (a scheme such as tel: or javascript:,
// linkify-it's //host, bare domains such as example.com).
func linkable(word string) bool {
	if strings.ContainsRune(word, '@') || strings.Contains(word, "//") || strings.Contains(strings.ToLower(word), "www.") {
		return true
	}
	for i := 1; i+1 < len(word); i++ {
		if word[i] == ':' && isASCIILetter(word[i-1]) {
			return true
		}
	}
	// A bare domain: a dot after a letter or digit, then a label of two letters or more.
	for i := 1; i < len(word); i++ {
		if before, _ := utf8.DecodeLastRuneInString(word[:i]); word[i] != '.' || !isAlnum(before) {
			continue
		}
		letters := 0
		for _, r := range word[i+1:] {
			if !unicode.IsLetter(r) {
				if isAlnum(r) {
					letters = 0 // a digit in the label: not a top-level domain
				}
				break
			}
			letters++
		}
		if letters >= 2 {
			return true
		}
	}
	return false
}

func isASCIILetter(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isAlnum(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// mdCode is a code span that holds s, through safeLine, literally: the fence is one
// backtick longer than the longest run inside, padded with a space when s starts or
// ends with a backtick or a space (CommonMark strips one space from each side).
func mdCode(s string) string {
	s = safeLine(s)
	if s == "" {
		// "``" would be no code span but a fence that the next "``" on the line closes.
		return "` `"
	}
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	// Content of spaces only is kept whole, so it needs no padding. A fence of three
	// backticks or more at the start of a line opens no code block: the content then
	// holds backticks, and a backtick fence's info string may not.
	if strings.Trim(s, " ") != "" && (strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") || strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ")) {
		s = " " + s + " "
	}
	return fence + s + fence
}

// PlainText renders the ticket without markup: for SNS e-mail and for Jira Data Center
// descriptions (noformat sets it in a {noformat} block there). Every text is one line
// (safeLine), so no outside value can start a line of its own.
func (c Content) PlainText() string {
	var b strings.Builder
	b.WriteString(safeLine(c.Title) + "\n")
	for _, s := range c.Sections {
		b.WriteString("\n")
		heading := safeLine(s.Heading)
		switch {
		case s.Warning:
			b.WriteString("!! " + strings.ToUpper(heading) + " !!\n")
		case heading != "":
			b.WriteString("== " + heading + " ==\n")
		}
		for i, bl := range s.Blocks {
			if i > 0 && len(bl.Spans) > 0 {
				b.WriteString("\n")
			}
			if len(bl.Spans) > 0 {
				b.WriteString(plainSpans(bl.Spans) + "\n")
			}
			for _, it := range bl.Items {
				b.WriteString("- " + plainSpans(it.Spans) + "\n")
				for _, child := range it.Children {
					b.WriteString("    - " + plainSpans(child.Spans) + "\n")
				}
			}
		}
	}
	b.WriteString("\n" + plainSpans(c.Footer) + "\n")
	return b.String()
}

func plainSpans(spans []Span) string {
	var b strings.Builder
	for _, s := range spans {
		b.WriteString(safeLine(s.Text))
	}
	return b.String()
}

// ADF renders the ticket as an Atlassian Document Format document (Jira Cloud REST v3):
// headings, paragraphs, bullet lists, text with strong and code marks, a warning panel
// for the theft section and a rule before the footer. No text node is empty, every text
// is one line (safeLine), and marks come from the span's style alone: outside text is
// only ever the text of a text node.
func (c Content) ADF() map[string]any {
	content := []any{adfHeading(1, c.Title)}
	for _, s := range c.Sections {
		if s.Heading != "" {
			content = append(content, adfHeading(2, s.Heading))
		}
		var nodes []any
		for _, bl := range s.Blocks {
			nodes = append(nodes, adfBlock(bl)...)
		}
		if len(nodes) == 0 {
			continue
		}
		if s.Warning {
			content = append(content, map[string]any{
				"type": "panel", "attrs": map[string]any{"panelType": "warning"}, "content": nodes,
			})
		} else {
			content = append(content, nodes...)
		}
	}
	content = append(content, map[string]any{"type": "rule"})
	if p := adfParagraph(c.Footer); p != nil {
		content = append(content, p)
	}
	return map[string]any{"type": "doc", "version": 1, "content": content}
}

func adfHeading(level int, text string) map[string]any {
	return map[string]any{
		"type": "heading", "attrs": map[string]any{"level": level},
		"content": []any{map[string]any{"type": "text", "text": nonEmpty(safeLine(text))}},
	}
}

func adfBlock(bl Block) []any {
	var out []any
	if p := adfParagraph(bl.Spans); p != nil {
		out = append(out, p)
	}
	if l := adfList(bl.Items); l != nil {
		out = append(out, l)
	}
	return out
}

func adfList(items []Item) map[string]any {
	var lis []any
	for _, it := range items {
		p := adfParagraph(it.Spans)
		if p == nil {
			continue
		}
		li := []any{p}
		if sub := adfList(it.Children); sub != nil {
			li = append(li, sub)
		}
		lis = append(lis, map[string]any{"type": "listItem", "content": li})
	}
	if len(lis) == 0 {
		return nil
	}
	return map[string]any{"type": "bulletList", "content": lis}
}

// adfParagraph is nil when there is no text: ADF rejects empty text nodes.
func adfParagraph(spans []Span) map[string]any {
	var texts []any
	for _, s := range spans {
		text := safeLine(s.Text)
		if text == "" {
			continue
		}
		node := map[string]any{"type": "text", "text": text}
		switch s.Style {
		case Strong:
			node["marks"] = []any{map[string]any{"type": "strong"}}
		case Code:
			node["marks"] = []any{map[string]any{"type": "code"}}
		}
		texts = append(texts, node)
	}
	if len(texts) == 0 {
		return nil
	}
	return map[string]any{"type": "paragraph", "content": texts}
}
