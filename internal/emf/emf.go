// Package emf writes CloudWatch embedded metric format (EMF) records: JSON log lines that
// CloudWatch Logs turns into metrics, with no API call and no extra permission.
package emf

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"
)

// Namespace is the CloudWatch namespace of imdsguard's metrics.
const Namespace = "imdsguard"

// Emitter writes EMF records to W (the function's standard output in Lambda).
type Emitter struct {
	W   io.Writer
	Now func() time.Time
	mu  sync.Mutex
}

// Count records n occurrences of metric with the given dimensions (may be nil).
func (e *Emitter) Count(metric string, n int, dims map[string]string) error {
	keys := slices.Sorted(maps.Keys(dims))
	record := map[string]any{
		"_aws": map[string]any{
			"Timestamp": e.Now().UnixMilli(),
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace":  Namespace,
				"Dimensions": [][]string{keys},
				"Metrics":    []any{map[string]string{"Name": metric, "Unit": "Count"}},
			}},
		},
		metric: n,
	}
	for k, v := range dims {
		record[k] = v
	}
	line, err := json.Marshal(record)
	if err != nil {
		return fmt.Errorf("encoding metric %s: %w", metric, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.W.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("writing metric %s: %w", metric, err)
	}
	return nil
}
