package lambdaenv_test

import (
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/lambdaenv"
)

func TestLoadHub(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantHub bool
		wantErr string
	}{
		{name: "no regions: no hub", env: map[string]string{lambdaenv.EnvUnitsQueueURL: "https://sqs.example/units.fifo"}},
		{name: "a hub", env: map[string]string{lambdaenv.EnvOrgRegions: "us-east-1,eu-west-1", lambdaenv.EnvOrgExclude: "111111111111",
			lambdaenv.EnvTrailDatabase: "trail", lambdaenv.EnvTrailTable: "cloudtrail_org"}, wantHub: true},
		{name: "bad region", env: map[string]string{lambdaenv.EnvOrgRegions: "mars-1"}, wantErr: `"mars-1" is not a region`},
		{name: "bad role", env: map[string]string{lambdaenv.EnvOrgRegions: "us-east-1", lambdaenv.EnvMemberReadRole: "no spaces"}, wantErr: "not an IAM role name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, ok, err := lambdaenv.LoadHub(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || ok != tc.wantHub {
				t.Fatalf("hub %v, err %v; want hub %v", ok, err, tc.wantHub)
			}
			if ok && (h.ReadRole != "imdsguard-read" || h.EnforceRole != "imdsguard-enforce" || len(h.Organization.Regions) != 2 ||
				h.Trail == nil || h.Trail.WorkGroup != "primary" || h.Organization.Admits("111111111111", "us-east-1") == "") {
				t.Errorf("hub %+v: want the default roles, two regions, the trail in primary, the excluded account refused", h)
			}
		})
	}
}
