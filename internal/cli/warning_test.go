package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/policy"
)

func assessed(code policy.ReasonCode, ev policy.Evidence) guard.Assessment {
	return guard.Assessment{Evidence: ev, Verdict: policy.Verdict{Action: policy.ActionDefer, Reasons: []policy.Reason{{Code: code, Detail: "detail of " + string(code)}}}}
}

func TestEvidenceErrorWarning(t *testing.T) {
	denied := func(id string) error {
		// As the SDK returns it: wrapped, with a request id of its own.
		return fmt.Errorf("cloudtrail:LookupEvents for %s: operation error CloudTrail: LookupEvents, https response error StatusCode: 400, RequestID: %s-req, %w",
			id, id, &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform: cloudtrail:LookupEvents"})
	}
	trail := func(id string) guard.Assessment {
		return assessed(policy.ReasonCloudTrailUnavailable, policy.Evidence{InstanceID: id, CloudTrailErr: denied(id)})
	}
	metric := func(err error) guard.Assessment {
		return assessed(policy.ReasonEvidenceError, policy.Evidence{MetricsErr: err})
	}
	fine := assessed(policy.ReasonIMDSv1Unused, policy.Evidence{})
	refused := errors.New("cloudwatch:GetMetricData for 12 instances: operation error CloudWatch: GetMetricData, https response error StatusCode: 0, RequestID: , request send failed: dial tcp 127.0.0.1:1: connect: connection refused")

	tests := []struct {
		name string
		as   []guard.Assessment
		want string // "" for no warning, else a part of it
	}{
		{"none judged", nil, ""},
		{"no errors", []guard.Assessment{fine, fine}, ""},
		{"exactly half is not most", []guard.Assessment{trail("i-1"), fine}, ""},
		{"one of one", []guard.Assessment{trail("i-1")}, "1 of 1 instances were deferred"},
		{"the same API error across instances counts once per instance",
			[]guard.Assessment{trail("i-0aaaaaaaaaaaaaaa1"), trail("i-0aaaaaaaaaaaaaaa2"), metric(refused), fine},
			"3 of 4 instances were deferred because their evidence could not be read; the most common error (2 of them): " +
				"AccessDeniedException: not authorized to perform: cloudtrail:LookupEvents. This usually means a missing permission or a wrong endpoint"},
		{"errors without an API code: request ids and counts do not split them",
			[]guard.Assessment{metric(refused), metric(errors.New(strings.Replace(refused.Error(), "12", "3", 1))), trail("i-1")},
			"the most common error (2 of them): cloudwatch:GetMetricData for N instances: operation error CloudWatch: GetMetricData, https response error StatusCode: 0, request send failed"},
		{"inventory errors", []guard.Assessment{assessed(policy.ReasonEvidenceError, policy.Evidence{InventoryErr: errors.New("boom")})}, "(1 of them): boom."},
		{"no error value: the reason's detail", []guard.Assessment{assessed(policy.ReasonCloudTrailUnavailable, policy.Evidence{})},
			"(1 of them): detail of cloudtrail-unavailable."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := evidenceErrorWarning(tt.as)
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("warning = %q, want %q", got, tt.want)
			}
		})
	}
}
