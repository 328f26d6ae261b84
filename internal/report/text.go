package report

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// Helpers shared by the renderers for people (table and Markdown).

const (
	maxEvidenceRunes = 60
	maxNameRunes     = 32
)

// headerLine says when the plan was made and under which settings.
func headerLine(p *Plan) string {
	return fmt.Sprintf("imdsguard plan generated %s (lookback %dh, min observed %dh, mode %s)",
		p.GeneratedAt.UTC().Format(time.RFC3339), p.Settings.lookbackHours(), p.Settings.MinObservedHours, p.Settings.Mode)
}

// summaryLine is e.g. "4 remediate, 3 ticket, 2 defer, 1 skip (10 instances)".
func summaryLine(s Summary) string {
	parts := make([]string, len(policy.Actions))
	for i, a := range policy.Actions {
		parts[i] = fmt.Sprintf("%d %s", s.Count(a), a)
	}
	noun := "instances"
	if s.Total() == 1 {
		noun = "instance"
	}
	return fmt.Sprintf("%s (%d %s)", strings.Join(parts, ", "), s.Total(), noun)
}

// apiCallsLine lists the API calls by name, e.g. "API calls: ec2:DescribeInstances 1".
func apiCallsLine(calls map[string]int) string {
	if len(calls) == 0 {
		return "API calls: none"
	}
	parts := make([]string, 0, len(calls))
	for _, name := range slices.Sorted(maps.Keys(calls)) {
		parts = append(parts, fmt.Sprintf("%s %d", name, calls[name]))
	}
	return "API calls: " + strings.Join(parts, ", ")
}

// emptyLine is what the renderers say when the plan lists no instance: that none was
// found, unless no scope could be planned at all.
func emptyLine(p *Plan) string {
	if len(p.Scopes) > 0 && len(p.Failed()) == len(p.Scopes) {
		return "no instances: no scope could be planned"
	}
	return "no instances found"
}

// failedLine introduces the failed scopes, e.g. "1 of 2 scopes could not be planned;
// their instances are not in this plan".
func failedLine(p *Plan) string {
	noun := "scopes"
	if len(p.Scopes) == 1 {
		noun = "scope"
	}
	return fmt.Sprintf("%d of %d %s could not be planned; their instances are not in this plan", len(p.Failed()), len(p.Scopes), noun)
}

// scope reports the single account and region of the plan, or "" for either when the
// plan spans several: the table then shows that column.
func scope(p *Plan) (account, region string) {
	accounts, regions := map[string]bool{}, map[string]bool{}
	for _, in := range p.Instances {
		accounts[in.AccountID] = true
		regions[in.Region] = true
	}
	if len(accounts) == 1 {
		for a := range accounts {
			account = a
		}
	}
	if len(regions) == 1 {
		for r := range regions {
			region = r
		}
	}
	return account, region
}

// scopeLine names the single account and region when there is just one of each.
func scopeLine(account, region string) string {
	var parts []string
	if account != "" {
		parts = append(parts, "account "+account)
	}
	if region != "" {
		parts = append(parts, "region "+region)
	}
	return strings.Join(parts, ", ")
}

// reasonText is the primary code followed by "+secondary" codes.
func reasonText(in Instance) string {
	if len(in.Reasons) == 0 {
		return "-"
	}
	var b strings.Builder
	for i, r := range in.Reasons {
		if i > 0 {
			b.WriteByte('+')
		}
		b.WriteString(string(r.Code))
	}
	return b.String()
}

func primary(in Instance) policy.ReasonCode {
	if len(in.Reasons) == 0 {
		return ""
	}
	return in.Reasons[0].Code
}

// evidenceText is the key evidence behind the verdict in at most maxEvidenceRunes runes,
// e.g. "v1 calls 0 in 336h obs, last dp 09:00Z". now (the plan's time) lets times of the
// same day drop their date.
func evidenceText(in Instance, s Settings, now time.Time) string {
	e := in.Evidence
	var text string
	switch primary(in) {
	case policy.ReasonTerminated:
		if in.Current == nil {
			text = "not found"
		}
	case policy.ReasonEndpointDisabled:
		text = JoinNonEmpty("endpoint disabled", hopChange(in))
	case policy.ReasonIMDSv1UsedMetric:
		text = metricsUsed(e, now)
	case policy.ReasonInsufficientMetrics:
		if e.ObservedHours != nil {
			text = fmt.Sprintf("%dh obs of %dh needed", *e.ObservedHours, s.MinObservedHours)
		}
	case policy.ReasonStaleMetrics:
		if e.LastDatapoint != nil {
			text = "last dp " + shortTime(*e.LastDatapoint, now)
		} else {
			text = fmt.Sprintf("no datapoint in %dh", s.lookbackHours())
		}
	case policy.ReasonIMDSv1UsedCloudTrail:
		text = cloudTrailV1(e.CloudTrail)
	case policy.ReasonCloudTrailUnavailable:
		text = JoinNonEmpty(metricsUnused(e, now, false), "CloudTrail not read")
	case policy.ReasonIMDSv1Unused:
		text = JoinNonEmpty(metricsUnused(e, now, true), hopChange(in))
	case policy.ReasonEvidenceError:
		text = "gathering failed, see Why"
	}
	if text == "" {
		return "-"
	}
	return truncate(text, maxEvidenceRunes)
}

// JoinNonEmpty joins the parts that say something with ", ", so that optional clauses
// leave no stray commas.
func JoinNonEmpty(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ", ")
}

func metricsUsed(e Evidence, now time.Time) string {
	if e.MetadataNoTokenSum == nil {
		return ""
	}
	text := "v1 calls " + formatNumber(*e.MetadataNoTokenSum)
	if e.LastV1Use != nil {
		text += ", last use " + shortTime(*e.LastV1Use, now)
	}
	return text
}

func metricsUnused(e Evidence, now time.Time, withLastDatapoint bool) string {
	if e.MetadataNoTokenSum == nil || e.ObservedHours == nil {
		return ""
	}
	text := fmt.Sprintf("v1 calls %s in %dh obs", formatNumber(*e.MetadataNoTokenSum), *e.ObservedHours)
	if withLastDatapoint && e.LastDatapoint != nil {
		text += ", last dp " + shortTime(*e.LastDatapoint, now)
	}
	return text
}

// cloudTrailV1 is e.g. "CloudTrail v1 x3 (aws-cli/1.16.0 +1 more)".
func cloudTrailV1(ct CloudTrail) string {
	if !ct.Checked {
		return ""
	}
	text := fmt.Sprintf("CloudTrail v1 x%d", ct.V1Deliveries)
	if len(ct.UserAgents) > 0 {
		agent := truncate(ct.UserAgents[0], 30)
		if more := len(ct.UserAgents) - 1; more > 0 {
			agent += fmt.Sprintf(" +%d more", more)
		}
		text += " (" + agent + ")"
	}
	return text
}

// hopChange is e.g. "hop 1->2" when a remediation changes the hop limit.
func hopChange(in Instance) string {
	if in.Current == nil || in.Target == nil || in.Current.HopLimit == in.Target.HopLimit {
		return ""
	}
	return fmt.Sprintf("hop %d->%d", in.Current.HopLimit, in.Target.HopLimit)
}

// shortTime drops the date when t is on the same UTC day as now: "09:00Z", else
// "2026-11-20T14:00Z".
func shortTime(t, now time.Time) string {
	t, now = t.UTC(), now.UTC()
	if t.YearDay() == now.YearDay() && t.Year() == now.Year() {
		return t.Format("15:04Z")
	}
	return t.Format("2006-01-02T15:04Z")
}

func formatNumber(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// why is one line of the "Why" section: the detail behind a ticket or defer verdict.
type why struct {
	in      Instance
	primary policy.Reason
	// theft is the possible-credential-theft reason, when there is one: it must be seen.
	theft *policy.Reason
}

// whys lists the ticket and defer verdicts with their reasons, in plan order.
func whys(p *Plan) []why {
	var out []why
	for _, in := range p.Instances {
		if in.Action != policy.ActionTicket && in.Action != policy.ActionDefer {
			continue
		}
		w := why{in: in, primary: policy.Reason{Detail: "no reason given"}}
		if len(in.Reasons) > 0 {
			w.primary = in.Reasons[0]
		}
		for _, r := range in.Reasons[min(1, len(in.Reasons)):] {
			if r.Code == policy.ReasonPossibleCredentialTheft {
				w.theft = &r
				break
			}
		}
		out = append(out, w)
	}
	return out
}

// clean makes text safe for a single table cell or line: control characters (tabs,
// newlines, terminal escapes that a tag value could carry) become spaces.
func clean(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// truncate keeps at most n runes, ending in "..." when it cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-3]) + "..."
}

// orDash shows an empty value as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// reasonLine is "code: detail".
func reasonLine(r policy.Reason) string {
	if r.Code == "" {
		return r.Detail
	}
	return string(r.Code) + ": " + r.Detail
}

// rowCells are one instance's cells in the table and the Markdown renderings: account
// and region only when the plan spans several (the caller passes "" then), and the name
// as the caller shortens it.
func rowCells(p *Plan, in Instance, account, region, name string) []string {
	var row []string
	if account == "" {
		row = append(row, orDash(in.AccountID))
	}
	if region == "" {
		row = append(row, orDash(in.Region))
	}
	row = append(row,
		orDash(in.InstanceID),
		orDash(name),
		orDash(in.State),
		orDash(string(in.Action)),
		reasonText(in),
		evidenceText(in, p.Settings, p.GeneratedAt),
	)
	if hasOrigins(p) {
		row = append(row, orDash(in.Source.Label()))
	}
	return row
}

// hasOrigins reports whether any instance names its source: the tables then have a
// column for it.
func hasOrigins(p *Plan) bool {
	for _, in := range p.Instances {
		if in.Source != nil {
			return true
		}
	}
	return false
}
