package lambdaenv

import (
	"fmt"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// The hub's environment (DESIGN.md section 11), which template.yaml sets from the
// Member* parameters when it deploys the members.
const (
	EnvUnitsQueueURL     = "IMDSGUARD_UNITS_QUEUE_URL"
	EnvOrgRegions        = "IMDSGUARD_ORG_REGIONS"
	EnvOrgUnits          = "IMDSGUARD_ORG_UNITS"
	EnvOrgInclude        = "IMDSGUARD_ORG_INCLUDE_ACCOUNTS"
	EnvOrgExclude        = "IMDSGUARD_ORG_EXCLUDE_ACCOUNTS"
	EnvMemberReadRole    = "IMDSGUARD_MEMBER_READ_ROLE"
	EnvMemberEnforceRole = "IMDSGUARD_MEMBER_ENFORCE_ROLE"
	// The organization trail's Athena table (detect only): with the database and the
	// table set, a sweep's CloudTrail evidence comes from one query of it.
	EnvTrailDatabase  = "IMDSGUARD_TRAIL_DATABASE"
	EnvTrailTable     = "IMDSGUARD_TRAIL_TABLE"
	EnvTrailWorkGroup = "IMDSGUARD_TRAIL_WORKGROUP"
	EnvTrailOutput    = "IMDSGUARD_TRAIL_OUTPUT"
)

// Hub is what a function of the organization's hub reads from its environment.
type Hub struct {
	Organization policy.Organization
	// UnitsQueueURL is the FIFO queue of units of work (detect only).
	UnitsQueueURL string
	// ReadRole and EnforceRole are the member roles' names.
	ReadRole, EnforceRole string
	// Trail names the organization trail's Athena table; nil for none (LookupEvents).
	// detect checks the names (trailquery.Table.Validate): only it links Athena.
	Trail *TrailTable
}

// TrailTable names the organization trail's Athena table, as the environment gives it.
type TrailTable struct {
	Database, Table, WorkGroup, OutputLocation string
}

// LoadHub reads the hub's settings; ok is false for a stack that is no hub (the
// organization's regions are not set), whose functions act in their own account and
// region only.
func LoadHub(lookup func(string) (string, bool)) (h Hub, ok bool, err error) {
	regions := Optional(lookup, EnvOrgRegions, "")
	if regions == "" {
		return Hub{}, false, nil
	}
	org, err := policy.ParseOrganization(regions, Optional(lookup, EnvOrgUnits, ""), Optional(lookup, EnvOrgInclude, ""), Optional(lookup, EnvOrgExclude, ""))
	if err != nil {
		return Hub{}, false, fmt.Errorf("the hub's settings (%s and the rest): %w", EnvOrgRegions, err)
	}
	h = Hub{Organization: org, UnitsQueueURL: Optional(lookup, EnvUnitsQueueURL, ""),
		ReadRole: Optional(lookup, EnvMemberReadRole, "imdsguard-read"), EnforceRole: Optional(lookup, EnvMemberEnforceRole, "imdsguard-enforce")}
	for _, role := range []string{h.ReadRole, h.EnforceRole} {
		if !policy.ValidRoleName(role) {
			return Hub{}, false, fmt.Errorf("the hub's member role %q is not an IAM role name", role)
		}
	}
	database, table := Optional(lookup, EnvTrailDatabase, ""), Optional(lookup, EnvTrailTable, "")
	if database != "" || table != "" {
		h.Trail = &TrailTable{Database: database, Table: table, WorkGroup: Optional(lookup, EnvTrailWorkGroup, "primary"),
			OutputLocation: Optional(lookup, EnvTrailOutput, "")}
	}
	return h, true, nil
}
