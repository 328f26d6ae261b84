package guardrails

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// Report is what `imdsguard guardrails` prints: the readiness of every account and the
// documents to attach.
type Report struct {
	// Version is the version of imdsguard that made the report.
	Version     string
	GeneratedAt time.Time
	// Accounts are rendered in the order given (Readiness sorts them).
	Accounts  []AccountReadiness
	Documents Documents
}

// Ready reports whether every account is ready. A report without accounts is not: no
// evidence is no readiness.
func (r Report) Ready() bool {
	for _, a := range r.Accounts {
		if !a.Ready {
			return false
		}
	}
	return len(r.Accounts) > 0
}

// The documents as a person attaches them, in the order to attach them: the declarative
// policy first, because it only changes defaults (no running instance is touched) and
// from then on a launch that sets nothing gets IMDSv2; the credentials SCP last, because
// it is the one that can break a running workload.
type attachment struct {
	title, file, policyType, name, description string
	// explain says in one line what the document does.
	explain  string
	document func(Documents) json.RawMessage
}

var attachments = []attachment{
	{
		title: "EC2 declarative policy: IMDSv2 by default", file: "declarative-policy-ec2.json",
		policyType: "DECLARATIVE_POLICY_EC2", name: "imdsguard-imds-defaults",
		description: "IMDSv2 required by default (imdsguard)",
		explain: "Sets the instance metadata defaults of every account and region it reaches to HttpTokens required and the hop limit it names; " +
			"the accounts can no longer change them. It sets defaults only: the SCP below is what refuses a launch that asks for IMDSv1.",
		document: func(d Documents) json.RawMessage { return d.DeclarativePolicyEC2 },
	},
	{
		title: "SCP: require IMDSv2 at launch", file: "scp-require-imdsv2.json",
		policyType: "SERVICE_CONTROL_POLICY", name: "imdsguard-require-imdsv2",
		description: "Launch with IMDSv2 only; metadata options changed by exempt roles only (imdsguard)",
		explain: "Refuses every launch (ec2:RunInstances) that does not require IMDSv2 or asks for a larger hop limit, and every change " +
			"of an instance's metadata options (ec2:ModifyInstanceMetadataOptions) by anyone but the exempt roles, imdsguard's own among them.",
		document: func(d Documents) json.RawMessage { return d.RequireIMDSv2 },
	},
	{
		title: "SCP: refuse IMDSv1 credentials", file: "scp-refuse-imdsv1-credentials.json",
		policyType: "SERVICE_CONTROL_POLICY", name: "imdsguard-refuse-imdsv1-credentials",
		description: "Refuse calls signed with role credentials fetched over IMDSv1 (imdsguard)",
		explain: "Refuses every AWS API call signed with instance role credentials fetched over IMDSv1 (ec2:RoleDelivery below 2.0): " +
			"credentials stolen through IMDSv1 become useless, and so does any software still fetching them that way.",
		document: func(d Documents) json.RawMessage { return d.RefuseIMDSv1Credentials },
	},
}

// WriteText renders r for people: the verdict, a readiness table per account and region,
// why each region is not ready, then each document with what it does and how to attach
// it. Nothing is written when rendering fails.
func WriteText(w io.Writer, r Report) error {
	if err := checkDocuments(r.Documents); err != nil {
		return err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "imdsguard guardrails generated %s (imdsguard %s)\n\n", utcSecond(r.GeneratedAt).Format(time.RFC3339), orDash(clean(r.Version)))
	writeVerdict(&b, r)
	if len(r.Accounts) > 0 {
		fmt.Fprintln(&b)
		if err := writeTable(&b, r.Accounts); err != nil {
			return err
		}
	}
	writeRegionLines(&b, r.Accounts, "Why not ready:", func(g RegionReadiness) []string { return g.WhyNotReady })
	writeRegionLines(&b, r.Accounts, "Notes:", func(g RegionReadiness) []string { return g.Notes })

	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "Attach them in this order, and only to ready accounts (the accounts themselves, or OUs that hold nothing else):")
	for i, a := range attachments {
		fmt.Fprintln(&b)
		fmt.Fprintf(&b, "== %d. %s (%s) ==\n", i+1, a.title, a.file)
		fmt.Fprintln(&b, a.explain)
		if a.policyType == "DECLARATIVE_POLICY_EC2" {
			fmt.Fprintf(&b, "  aws organizations enable-policy-type --root-id <root id> --policy-type %s   # once per organization\n", a.policyType)
		}
		fmt.Fprintf(&b, "  aws organizations create-policy --type %s --name %s --description %s --content file://%s\n",
			a.policyType, a.name, strconv.Quote(a.description), a.file)
		fmt.Fprintln(&b, "  aws organizations attach-policy --policy-id <the id create-policy returns> --target-id <ready account or OU id>")
		fmt.Fprintln(&b)
		b.Write(a.document(r.Documents))
		fmt.Fprintln(&b)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// writeVerdict says first whether the guardrails may be attached, and when not, what they
// would break: a person may stop reading here.
func writeVerdict(b *bytes.Buffer, r Report) {
	if len(r.Accounts) == 0 {
		fmt.Fprintln(b, "NOT READY: no account-region was read, and without evidence no account is ready.")
		return
	}
	if r.Ready() {
		fmt.Fprintf(b, "READY: %s ready: every instance read is compliant or verified, and every launch template and launch configuration "+
			"launches with HttpTokens required.\n", countAccounts(len(r.Accounts), true))
		return
	}
	var ready, launches, unread []string
	open := 0
	for _, a := range r.Accounts {
		if a.Ready {
			ready = append(ready, accountLabel(a.AccountID))
		}
		for _, g := range a.Regions {
			where := accountLabel(a.AccountID) + " " + orDash(g.Region)
			if g.Status == ScopeFailed {
				unread = append(unread, where)
			}
			for _, s := range g.SourcesNotReady {
				launches = append(launches, s.Label+" in "+where)
			}
			open += g.Counts.Open
		}
	}
	notReady := len(r.Accounts) - len(ready)
	fmt.Fprintf(b, "NOT READY: %d of %s not ready. Attaching the SCPs to them now would break:\n", notReady, countAccounts(len(r.Accounts), false))
	for _, l := range launches {
		fmt.Fprintf(b, "  - the next launch from %s\n", clean(l))
	}
	switch {
	case open == 1:
		fmt.Fprintln(b, "  - the open instance below, if it still fetches its role credentials over IMDSv1")
	case open > 1:
		fmt.Fprintf(b, "  - any of the %d open instances below that still fetches its role credentials over IMDSv1\n", open)
	}
	for _, u := range unread {
		fmt.Fprintf(b, "  - whatever needs IMDSv1 in %s, which could not be read\n", clean(u))
	}
	if len(ready) == 0 {
		fmt.Fprintln(b, "Ready accounts: none.")
		return
	}
	fmt.Fprintf(b, "Ready accounts: %s. Attach the guardrails to these only until the others are ready.\n", strings.Join(ready, ", "))
}

func countAccounts(n int, ready bool) string {
	switch {
	case n == 1 && ready:
		return "the 1 account is"
	case ready:
		return fmt.Sprintf("all %d accounts are", n)
	case n == 1:
		return "1 account is"
	}
	return fmt.Sprintf("%d accounts are", n)
}

func writeTable(b *bytes.Buffer, accounts []AccountReadiness) error {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tREGION\tREADY\tINSTANCES\tCOMPLIANT\tVERIFIED\tOPEN\tSOURCES NOT READY\tDEFAULTS")
	for _, a := range accounts {
		for _, g := range a.Regions {
			row := []string{accountLabel(a.AccountID), orDash(g.Region), "no", "-", "-", "-", "-", "-", "-"}
			if g.Ready {
				row[2] = "yes"
			}
			if g.Status == ScopeFailed {
				row[2] = "unread"
			} else {
				c := g.Counts
				copy(row[3:], []string{strconv.Itoa(c.Instances), strconv.Itoa(c.Compliant), strconv.Itoa(c.Verified), strconv.Itoa(c.Open),
					strconv.Itoa(len(g.SourcesNotReady)), defaultsCell(g.Defaults)})
			}
			for i := range row {
				row[i] = clean(row[i])
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
	}
	return tw.Flush()
}

// defaultsCell is "required", "optional (declarative-policy)", "no preference".
func defaultsCell(d Defaults) string {
	cell := d.HTTPTokens
	if cell == "" {
		cell = "no preference"
	}
	if d.ManagedBy == managedByDeclarativePolicy {
		cell += " (declarative-policy)"
	}
	return cell
}

// writeRegionLines lists the lines lines(region) gives under heading, grouped by
// account-region; nothing when no region has any.
func writeRegionLines(b *bytes.Buffer, accounts []AccountReadiness, heading string, lines func(RegionReadiness) []string) {
	started := false
	for _, a := range accounts {
		for _, g := range a.Regions {
			ls := lines(g)
			if len(ls) == 0 {
				continue
			}
			if !started {
				fmt.Fprintln(b)
				fmt.Fprintln(b, heading)
				started = true
			}
			fmt.Fprintf(b, "  %s %s:\n", accountLabel(a.AccountID), clean(orDash(g.Region)))
			for _, l := range ls {
				fmt.Fprintf(b, "    - %s\n", clean(l))
			}
		}
	}
}

func accountLabel(id string) string {
	if id == "" {
		return "(unknown)"
	}
	return clean(id)
}

// reportJSON is the imdsguard.guardrails/v1 document.
type reportJSON struct {
	Schema      string             `json:"schema"`
	Version     string             `json:"version"`
	GeneratedAt time.Time          `json:"generated_at"`
	Ready       bool               `json:"ready"`
	Accounts    []AccountReadiness `json:"accounts"`
	Documents   Documents          `json:"documents"`
}

// WriteJSON writes r as the imdsguard.guardrails/v1 document, indented by two spaces with
// a trailing newline; lists are [] rather than null. Nothing is written when rendering
// fails.
func WriteJSON(w io.Writer, r Report) error {
	if r.Version == "" {
		return errors.New("guardrails: the report names no imdsguard version")
	}
	if err := checkDocuments(r.Documents); err != nil {
		return err
	}
	doc := reportJSON{
		Schema: Schema, Version: r.Version, GeneratedAt: utcSecond(r.GeneratedAt), Ready: r.Ready(),
		Accounts: make([]AccountReadiness, len(r.Accounts)), Documents: r.Documents,
	}
	for i, a := range r.Accounts {
		a.Regions = append([]RegionReadiness{}, a.Regions...)
		for j, g := range a.Regions {
			g.OpenInstances = nonNil(g.OpenInstances)
			g.SourcesNotReady = nonNil(g.SourcesNotReady)
			g.WhyNotReady = nonNil(g.WhyNotReady)
			g.Notes = nonNil(g.Notes)
			a.Regions[j] = g
		}
		doc.Accounts[i] = a
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("guardrails: encoding the report: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// checkDocuments refuses a report without its documents: printing the readiness with
// null in place of a policy would look like a policy that says nothing.
func checkDocuments(d Documents) error {
	if len(d.RequireIMDSv2) == 0 || len(d.RefuseIMDSv1Credentials) == 0 || len(d.DeclarativePolicyEC2) == 0 {
		return errors.New("guardrails: the report lacks its policy documents (see NewDocuments)")
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func utcSecond(t time.Time) time.Time {
	return t.UTC().Truncate(time.Second)
}

// clean keeps text on its line: control characters (newlines, tabs, terminal escapes an
// error message or a template name could carry) become spaces.
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
