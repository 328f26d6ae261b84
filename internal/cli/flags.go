package cli

import (
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/report"
)

// settingValue is a setting's flag: it stores the text as given, unchecked
// (policy.LoadSettings checks it with the environment's), and its type is the setting's
// kind, which the help shows: "--hop-limit int", "--lookback duration".
type settingValue struct {
	text string
	kind policy.SettingKind
}

func (v *settingValue) String() string     { return v.text }
func (v *settingValue) Set(s string) error { v.text = s; return nil }
func (v *settingValue) Type() string       { return string(v.kind) }

// formatNames are the plan's output formats, for completion.
func formatNames() []string {
	names := make([]string, len(report.Formats))
	for i, f := range report.Formats {
		names[i] = string(f)
	}
	return names
}
