// Package policy is the guard: it turns the evidence about one EC2 instance into a
// verdict. It is pure (no AWS SDK, no clock of its own, no IO), so every rule can be
// tested with plain values and the same judgement is shared by the CLI and both Lambdas.
package policy

import "time"

// Instance states as EC2 reports them.
const (
	StatePending      = "pending"
	StateRunning      = "running"
	StateShuttingDown = "shutting-down"
	StateTerminated   = "terminated"
	StateStopping     = "stopping"
	StateStopped      = "stopped"
)

// Metadata option values as EC2 reports them.
const (
	TokensRequired  = "required"
	TokensOptional  = "optional"
	EndpointEnabled = "enabled"
	EndpointDisable = "disabled"
)

// MetadataOptions are the instance metadata service settings that the guard reads and
// changes. State is EC2's "pending"/"applied" and is empty in a target.
type MetadataOptions struct {
	HTTPTokens   string
	HopLimit     int32
	HTTPEndpoint string
	State        string
}

// Instance is what the EC2 inventory says about one instance.
type Instance struct {
	AccountID  string
	Region     string
	InstanceID string
	Name       string
	State      string
	LaunchTime time.Time
	// ImageID is the AMI it was launched from.
	ImageID string
	Options MetadataOptions
	Tags    map[string]string
	// InstanceProfileARN is empty when no instance profile is attached: without one there
	// are no role credentials to fetch, so CloudTrail has nothing to say about IMDSv1.
	InstanceProfileARN string
	// Addresses are the instance's own private and public IPv4/IPv6 addresses. A credential
	// delivered over IMDSv1 and used from any other address may have been stolen.
	Addresses []string
}

// MetricUsage summarises the MetadataNoToken series of one instance over the lookback
// window. Hours without a datapoint are "not observed", never zero.
type MetricUsage struct {
	Sum           float64
	ObservedHours int
	// LastDatapoint and LastNonZero are nil when there is no such bucket.
	LastDatapoint *time.Time
	LastNonZero   *time.Time
}

// CloudTrailUsage summarises the credential deliveries of one instance's role seen in
// CloudTrail. Lookups stop at the first IMDSv1 delivery, so the counts are lower bounds.
type CloudTrailUsage struct {
	V1Deliveries int
	V2Deliveries int
	// EventNames, UserAgents and SourceIPs are those of the IMDSv1 deliveries, sorted and
	// de-duplicated: they name the software that still uses IMDSv1.
	EventNames []string
	UserAgents []string
	SourceIPs  []string
	// ForeignSourceIPs are the SourceIPs that are not addresses of the instance.
	ForeignSourceIPs []string
	LastV1Delivery   *time.Time
}

// Evidence is everything known about one instance. A nil part was not gathered; a
// non-nil error means gathering it failed. Neither is ever read as "IMDSv1 unused".
type Evidence struct {
	// InstanceID is the instance asked about; it is set even when Instance is nil.
	InstanceID string
	// Instance is nil when the instance was not found (and InventoryErr is nil).
	Instance     *Instance
	InventoryErr error

	Metrics    *MetricUsage
	MetricsErr error

	// Boot is the MetadataNoToken usage in the instance's first hours after launch
	// (BootWindow), read only when rule 8b asks for it (NeedBootMetrics).
	Boot    *MetricUsage
	BootErr error

	CloudTrail    *CloudTrailUsage
	CloudTrailErr error

	// RolledBack is the ledger's latest rollback of the instance, nil when there was
	// none: rule 5b keeps it from being enforced again for a lookback.
	RolledBack *Rollback
}

// Rollback is a rollback of an enforcement, as the ledger keeps it.
type Rollback struct {
	// At is when the options were restored.
	At time.Time
	// Why is what broke (the verification's reason), for the verdict's detail.
	Why string
}
