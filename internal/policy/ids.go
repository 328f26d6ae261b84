package policy

import (
	"regexp"
	"strings"
)

// The shapes of the identifiers imdsguard reads from the outside: EC2's instance ids (i-
// and 8 or 17 hex digits), 12-digit account ids and region names. They are checked here
// and nowhere else.
var (
	instanceIDPattern = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
	accountIDPattern  = regexp.MustCompile(`^[0-9]{12}$`)
	regionPattern     = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
)

// ValidInstanceID reports whether s is an EC2 instance id.
func ValidInstanceID(s string) bool { return instanceIDPattern.MatchString(s) }

// ValidAccountID reports whether s is a 12-digit AWS account id.
func ValidAccountID(s string) bool { return accountIDPattern.MatchString(s) }

// ValidRegion reports whether s has the shape of an AWS region name.
func ValidRegion(s string) bool { return regionPattern.MatchString(s) }

// Ref names one instance: its account, region and id.
type Ref struct{ AccountID, Region, InstanceID string }

// Name is "account/region/instance-id". (Not String: types that embed a Ref, as the
// ledger's outcomes do, would print as just the instance.)
func (r Ref) Name() string { return r.AccountID + "/" + r.Region + "/" + r.InstanceID }

// Valid reports whether every part has its shape.
func (r Ref) Valid() bool {
	return ValidAccountID(r.AccountID) && ValidRegion(r.Region) && ValidInstanceID(r.InstanceID)
}

// ValidRoleName reports whether s is an IAM role name: 1 to 64 of letters, digits and
// +=,.@_-.
func ValidRoleName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("+=,.@_-", r))
	})
}
