package cli

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/smithy-go"

	"github.com/imdsguard/imdsguard/internal/guard"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// evidenceErrorWarning returns a warning when more than half of the instances judged
// were deferred because their evidence could not be read (primary reason evidence-error
// or cloudtrail-unavailable), saying how many and the most common error; "" otherwise.
// So many failures at once are seldom a property of the fleet: they usually are a
// missing permission or a wrong endpoint, which the per-instance reasons do not make
// obvious. The warning does not change the exit code.
func evidenceErrorWarning(assessments []guard.Assessment) string {
	var deferred int
	byError := map[string]int{}
	for _, a := range assessments {
		if len(a.Verdict.Reasons) == 0 {
			continue
		}
		switch a.Verdict.Reasons[0].Code {
		case policy.ReasonEvidenceError, policy.ReasonCloudTrailUnavailable:
			deferred++
			byError[evidenceErrorOf(a)]++
		}
	}
	if deferred == 0 || 2*deferred <= len(assessments) {
		return ""
	}
	var common string
	for e, n := range byError {
		// The lowest text among equals, so that the warning does not change from run to run.
		if n > byError[common] || n == byError[common] && e < common {
			common = e
		}
	}
	return fmt.Sprintf("%d of %d instances were deferred because their evidence could not be read; "+
		"the most common error (%d of them): %s. This usually means a missing permission or a wrong endpoint, not something about the fleet",
		deferred, len(assessments), byError[common], common)
}

var (
	requestIDText = regexp.MustCompile(`RequestID: [^,]*, `)
	instanceText  = regexp.MustCompile(`\bi-[0-9a-f]{8,17}\b`)
	countText     = regexp.MustCompile(`\bfor [0-9]+ instances\b`)
)

// evidenceErrorOf is the error behind an instance's evidence-error or
// cloudtrail-unavailable verdict, in a form that is the same for every instance it hit:
// the service's error code and message when AWS answered with one, else the error's text
// without request and instance ids; the reason's detail when there is no error value
// (the evidence was not read at all).
func evidenceErrorOf(a guard.Assessment) string {
	ev := a.Evidence
	var err error
	switch {
	case a.Verdict.Reasons[0].Code == policy.ReasonCloudTrailUnavailable:
		err = ev.CloudTrailErr
	case ev.InventoryErr != nil:
		err = ev.InventoryErr
	default:
		err = ev.MetricsErr
	}
	if err == nil {
		return a.Verdict.Reasons[0].Detail
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return strings.TrimSpace(api.ErrorCode() + ": " + api.ErrorMessage())
	}
	text := requestIDText.ReplaceAllString(err.Error(), "")
	text = instanceText.ReplaceAllString(text, "i-...")
	return countText.ReplaceAllString(text, "for N instances")
}
