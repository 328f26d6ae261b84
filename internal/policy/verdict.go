package policy

// Action is what the guard decides to do with an instance.
type Action string

// The four actions, in the order the plan summary lists them.
const (
	ActionRemediate Action = "remediate"
	ActionTicket    Action = "ticket"
	ActionDefer     Action = "defer"
	ActionSkip      Action = "skip"
)

// Actions lists every action in summary order.
var Actions = []Action{ActionRemediate, ActionTicket, ActionDefer, ActionSkip}

// ReasonCode is a stable, machine-readable reason. The codes are part of the plan and
// verdict contracts (DESIGN.md section 3): never rename one.
type ReasonCode string

// Primary reason codes, one per verdict rule.
const (
	ReasonTerminated            ReasonCode = "terminated"
	ReasonCompliant             ReasonCode = "compliant"
	ReasonExempt                ReasonCode = "exempt"
	ReasonEndpointDisabled      ReasonCode = "endpoint-disabled"
	ReasonNotRunning            ReasonCode = "not-running"
	ReasonRolledBack            ReasonCode = "rolled-back"
	ReasonIMDSv1UsedMetric      ReasonCode = "imdsv1-used-metric"
	ReasonInsufficientMetrics   ReasonCode = "insufficient-metrics"
	ReasonStaleMetrics          ReasonCode = "stale-metrics"
	ReasonIMDSv1UsedAtBoot      ReasonCode = "imdsv1-used-at-boot"
	ReasonIMDSv1UsedCloudTrail  ReasonCode = "imdsv1-used-cloudtrail"
	ReasonCloudTrailUnavailable ReasonCode = "cloudtrail-unavailable"
	ReasonIMDSv1Unused          ReasonCode = "imdsv1-unused"
	ReasonEvidenceError         ReasonCode = "evidence-error"
)

// Secondary reason codes: appended to explain, never change the action.
const (
	ReasonContainerHost           ReasonCode = "container-host"
	ReasonNoInstanceProfile       ReasonCode = "no-instance-profile"
	ReasonExemptionExpired        ReasonCode = "exemption-expired"
	ReasonPossibleCredentialTheft ReasonCode = "possible-credential-theft"
	ReasonBootUnobserved          ReasonCode = "boot-unobserved"
)

// Reason is one reason code with a human-readable detail.
type Reason struct {
	Code   ReasonCode `json:"code"`
	Detail string     `json:"detail"`
}

// Verdict is the guard's decision for one instance. Reasons[0] is the primary reason.
// Target is set only when Action is remediate.
type Verdict struct {
	Action  Action
	Reasons []Reason
	Target  *MetadataOptions
}

// Primary returns the primary reason code.
func (v Verdict) Primary() ReasonCode {
	if len(v.Reasons) == 0 {
		return ""
	}
	return v.Reasons[0].Code
}
