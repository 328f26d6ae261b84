package trigger

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SourceRefKind is the kind of a source of instances (DESIGN.md section 10).
type SourceRefKind string

// The kinds of source a request can ask to judge again.
const (
	SourceRefLaunchTemplate   SourceRefKind = "launch-template"
	SourceRefAutoScalingGroup SourceRefKind = "auto-scaling-group"
	SourceRefAccountDefaults  SourceRefKind = "account-defaults"
)

// SourceRef names one source to judge again.
type SourceRef struct {
	Kind SourceRefKind // "launch-template", "auto-scaling-group", "account-defaults"
	// ID is the launch template id (lt-...), or "" when the event names it only by name;
	// Name is the launch template's or group's name. Both empty for account-defaults.
	ID, Name string
}

// String is "launch-template/lt-... (name)", "launch-template/lt-..." or
// "launch-template/<name>" as the event named it, "auto-scaling-group/<name>" or
// "account-defaults".
func (s SourceRef) String() string {
	switch {
	case s.ID != "" && s.Name != "":
		return string(s.Kind) + "/" + s.ID + " (" + s.Name + ")"
	case s.ID != "":
		return string(s.Kind) + "/" + s.ID
	case s.Name != "":
		return string(s.Kind) + "/" + s.Name
	}
	return string(s.Kind)
}

// ForeignSource is a source in another account or region than the function's.
type ForeignSource struct {
	AccountID, Region string
	Source            SourceRef
}

// Name is "account/region/<source>", as policy.Ref's Name is "account/region/instance-id".
func (f ForeignSource) Name() string { return f.AccountID + "/" + f.Region + "/" + f.Source.String() }

// The shapes of the sources' names, as EC2 and Auto Scaling define them: launch template
// ids are lt- and 17 hex digits (8 for old templates); launch template names are 3 to 128
// characters of [A-Za-z0-9()./_-]; Auto Scaling group names are 1 to 255 characters, no
// colon and no control characters.
var (
	launchTemplateIDPattern   = regexp.MustCompile(`^lt-[0-9a-f]{8}([0-9a-f]{9})?$`)
	launchTemplateNamePattern = regexp.MustCompile(`^[A-Za-z0-9()./_-]{3,128}$`)
)

func validLaunchTemplateID(s string) bool   { return launchTemplateIDPattern.MatchString(s) }
func validLaunchTemplateName(s string) bool { return launchTemplateNamePattern.MatchString(s) }

func validAutoScalingGroupName(s string) bool {
	n := utf8.RuneCountInString(s)
	return n >= 1 && n <= 255 && utf8.ValidString(s) && !strings.ContainsRune(s, ':') &&
		!strings.ContainsFunc(s, unicode.IsControl)
}
