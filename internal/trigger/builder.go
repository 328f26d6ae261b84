package trigger

import (
	"fmt"
	"strings"
)

// builder collects the refs, sources and sweep regions of one request, filing each as the
// function's own or foreign, once.
type builder struct {
	cfg     Config
	req     Request
	seen    map[Ref]bool
	sources map[ForeignSource]bool // every source added, own or foreign, with where it is
	regions map[string]bool
}

func newBuilder(cfg Config, source string) *builder {
	return &builder{cfg: cfg, req: Request{Source: source}, seen: map[Ref]bool{},
		sources: map[ForeignSource]bool{}, regions: map[string]bool{}}
}

// add files ref under Refs or Foreign, once.
func (b *builder) add(ref Ref) {
	if b.seen[ref] {
		return
	}
	b.seen[ref] = true
	if ref.AccountID == b.cfg.AccountID && ref.Region == b.cfg.Region {
		b.req.Refs = append(b.req.Refs, ref)
	} else {
		b.req.Foreign = append(b.req.Foreign, ref)
	}
}

// addSource files a source in account and region under Sources or ForeignSources, once.
func (b *builder) addSource(account, region string, s SourceRef) {
	at := ForeignSource{AccountID: account, Region: region, Source: s}
	if b.sources[at] {
		return
	}
	b.sources[at] = true
	if account == b.cfg.AccountID && region == b.cfg.Region {
		b.req.Sources = append(b.req.Sources, s)
	} else {
		b.req.ForeignSources = append(b.req.ForeignSources, at)
	}
}

// addSweep files a region to sweep under Sweep or ForeignRegions, once.
func (b *builder) addSweep(region string) {
	if b.regions[region] {
		return
	}
	b.regions[region] = true
	if region == b.cfg.Region {
		b.req.Sweep = append(b.req.Sweep, region)
	} else {
		b.req.ForeignRegions = append(b.req.ForeignRegions, region)
	}
}

// empty reports whether nothing, own or foreign, has been added.
func (b *builder) empty() bool {
	return len(b.req.Refs)+len(b.req.Foreign)+len(b.req.Sweep)+len(b.req.ForeignRegions)+
		len(b.req.Sources)+len(b.req.ForeignSources) == 0
}

// ignore returns a request that asks for nothing, for the reason given.
func (b *builder) ignore(format string, args ...any) (Request, error) {
	b.req.Refs, b.req.Sweep, b.req.Sources = nil, nil, nil
	b.req.Ignored = fmt.Sprintf(format, args...)
	return b.req, nil
}

// done returns the request, saying why when all it names is foreign.
func (b *builder) done() (Request, error) {
	if len(b.req.Refs) > 0 || len(b.req.Sweep) > 0 || len(b.req.Sources) > 0 {
		return b.req, nil
	}
	var parts []string
	if n := len(b.req.Foreign); n > 0 {
		parts = append(parts, fmt.Sprintf("%s in another account or region", plural(n, "instance", "instances")))
	}
	if n := len(b.req.ForeignSources); n > 0 {
		parts = append(parts, fmt.Sprintf("%s in another account or region", plural(n, "source", "sources")))
	}
	if n := len(b.req.ForeignRegions); n > 0 {
		parts = append(parts, fmt.Sprintf("%s to sweep (%s)", plural(n, "other region", "other regions"), strings.Join(b.req.ForeignRegions, ", ")))
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing to judge")
	}
	b.req.Ignored = fmt.Sprintf("nothing in this function's account %s and region %s: %s", b.cfg.AccountID, b.cfg.Region, strings.Join(parts, "; "))
	return b.req, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
