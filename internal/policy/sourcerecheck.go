package policy

import (
	"fmt"
	"time"
)

// QueuedSource is what remediate knows about a queued verdict on a source before it looks
// at the source.
type QueuedSource struct {
	Authenticity Authenticity
	Foreign      bool
	Kind         SourceKind
	Action       SourceAction
	CreatedAt    time.Time
	// SeenVersion is the launch template's default version the verdict was made on.
	SeenVersion int64
}

// LiveSource is the source as EC2 reports it now.
type LiveSource struct {
	// Gone is set when the launch template no longer exists.
	Gone bool
	// DefaultVersion is a launch template's default version now.
	DefaultVersion int64
	// Options are what it launches with now (nil: it sets none).
	Options *MetadataOptions
	// ManagedBy is the account defaults' (ManagedByDeclarativePolicy: not the account's).
	ManagedBy string
	// RolledBack is the source's latest rollback, nil for none.
	RolledBack *Rollback
}

// SourceRecheck is what remediate does with a queued source verdict: Refuse (the message
// is not detect's, or dated in the future), Nothing (the source changed since the
// decision, or is fixed already: Note says how), or carry the verdict out.
type SourceRecheck struct {
	Refuse, Nothing bool
	Note            string
}

// RecheckSource checks a queued source verdict against the source as it is now. A fix is
// made only on the very state it was decided on: any change to the template's default
// version since is an event that detect judges afresh, and a verdict older than MaxAge
// waits for the next sweep, since its instances' evidence may have moved on.
func RecheckSource(q QueuedSource, live LiveSource, limits RecheckLimits, now time.Time) SourceRecheck {
	now = now.UTC()
	switch {
	case q.Foreign:
		return SourceRecheck{Refuse: true, Note: "the verdict is about another account or region than this function's"}
	case q.Authenticity == NotRecorded:
		return SourceRecheck{Refuse: true, Note: "not recorded by detect: no decision with this id is in the ledger"}
	case q.Authenticity != Recorded:
		return SourceRecheck{Refuse: true, Note: "the message differs from the decision detect recorded under its id"}
	case q.CreatedAt.IsZero():
		return SourceRecheck{Refuse: true, Note: "the verdict has no creation time"}
	case q.CreatedAt.After(now.Add(limits.MaxClockSkew)):
		return SourceRecheck{Refuse: true, Note: fmt.Sprintf("the verdict was created at %s, %s in the future",
			q.CreatedAt.UTC().Format(time.RFC3339), ShortDuration(q.CreatedAt.Sub(now)))}
	}
	if q.Action != SourceFix {
		return SourceRecheck{}
	}
	switch {
	case limits.MaxAge > 0 && now.Sub(q.CreatedAt) > limits.MaxAge:
		return SourceRecheck{Nothing: true, Note: fmt.Sprintf("the verdict is %s old, more than %s: the next sweep judges the source again",
			ShortDuration(now.Sub(q.CreatedAt)), ShortDuration(limits.MaxAge))}
	case live.Gone:
		return SourceRecheck{Nothing: true, Note: "the launch template no longer exists"}
	case live.Options != nil && live.Options.HTTPTokens == TokensRequired:
		return SourceRecheck{Nothing: true, Note: "it launches with HttpTokens required already"}
	case live.ManagedBy == ManagedByDeclarativePolicy:
		return SourceRecheck{Nothing: true, Note: "the account defaults are set by a declarative policy now"}
	case q.Kind == SourceLaunchTemplate && live.DefaultVersion != q.SeenVersion:
		return SourceRecheck{Nothing: true, Note: fmt.Sprintf("the default version is %d now, not the %d the verdict was made on: "+
			"that change is judged on its own", live.DefaultVersion, q.SeenVersion)}
	case live.RolledBack != nil:
		return SourceRecheck{Nothing: true, Note: fmt.Sprintf("it was rolled back at %s (%s): it is not fixed again before a person looks",
			live.RolledBack.At.UTC().Format(time.RFC3339), live.RolledBack.Why)}
	}
	return SourceRecheck{}
}

// SourceGate decides whether a source fix in the given wave may be made now: the pause
// switch, the breaker and the waves, as for an instance (RolloutGate).
func SourceGate(wave int, st RolloutState, s RolloutSettings, now time.Time) Gate {
	if g := rolloutBrakes(st); !g.Allowed {
		return g
	}
	return WaveReady(wave, st, s, now)
}

// SourceTargetAllowed checks a fix's target against the settings remediate runs with: a
// launch template's hop limit must be IMDSGUARD_HOP_LIMIT or IMDSGUARD_CONTAINER_HOP_LIMIT
// (detect and remediate read the same settings, so any other is not theirs); the account
// defaults set HttpTokens only.
func SourceTargetAllowed(kind SourceKind, target MetadataOptions, s Settings) (ok bool, why string) {
	if target.HTTPTokens != TokensRequired {
		return false, fmt.Sprintf("the fix's HttpTokens is %q, not required", target.HTTPTokens)
	}
	if kind == SourceLaunchTemplate && target.HopLimit != s.HopLimit && target.HopLimit != s.ContainerHopLimit {
		return false, fmt.Sprintf("the fix's hop limit %d is neither IMDSGUARD_HOP_LIMIT (%d) nor IMDSGUARD_CONTAINER_HOP_LIMIT (%d)",
			target.HopLimit, s.HopLimit, s.ContainerHopLimit)
	}
	return true, ""
}
