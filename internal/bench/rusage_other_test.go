//go:build !linux

package bench

import "os"

// peakRSSKiB is only implemented on Linux, where ru_maxrss is in KiB (macOS reports
// bytes, other systems vary); elsewhere the benchmark reports no peak RSS.
func peakRSSKiB(*os.ProcessState) (int64, bool) { return 0, false }
