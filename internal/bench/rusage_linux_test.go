package bench

import (
	"os"
	"syscall"
)

// peakRSSKiB returns the peak resident set size of an exited child process. On Linux,
// getrusage reports ru_maxrss in KiB.
func peakRSSKiB(ps *os.ProcessState) (int64, bool) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return 0, false
	}
	return ru.Maxrss, true
}
