package report

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// CSVHeader is the header row of the CSV format, one column per field; a null field is
// an empty cell.
var CSVHeader = []string{
	"account_id", "region", "instance_id", "name", "state",
	"http_tokens", "hop_limit", "http_endpoint",
	"action", "reason_codes", "reason_details",
	"target_http_tokens", "target_hop_limit", "target_http_endpoint",
	"metadata_no_token_sum", "observed_hours", "last_datapoint", "last_v1_use",
	"cloudtrail_checked", "v1_deliveries", "v2_deliveries", "user_agents", "source_ips",
	"source_kind", "source_id", "source_group",
}

// writeCSV writes the header and one row per instance. Lists are joined with ";"
// (reason details with "; "). Free text that others control (the Name tag, user agents,
// and the reason details that quote them) is defused against spreadsheet formula
// injection: a cell starting with = + - @ or a control character gets a leading '.
func writeCSV(w io.Writer, p *Plan) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, in := range p.Instances {
		if err := cw.Write(csvRow(in)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func csvRow(in Instance) []string {
	codes := make([]string, len(in.Reasons))
	details := make([]string, len(in.Reasons))
	for i, r := range in.Reasons {
		codes[i] = string(r.Code)
		details[i] = r.Detail
	}
	var cur, tgt [3]string
	if in.Current != nil {
		cur = optionCells(*in.Current)
	}
	if in.Target != nil && in.Action == policy.ActionRemediate {
		tgt = optionCells(*in.Target)
	}
	e := in.Evidence
	ct := e.CloudTrail
	var v1, v2 string
	if ct.Checked {
		v1, v2 = strconv.Itoa(ct.V1Deliveries), strconv.Itoa(ct.V2Deliveries)
	}
	row := []string{
		in.AccountID, in.Region, in.InstanceID, defuse(in.Name), in.State,
		cur[0], cur[1], cur[2],
		string(in.Action), strings.Join(codes, ";"), defuse(strings.Join(details, "; ")),
		tgt[0], tgt[1], tgt[2],
		floatCell(e.MetadataNoTokenSum), intCell(e.ObservedHours), timeCell(e.LastDatapoint), timeCell(e.LastV1Use),
		strconv.FormatBool(ct.Checked), v1, v2,
		defuse(strings.Join(ct.UserAgents, ";")), defuse(strings.Join(ct.SourceIPs, ";")),
		"", "", "",
	}
	if o := in.Source; o != nil {
		row[len(row)-3], row[len(row)-2], row[len(row)-1] = string(o.Kind), o.ID, defuse(o.Group)
	}
	return row
}

func optionCells(o Options) [3]string {
	return [3]string{o.HTTPTokens, strconv.Itoa(int(o.HopLimit)), o.HTTPEndpoint}
}

func floatCell(f *float64) string {
	if f == nil {
		return ""
	}
	return formatNumber(*f)
}

func intCell(n *int) string {
	if n == nil {
		return ""
	}
	return strconv.Itoa(*n)
}

func timeCell(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// defuse prefixes a cell that a spreadsheet would read as a formula with "'".
func defuse(s string) string {
	if s == "" {
		return s
	}
	switch c := s[0]; {
	case c == '=' || c == '+' || c == '-' || c == '@' || c < ' ':
		return "'" + s
	}
	return s
}
