package report

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// Source is one source of instances (DESIGN.md section 10): a launch template, a launch
// configuration, the account-region's instance metadata defaults, or an AMI in use, with
// what it launches, the instances it launched and the guard's verdict on it.
type Source struct {
	AccountID string            `json:"account_id"`
	Region    string            `json:"region"`
	Kind      policy.SourceKind `json:"kind"`
	// ID is the launch template id, the launch configuration's name, the AMI id, or
	// "<account>/<region>" for the account defaults.
	ID   string `json:"id"`
	Name string `json:"name"`
	// Launches are the metadata options it launches with; null when it sets none (the
	// launches then get the account defaults).
	Launches *Options `json:"launches"`
	// DefaultVersion and LatestVersion are a launch template's; absent otherwise.
	DefaultVersion *int64 `json:"default_version,omitempty"`
	LatestVersion  *int64 `json:"latest_version,omitempty"`
	// Groups are the Auto Scaling groups that launch from it; PinnedBy those of them
	// that launch a fixed version.
	Groups   []string `json:"groups"`
	PinnedBy []string `json:"pinned_by"`
	// Instances are the instances it is judged by: the running ones it launched (every
	// instance of the account-region for the account defaults).
	Instances []string            `json:"instances"`
	Action    policy.SourceAction `json:"action"`
	Reasons   []policy.Reason     `json:"reasons"`
	// Target is set only when Action is fix.
	Target *Options `json:"target,omitempty"`
}

// Origin names the source that launched an instance, and that launches its replacement
// when its Auto Scaling group replaces it.
type Origin struct {
	Kind policy.SourceKind `json:"kind"`
	ID   string            `json:"id"`
	// Group is the Auto Scaling group that launched it; empty when none did.
	Group string `json:"group,omitempty"`
}

// Label is "launch-template lt-0abc via web-asg".
func (o *Origin) Label() string {
	if o == nil {
		return ""
	}
	label := string(o.Kind) + " " + o.ID
	if o.Group != "" {
		label += " via " + o.Group
	}
	return label
}

// SourceSummary counts the sources by action.
type SourceSummary struct {
	Fix    int `json:"fix"`
	Ticket int `json:"ticket"`
	Defer  int `json:"defer"`
	Skip   int `json:"skip"`
}

func (s *SourceSummary) count(a policy.SourceAction) {
	switch a {
	case policy.SourceFix:
		s.Fix++
	case policy.SourceTicket:
		s.Ticket++
	case policy.SourceDefer:
		s.Defer++
	case policy.SourceSkip:
		s.Skip++
	}
}

// NewSource builds the plan entry of one judged source.
func NewSource(accountID, region string, src policy.Source, instances []string, v policy.SourceVerdict, defaultVersion, latestVersion int64) Source {
	out := Source{
		AccountID: accountID, Region: region, Kind: src.Kind, ID: src.ID, Name: src.Name,
		Groups: append([]string{}, src.Groups...), PinnedBy: append([]string{}, src.PinnedBy...),
		Instances: append([]string{}, instances...), Action: v.Action, Reasons: append([]policy.Reason{}, v.Reasons...),
	}
	if src.Options != nil {
		out.Launches = options(*src.Options)
	}
	if src.Kind == policy.SourceLaunchTemplate {
		out.DefaultVersion, out.LatestVersion = &defaultVersion, &latestVersion
	}
	if v.Action == policy.SourceFix && v.Target != nil {
		out.Target = options(*v.Target)
	}
	return out
}

// AddSource appends one source and counts it in the source summary.
func (p *Plan) AddSource(s Source) {
	p.Sources = append(p.Sources, s)
	p.SourceSummary.count(s.Action)
}

func compareSources(a, b Source) int {
	return cmp.Or(
		cmp.Compare(a.AccountID, b.AccountID),
		cmp.Compare(a.Region, b.Region),
		cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.ID, b.ID),
	)
}

// normalizedSources is the sources sorted, with no nil list, and the summary recounted.
func normalizedSources(p *Plan) ([]Source, SourceSummary) {
	out := make([]Source, len(p.Sources))
	var sum SourceSummary
	for i, s := range p.Sources {
		for _, list := range []*[]string{&s.Groups, &s.PinnedBy, &s.Instances} {
			if *list == nil {
				*list = []string{}
			}
		}
		if s.Reasons == nil {
			s.Reasons = []policy.Reason{}
		}
		if s.Action != policy.SourceFix {
			s.Target = nil
		}
		out[i] = s
		sum.count(s.Action)
	}
	slices.SortStableFunc(out, compareSources)
	return out, sum
}

// Label names the source for people: "launch-template lt-0abc (web)".
func (s Source) Label() string {
	if s.Name != "" && s.Name != s.ID {
		return fmt.Sprintf("%s %s (%s)", s.Kind, s.ID, truncate(s.Name, maxNameRunes))
	}
	return fmt.Sprintf("%s %s", s.Kind, s.ID)
}

func sourceSummaryLine(s SourceSummary) string {
	return fmt.Sprintf("Sources: %d fix, %d ticket, %d defer, %d skip", s.Fix, s.Ticket, s.Defer, s.Skip)
}

// launchesText is what a source launches with: "optional, hop 2", or "-" when it sets
// nothing (the account defaults apply).
func launchesText(o *Options) string {
	if o == nil {
		return "- (account defaults)"
	}
	text := orDash(o.HTTPTokens)
	if o.HopLimit > 0 {
		text += ", hop " + strconv.Itoa(int(o.HopLimit))
	}
	return text
}

func sourceRow(s Source, account, region string) []string {
	var row []string
	if account == "" {
		row = append(row, orDash(s.AccountID))
	}
	if region == "" {
		row = append(row, orDash(s.Region))
	}
	code := "-"
	if len(s.Reasons) > 0 {
		code = string(s.Reasons[0].Code)
	}
	launches := launchesText(s.Launches)
	if s.Target != nil {
		launches += " -> " + launchesText(s.Target)
	}
	return append(row, string(s.Kind), orDash(s.ID), orDash(truncate(s.Name, maxNameRunes)), launches,
		strconv.Itoa(len(s.Instances)), orDash(string(s.Action)), code)
}

func sourceHeader(account, region string) []string {
	var header []string
	if account == "" {
		header = append(header, "ACCOUNT")
	}
	if region == "" {
		header = append(header, "REGION")
	}
	return append(header, "KIND", "SOURCE", "NAME", "LAUNCHES", "INSTANCES", "ACTION", "REASON")
}

// writeTableSources is the table format's sources section: one row per source and why
// each one that is not a plain skip was judged so.
func writeTableSources(w io.Writer, p *Plan, account, region string) error {
	if len(p.Sources) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Sources (what launches the instances):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(sourceHeader(account, region), "\t"))
	for _, s := range p.Sources {
		row := sourceRow(s, account, region)
		for i := range row {
			row[i] = clean(row[i])
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, sourceSummaryLine(p.SourceSummary))
	for _, s := range p.Sources {
		if s.Action == policy.SourceSkip || len(s.Reasons) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s %s: %s\n", clean(s.Label()), s.Action, clean(reasonLine(s.Reasons[0])))
	}
	return nil
}

// writeMarkdownSources is the Markdown format's sources section.
func writeMarkdownSources(w io.Writer, p *Plan, account, region string) {
	if len(p.Sources) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Sources")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "**%s**\n\n", sourceSummaryLine(p.SourceSummary))
	header := sourceHeader(account, region)
	for i, h := range header {
		header[i] = strings.ToUpper(h[:1]) + strings.ToLower(h[1:])
	}
	fmt.Fprintln(w, "| "+strings.Join(header, " | ")+" | Why |")
	fmt.Fprintln(w, strings.Repeat("|---", len(header)+1)+"|")
	for _, s := range p.Sources {
		row := sourceRow(s, account, region)
		why := ""
		if len(s.Reasons) > 0 {
			why = s.Reasons[0].Detail
		}
		row = append(row, why)
		for i := range row {
			row[i] = mdCell(row[i])
		}
		fmt.Fprintln(w, "| "+strings.Join(row, " | ")+" |")
	}
}

// SourcesCSVHeader is the header row of the sources CSV (plan --format csv --rows
// sources).
var SourcesCSVHeader = []string{
	"account_id", "region", "kind", "id", "name",
	"http_tokens", "hop_limit", "http_endpoint", "default_version", "latest_version",
	"groups", "pinned_by", "instances", "action", "reason_codes", "reason_details",
	"target_http_tokens", "target_hop_limit",
}

func writeSourcesCSV(w io.Writer, p *Plan) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(SourcesCSVHeader); err != nil {
		return err
	}
	for _, s := range p.Sources {
		var cur [3]string
		if s.Launches != nil {
			cur = optionCells(*s.Launches)
		}
		var tgt [3]string
		if s.Target != nil {
			tgt = optionCells(*s.Target)
		}
		codes := make([]string, len(s.Reasons))
		details := make([]string, len(s.Reasons))
		for i, r := range s.Reasons {
			codes[i], details[i] = string(r.Code), r.Detail
		}
		if err := cw.Write([]string{
			s.AccountID, s.Region, string(s.Kind), s.ID, defuse(s.Name),
			cur[0], cur[1], cur[2], versionCell(s.DefaultVersion), versionCell(s.LatestVersion),
			defuse(strings.Join(s.Groups, ";")), defuse(strings.Join(s.PinnedBy, ";")), strings.Join(s.Instances, ";"),
			string(s.Action), strings.Join(codes, ";"), defuse(strings.Join(details, "; ")),
			tgt[0], tgt[1],
		}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func versionCell(v *int64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatInt(*v, 10)
}
