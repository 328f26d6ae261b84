package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// Settings are the guard settings the plan was made under. In JSON they are every
// setting of policy.SettingSpecs, in that order, derived from the definitions so that a
// new setting cannot be left out:
//
//   - the key is the setting's flag name in snake case (container-hop-limit:
//     container_hop_limit), except lookback, which is lookback_hours, a whole number of
//     hours, as imdsguard.plan/v1 has always had it;
//   - the value is the field of policy.Settings named like the flag without its dashes
//     (MinObservedHours): a duration as a string the flag accepts back ("3h", "1h30m"),
//     anything else as encoding/json writes it (numbers, strings, lists of strings).
type Settings policy.Settings

// The lookback is the one setting whose key is not its flag name.
const lookbackFlag, lookbackKey = "lookback", "lookback_hours"

// SettingKey is the plan's JSON key of the setting with this flag name.
func SettingKey(flag string) string {
	if flag == lookbackFlag {
		return lookbackKey
	}
	return strings.ReplaceAll(flag, "-", "_")
}

// lookbackHours is the lookback in whole hours, as the renderers show it.
func (s Settings) lookbackHours() int { return int(s.Lookback / time.Hour) }

var durationType = reflect.TypeFor[time.Duration]()

// settingField is the field of policy.Settings (given as an addressable or plain value)
// that holds the setting with this flag name.
func settingField(v reflect.Value, flag string) (reflect.Value, error) {
	name := strings.ReplaceAll(flag, "-", "")
	f := v.FieldByNameFunc(func(field string) bool { return strings.EqualFold(field, name) })
	if !f.IsValid() {
		return reflect.Value{}, fmt.Errorf("report: setting %s has no field %s in policy.Settings", flag, name)
	}
	return f, nil
}

// MarshalJSON writes every setting, in policy.SettingSpecs order.
func (s Settings) MarshalJSON() ([]byte, error) {
	v := reflect.ValueOf(policy.Settings(s))
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, spec := range policy.SettingSpecs {
		f, err := settingField(v, spec.Flag)
		if err != nil {
			return nil, err
		}
		var value any = f.Interface()
		if f.Type() == durationType {
			d := time.Duration(f.Int())
			if spec.Flag == lookbackFlag {
				value = int(d / time.Hour)
			} else {
				value = formatDuration(d)
			}
		}
		b, err := marshalRaw(value)
		if err != nil {
			return nil, fmt.Errorf("report: setting %s: %w", spec.Flag, err)
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		key, _ := marshalRaw(SettingKey(spec.Flag))
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(b)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON reads the settings MarshalJSON writes. Keys it does not know (settings
// of a later imdsguard) are ignored; missing ones are left zero.
func (s *Settings) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	var out policy.Settings
	v := reflect.ValueOf(&out).Elem()
	for _, spec := range policy.SettingSpecs {
		msg, ok := raw[SettingKey(spec.Flag)]
		if !ok || string(msg) == "null" {
			continue
		}
		f, err := settingField(v, spec.Flag)
		if err != nil {
			return err
		}
		if f.Type() == durationType {
			d, err := parseDurationSetting(spec.Flag, msg)
			if err != nil {
				return err
			}
			f.SetInt(int64(d))
			continue
		}
		if err := json.Unmarshal(msg, f.Addr().Interface()); err != nil {
			return fmt.Errorf("setting %s: %w", SettingKey(spec.Flag), err)
		}
	}
	*s = Settings(out)
	return nil
}

func parseDurationSetting(flag string, msg json.RawMessage) (time.Duration, error) {
	if flag == lookbackFlag {
		var hours int
		if err := json.Unmarshal(msg, &hours); err != nil {
			return 0, fmt.Errorf("setting %s: %w", lookbackKey, err)
		}
		return time.Duration(hours) * time.Hour, nil
	}
	var text string
	if err := json.Unmarshal(msg, &text); err != nil {
		return 0, fmt.Errorf("setting %s: %w", SettingKey(flag), err)
	}
	d, err := time.ParseDuration(text)
	if err != nil {
		return 0, fmt.Errorf("setting %s: %w", SettingKey(flag), err)
	}
	return d, nil
}

// formatDuration writes a duration as the flags take it, without zero units: "3h",
// "1h30m", "90s", and zero as "0h" (a boot window that is off).
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0h"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
