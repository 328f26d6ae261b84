package trigger

import (
	"fmt"

	"github.com/imdsguard/imdsguard/internal/policy"
)

type sweepPayload struct {
	Sweep *struct {
		Regions []string `json:"regions"`
	} `json:"sweep"`
}

// parseSweep reads {"sweep": {"regions": [...]}}, the scheduled sweep; a null sweep,
// missing or empty regions mean the function's own region. Other regions are reported,
// not swept.
func parseSweep(raw []byte, cfg Config) (Request, error) {
	var p sweepPayload
	if err := strictUnmarshal(raw, &p); err != nil {
		return Request{}, fmt.Errorf("sweep: %s", decodeProblem("", err))
	}
	b := newBuilder(cfg, SourceSweep)
	var regions []string
	if p.Sweep != nil {
		regions = p.Sweep.Regions
	}
	if len(regions) == 0 {
		b.addSweep(cfg.Region)
		return b.done()
	}
	for i, r := range regions {
		if !policy.ValidRegion(r) {
			return Request{}, fmt.Errorf("sweep: sweep.regions[%d] %q is not a region", i, r)
		}
		b.addSweep(r)
	}
	return b.done()
}
