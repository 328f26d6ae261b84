package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Organization is the part of an AWS Organization a hub acts in (DESIGN.md section 11):
// the regions, the organizational units whose accounts are members (none: every account
// of the organization), and the accounts included (none: all of them) and excluded.
type Organization struct {
	Regions []string
	Units   []string
	Include []string
	Exclude []string
}

var organizationalUnitPattern = regexp.MustCompile(`^(ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32})$`)

// ValidOrganizationalUnit reports whether s is an organizational unit id (ou-...) or a
// root id (r-...).
func ValidOrganizationalUnit(s string) bool { return organizationalUnitPattern.MatchString(s) }

// ParseOrganization reads the hub's settings: comma-separated lists, blanks ignored.
// Regions must not be empty. Each value is checked, and an account both included and
// excluded is an error rather than a guess.
func ParseOrganization(regions, units, include, exclude string) (Organization, error) {
	list := func(s string) []string {
		var out []string
		for v := range strings.SplitSeq(s, ",") {
			if v = strings.TrimSpace(v); v != "" && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		return out
	}
	o := Organization{Regions: list(regions), Units: list(units), Include: list(include), Exclude: list(exclude)}
	if len(o.Regions) == 0 {
		return Organization{}, fmt.Errorf("the organization's regions are not set: the hub sweeps only the regions it is given")
	}
	for _, r := range o.Regions {
		if !ValidRegion(r) {
			return Organization{}, fmt.Errorf("organization region %q is not a region", r)
		}
	}
	for _, u := range o.Units {
		if !ValidOrganizationalUnit(u) {
			return Organization{}, fmt.Errorf("organizational unit %q is not an OU id (ou-...) or a root id (r-...)", u)
		}
	}
	for _, a := range append(slices.Clone(o.Include), o.Exclude...) {
		if !ValidAccountID(a) {
			return Organization{}, fmt.Errorf("account %q is not a 12-digit account id", a)
		}
	}
	for _, a := range o.Include {
		if slices.Contains(o.Exclude, a) {
			return Organization{}, fmt.Errorf("account %s is both included and excluded", a)
		}
	}
	return o, nil
}

// Accounts are the members among the accounts the organization lists (those of Units,
// or all of them): the included ones, or all, less the excluded; sorted. An included
// account the organization does not list is not a member.
func (o Organization) Accounts(listed []string) []string {
	var out []string
	for _, a := range listed {
		if (len(o.Include) == 0 || slices.Contains(o.Include, a)) && !slices.Contains(o.Exclude, a) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// Admits says why the hub does not act in account's region, or "" when it may. It
// cannot tell an account's organizational unit: an account outside Units has no member
// role, so nothing can be done there, and the attempt fails visibly.
func (o Organization) Admits(account, region string) string {
	switch {
	case !ValidAccountID(account):
		return fmt.Sprintf("%q is not a 12-digit account id", account)
	case !slices.Contains(o.Regions, region):
		return fmt.Sprintf("region %q is not one of the organization's regions (%s)", region, strings.Join(o.Regions, ", "))
	case slices.Contains(o.Exclude, account):
		return fmt.Sprintf("account %s is excluded", account)
	case len(o.Include) > 0 && !slices.Contains(o.Include, account):
		return fmt.Sprintf("account %s is not one of the included accounts", account)
	}
	return ""
}
