package policy

import (
	"fmt"
	"strings"
	"time"
)

// The rollout limits (DESIGN.md section 9) bound how much enforcement can go wrong at
// once: a paused switch, a circuit breaker that opens after repeated rollbacks, waves
// that enforce lower environments first, and a budget per account-region. Each blocked
// enforcement is a defer with its own reason. The functions here decide; the ledger
// keeps the state they decide on, and its conditional counter is what makes the budget
// hold across concurrent invocations.

// Reason codes of the rollout limits.
const (
	ReasonPaused         ReasonCode = "paused"
	ReasonBreakerOpen    ReasonCode = "breaker-open"
	ReasonWaitingForWave ReasonCode = "waiting-for-wave"
	ReasonRolloutBudget  ReasonCode = "rollout-budget"
)

// BreakerWindow is how far back rollbacks count towards opening the breaker.
const BreakerWindow = 24 * time.Hour

// Wave selects instances by a tag: those whose tag Key has one of Values (compared
// without regard to case: Dev, dev and DEV are one environment). The last wave of a
// rollout selects every instance no earlier wave did; its Key is empty.
type Wave struct {
	Key    string
	Values []string
}

// Name is the wave as people write it: Environment=dev|development, or "everything
// else".
func (w Wave) Name() string {
	if w.Key == "" {
		return "everything else"
	}
	return w.Key + "=" + strings.Join(w.Values, "|")
}

// RolloutSettings are the limits of the rollout.
type RolloutSettings struct {
	// MaxPerHour and MaxPerSweep bound the enforcements per account-region in a clock
	// hour and in one sweep; zero MaxPerSweep means no bound beyond the hourly one.
	MaxPerHour, MaxPerSweep int
	// Waves are the tag-selected waves before the last, in order; every instance that
	// none of them selects is in the last wave.
	Waves []Wave
	// WaveSoak is how long every enforced instance of the earlier waves must have been
	// settled (verified, or rolled back) before a later wave may enforce.
	WaveSoak time.Duration
	// BreakerRollbacks is how many rollbacks within BreakerWindow open the breaker.
	BreakerRollbacks int
}

// WaveOf returns the index of the instance's wave: that of the first wave that selects
// it, or len(waves) for everything else.
func WaveOf(inst Instance, waves []Wave) int {
	for i, w := range waves {
		value, tagged := inst.Tags[w.Key]
		if !tagged {
			continue
		}
		for _, v := range w.Values {
			if strings.EqualFold(strings.TrimSpace(value), v) {
				return i
			}
		}
	}
	return len(waves)
}

// WaveName names the wave of index i.
func WaveName(waves []Wave, i int) string {
	if i < len(waves) {
		return waves[i].Name()
	}
	return Wave{}.Name()
}

// WaveState is what the ledger knows about one wave's enforced instances in an
// account-region.
type WaveState struct {
	// Verifying counts the enforced instances still being watched.
	Verifying int
	// LastSettled is when the latest of its enforced instances was verified or rolled
	// back; zero when none was.
	LastSettled time.Time
}

// RolloutState is the state of an account-region's rollout.
type RolloutState struct {
	// Paused is set by the operators' pause switch; PausedBy says where it was set.
	Paused   bool
	PausedBy string
	// BreakerOpenedAt is when the breaker opened; zero while it is closed.
	BreakerOpenedAt time.Time
	BreakerWhy      string
	// Waves holds one state per wave index (len(settings.Waves)+1 of them); a missing
	// one is a wave with nothing enforced yet.
	Waves []WaveState
}

// Gate is the rollout's answer about one enforcement.
type Gate struct {
	Allowed bool
	// Reason is the defer's reason when it is not allowed.
	Reason Reason
}

// RolloutGate decides whether an instance may be enforced now, before the budget: the
// pause switch first, then the breaker, then the waves. The budget is taken after it,
// atomically (BudgetSpent says why it was refused).
func RolloutGate(inst Instance, st RolloutState, s RolloutSettings, now time.Time) Gate {
	if g := rolloutBrakes(st); !g.Allowed {
		return g
	}
	return WaveReady(WaveOf(inst, s.Waves), st, s, now)
}

// rolloutBrakes are the brakes every change passes first: the pause switch, then the
// breaker.
func rolloutBrakes(st RolloutState) Gate {
	if st.Paused {
		return blocked(ReasonPaused, "enforcement is paused (%s): nothing is enforced until it is resumed", st.PausedBy)
	}
	if !st.BreakerOpenedAt.IsZero() {
		return blocked(ReasonBreakerOpen, "the circuit breaker of this account-region opened at %s (%s): "+
			"nothing is enforced here until a person closes it (imdsguard status --reset-breaker)",
			st.BreakerOpenedAt.UTC().Format(time.RFC3339), st.BreakerWhy)
	}
	return Gate{Allowed: true}
}

// WaveReady tells whether the wave of index wave may enforce now: every earlier wave's
// enforced instances settled (verified or rolled back), the last of them WaveSoak ago.
func WaveReady(wave int, st RolloutState, s RolloutSettings, now time.Time) Gate {
	for earlier := range wave {
		var ws WaveState
		if earlier < len(st.Waves) {
			ws = st.Waves[earlier]
		}
		name := WaveName(s.Waves, earlier)
		if ws.Verifying > 0 {
			return blocked(ReasonWaitingForWave, "wave %d (%s) waits for wave %d (%s): %d of its enforced instances are still being verified",
				wave+1, WaveName(s.Waves, wave), earlier+1, name, ws.Verifying)
		}
		if !ws.LastSettled.IsZero() {
			if ready := ws.LastSettled.Add(s.WaveSoak); now.Before(ready) {
				return blocked(ReasonWaitingForWave, "wave %d (%s) waits for wave %d (%s) to soak: its last enforced instance settled at %s, "+
					"so this wave may start at %s", wave+1, WaveName(s.Waves, wave), earlier+1, name,
					ws.LastSettled.UTC().Format(time.RFC3339), ready.UTC().Format(time.RFC3339))
			}
		}
	}
	return Gate{Allowed: true}
}

// BudgetKind says which budget ran out.
type BudgetKind int

const (
	// BudgetHour is IMDSGUARD_MAX_ENFORCE_PER_HOUR, per account-region and clock hour.
	BudgetHour BudgetKind = iota
	// BudgetSweep is IMDSGUARD_MAX_ENFORCE_PER_SWEEP, per account-region and sweep.
	BudgetSweep
)

// BudgetHourOf is the clock hour an enforcement at now counts against.
func BudgetHourOf(now time.Time) time.Time { return now.UTC().Truncate(time.Hour) }

// BudgetSpent is the defer of an enforcement the budget had no room for.
func BudgetSpent(kind BudgetKind, s RolloutSettings, now time.Time) Gate {
	if kind == BudgetSweep {
		return blocked(ReasonRolloutBudget, "this sweep has made the %d enforcements in this account-region that IMDSGUARD_MAX_ENFORCE_PER_SWEEP allows; "+
			"the next sweep goes on", s.MaxPerSweep)
	}
	hour := BudgetHourOf(now)
	return blocked(ReasonRolloutBudget, "%d enforcements were made in this account-region in the hour from %s, "+
		"as many as IMDSGUARD_MAX_ENFORCE_PER_HOUR allows; the next hour, from %s, has room", s.MaxPerHour,
		hour.Format(time.RFC3339), hour.Add(time.Hour).Format(time.RFC3339))
}

// BreakerTrips reports whether rollbacks, the times of an account-region's rollbacks
// since the breaker was last closed, open the breaker at now: BreakerRollbacks of them
// within BreakerWindow. why says so in words.
func BreakerTrips(rollbacks []time.Time, s RolloutSettings, now time.Time) (trips bool, why string) {
	if s.BreakerRollbacks <= 0 {
		return false, ""
	}
	n := 0
	for _, at := range rollbacks {
		if !at.After(now) && now.Sub(at) < BreakerWindow {
			n++
		}
	}
	if n < s.BreakerRollbacks {
		return false, ""
	}
	return true, fmt.Sprintf("%d rollbacks within %s (IMDSGUARD_BREAKER_ROLLBACKS is %d)", n, ShortDuration(BreakerWindow), s.BreakerRollbacks)
}

func blocked(code ReasonCode, format string, args ...any) Gate {
	return Gate{Reason: Reason{Code: code, Detail: fmt.Sprintf(format, args...)}}
}

// DefaultWaves are the waves before the last unless configured: development, then test,
// then staging environments by their Environment tag, then everything else.
const DefaultWaves = "Environment=dev|development;Environment=test|testing|qa;Environment=staging|stage"

// ParseWaves reads waves written as DefaultWaves is: wave selectors separated by ";",
// each a tag key, "=", and the values separated by "|". The empty string is no waves:
// every instance is in the one last wave.
func ParseWaves(s string) ([]Wave, error) {
	if s == "" {
		return nil, nil
	}
	var waves []Wave
	for i, part := range strings.Split(s, ";") {
		key, values, ok := strings.Cut(part, "=")
		if !ok || key == "" || values == "" || strings.TrimSpace(key) != key {
			return nil, fmt.Errorf("wave %d %q: want TagKey=value|value", i+1, part)
		}
		w := Wave{Key: key}
		for _, v := range strings.Split(values, "|") {
			if v == "" || strings.TrimSpace(v) != v {
				return nil, fmt.Errorf("wave %d %q: an empty value, or one with spaces around it", i+1, part)
			}
			w.Values = append(w.Values, v)
		}
		waves = append(waves, w)
	}
	return waves, nil
}

// HoldLaterWaves keeps the waves in order within one batch of verdicts (a sweep, or an
// event naming several instances): remediate checks each enforcement against the
// earlier waves' enforcements in the ledger, but the earlier wave's candidates of this
// very batch are not enforced yet, and the queue does not keep order. So a remediate
// verdict of a later wave than the earliest wave with a remediate verdict in the batch
// becomes a defer, waiting-for-wave; the next sweep finds the earlier wave enforced and
// the gate takes over. instances and verdicts are parallel; the verdicts are changed in
// place, and the number held back is returned.
func HoldLaterWaves(instances []*Instance, verdicts []Verdict, waves []Wave) int {
	if len(waves) == 0 {
		return 0
	}
	earliest, count := -1, map[int]int{}
	for i, v := range verdicts {
		if v.Action != ActionRemediate || instances[i] == nil {
			continue
		}
		w := WaveOf(*instances[i], waves)
		count[w]++
		if earliest < 0 || w < earliest {
			earliest = w
		}
	}
	held := 0
	for i, v := range verdicts {
		if v.Action != ActionRemediate || instances[i] == nil {
			continue
		}
		if w := WaveOf(*instances[i], waves); w > earliest {
			verdicts[i] = Verdict{Action: ActionDefer, Reasons: append([]Reason{{ReasonWaitingForWave, fmt.Sprintf(
				"wave %d (%s) waits for wave %d (%s): %d of its instances are to be enforced first, in this sweep",
				w+1, WaveName(waves, w), earliest+1, WaveName(waves, earliest), count[earliest])}}, v.Reasons...)}
			held++
		}
	}
	return held
}
