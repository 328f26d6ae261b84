package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/policy"
)

func TestParseOrganization(t *testing.T) {
	tests := []struct {
		name                             string
		regions, units, include, exclude string
		want                             policy.Organization
		wantErr                          string
	}{
		{name: "regions only", regions: "us-east-1, eu-west-1,,us-east-1",
			want: policy.Organization{Regions: []string{"us-east-1", "eu-west-1"}}},
		{name: "everything", regions: "us-east-1", units: "ou-ab12-cdef3456,r-ab12", include: "111111111111", exclude: "222222222222",
			want: policy.Organization{Regions: []string{"us-east-1"}, Units: []string{"ou-ab12-cdef3456", "r-ab12"},
				Include: []string{"111111111111"}, Exclude: []string{"222222222222"}}},
		{name: "no regions", regions: " , ", wantErr: "regions are not set"},
		{name: "bad region", regions: "mars-1", wantErr: `"mars-1" is not a region`},
		{name: "bad unit", regions: "us-east-1", units: "engineering", wantErr: `"engineering" is not an OU id`},
		{name: "bad account", regions: "us-east-1", exclude: "1234", wantErr: `"1234" is not a 12-digit`},
		{name: "included and excluded", regions: "us-east-1", include: "111111111111", exclude: "111111111111", wantErr: "both included and excluded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := policy.ParseOrganization(tc.regions, tc.units, tc.include, tc.exclude)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Regions, tc.want.Regions) || !slices.Equal(got.Units, tc.want.Units) ||
				!slices.Equal(got.Include, tc.want.Include) || !slices.Equal(got.Exclude, tc.want.Exclude) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestOrganizationAccountsAndAdmits(t *testing.T) {
	listed := []string{"333333333333", "111111111111", "222222222222", "111111111111"}
	tests := []struct {
		name    string
		org     policy.Organization
		want    []string
		refused map[string]string // account -> part of the reason (us-east-1)
	}{
		{name: "all", org: policy.Organization{Regions: []string{"us-east-1"}},
			want: []string{"111111111111", "222222222222", "333333333333"}},
		{name: "excluded", org: policy.Organization{Regions: []string{"us-east-1"}, Exclude: []string{"222222222222"}},
			want: []string{"111111111111", "333333333333"}, refused: map[string]string{"222222222222": "excluded"}},
		{name: "included, one of them not listed", org: policy.Organization{Regions: []string{"us-east-1"}, Include: []string{"333333333333", "444444444444"}},
			want: []string{"333333333333"}, refused: map[string]string{"111111111111": "not one of the included"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.org.Accounts(listed); !slices.Equal(got, tc.want) {
				t.Errorf("Accounts = %v, want %v", got, tc.want)
			}
			for _, a := range tc.want {
				if why := tc.org.Admits(a, "us-east-1"); why != "" {
					t.Errorf("Admits(%s) = %q, want admitted", a, why)
				}
				if why := tc.org.Admits(a, "eu-west-1"); !strings.Contains(why, "not one of the organization's regions") {
					t.Errorf("Admits(%s, eu-west-1) = %q, want the region refused", a, why)
				}
			}
			for a, want := range tc.refused {
				if why := tc.org.Admits(a, "us-east-1"); !strings.Contains(why, want) {
					t.Errorf("Admits(%s) = %q, want %q", a, why, want)
				}
			}
			if why := tc.org.Admits("12", "us-east-1"); why == "" {
				t.Error("a malformed account id was admitted")
			}
		})
	}
}
