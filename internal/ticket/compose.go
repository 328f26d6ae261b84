package ticket

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/imdsguard/imdsguard/internal/message"
	"github.com/imdsguard/imdsguard/internal/policy"
)

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

	c.Footer = footer(v.DecisionID, v.CreatedAt, opts.DryRun, c.EvidenceDigest())
	return c
}

// footer is a ticket's closing line: the decision, its time, dry run or not, and the
// start of the evidence digest.
func footer(decisionID string, createdAt time.Time, dryRun bool, digest string) []Span {
	spans := []Span{
		{"Decision ", Plain}, {nonEmpty(clean(decisionID, maxTextRunes)), Code},
		{" made " + timeText(createdAt) + ". ", Plain},
	}
	if dryRun {
		spans = append(spans, Span{"Dry run: nothing was changed.", Strong})
	} else {
		spans = append(spans, Span{"Not a dry run.", Plain})
	}
	return append(spans, Span{" Evidence digest ", Plain}, Span{digest[:16], Code}, Span{".", Plain})
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
