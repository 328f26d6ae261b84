package trigger

import "testing"

// TestRegistryKeysAreDistinct: a kind registered twice would silently take the place of
// the first, and a payload key that an EventBridge envelope has would never be reached.
func TestRegistryKeysAreDistinct(t *testing.T) {
	if len(eventParsers) != len(eventKinds) {
		t.Errorf("%d event kinds registered under %d keys: a source and detail-type is there twice", len(eventKinds), len(eventParsers))
	}
	for _, k := range eventKinds {
		if k.source == "" || k.detailType == "" || k.parse == nil {
			t.Errorf("event kind %q / %q is incomplete", k.source, k.detailType)
		}
	}
	keys := map[string]bool{"source": true, "detail-type": true}
	for _, p := range payloadKinds {
		if keys[p.key] || p.name == "" || p.shape == "" || p.parse == nil {
			t.Errorf("payload kind %q is repeated, shadowed by the EventBridge envelope or incomplete", p.key)
		}
		keys[p.key] = true
	}
}
