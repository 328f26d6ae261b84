package report

import (
	"bytes"
	"cmp"
	"slices"
	"strings"
	"testing"
)

// TestWriteTableSorted: the table in another order (by name, as the demo lists it) has
// the same lines as the table, with the rows and the Why lines in that order, and leaves
// the plan as it was.
func TestWriteTableSorted(t *testing.T) {
	p := fixturePlan()
	first := p.Instances[0].InstanceID
	byName := func(a, b Instance) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.InstanceID, b.InstanceID))
	}
	var buf bytes.Buffer
	if err := WriteTableSorted(&buf, p, byName); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if p.Instances[0].InstanceID != first {
		t.Error("WriteTableSorted sorted the caller's plan")
	}
	byID := render(t, p, FormatTable)
	if sortedLines(out) != sortedLines(byID) {
		t.Errorf("not the same lines as the table:\n%s\nvs\n%s", out, byID)
	}
	if out == byID {
		t.Fatalf("the fixture's order by name is its order by id: the test proves nothing")
	}
	// Rows by name, then id: the nameless instances (i-...05, i-...08) first.
	wantRows := []string{"i-00000000000000005", "i-00000000000000008", "i-00000000000000007", "i-00000000000000006",
		"i-00000000000000003", "i-00000000000000002", "i-00000000000000004", "i-00000000000000001"}
	why := strings.Index(out, "Why:")
	if why < 0 {
		t.Fatalf("no Why section:\n%s", out)
	}
	inOrder(t, "rows", out[:why], wantRows)
	// The Why lines (tickets and defers) in the same order.
	inOrder(t, "Why lines", out[why:], []string{"i-00000000000000005", "i-00000000000000007", "i-00000000000000003", "i-00000000000000004"})
}

// inOrder fails unless each of ids appears in text, each after the one before.
func inOrder(t *testing.T, what, text string, ids []string) {
	t.Helper()
	at := 0
	for _, id := range ids {
		i := strings.Index(text[at:], id)
		if i < 0 {
			t.Errorf("%s: %s missing or out of order (want %v):\n%s", what, id, ids, text)
			return
		}
		at += i + len(id)
	}
}

func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
