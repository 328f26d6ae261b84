package trigger

import (
	"errors"
	"fmt"

	"github.com/imdsguard/imdsguard/internal/policy"
)

type directPayload struct {
	InstanceIDs []string `json:"instance_ids"`
	Region      *string  `json:"region"`
}

// parseDirect reads {"instance_ids": [...], "region": "..."}, a direct invoke: instances
// in the function's account, in region (default the function's).
func parseDirect(raw []byte, cfg Config) (Request, error) {
	var p directPayload
	if err := strictUnmarshal(raw, &p); err != nil {
		return Request{}, fmt.Errorf("direct invoke: %s", decodeProblem("", err))
	}
	if len(p.InstanceIDs) == 0 {
		return Request{}, errors.New("direct invoke: instance_ids is empty: name at least one instance id")
	}
	region := cfg.Region
	if p.Region != nil {
		if !policy.ValidRegion(*p.Region) {
			return Request{}, fmt.Errorf("direct invoke: region %q is not a region", *p.Region)
		}
		region = *p.Region
	}
	b := newBuilder(cfg, SourceDirect)
	for i, id := range p.InstanceIDs {
		if !policy.ValidInstanceID(id) {
			return Request{}, fmt.Errorf("direct invoke: instance_ids[%d] %q is not an instance id", i, id)
		}
		b.add(Ref{AccountID: cfg.AccountID, Region: region, InstanceID: id})
	}
	return b.done()
}
