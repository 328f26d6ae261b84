package verify

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/imdsguard/imdsguard/internal/evidence"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// Organization makes verify the organization's (DESIGN.md section 11): each run watches
// every member account-region's enforcements and source fixes, from the hub's ledger,
// through the member's enforce role. A member without watches costs one ledger query
// and no call in the member.
type Organization struct {
	Scope policy.Organization
	// Accounts lists the organization's accounts (organization.Lister implements it).
	Accounts interface {
		Accounts(ctx context.Context) ([]string, error)
	}
	Members Members
	// Concurrency bounds the account-regions watched at once; zero means 4.
	Concurrency int
}

// Members gives the clients of a member account-region.
type Members interface {
	Member(account, region string) Member
}

// Member is what verify reads and rolls back with in one member account-region.
type Member struct {
	EC2        evidence.EC2API
	CloudWatch evidence.CloudWatchAPI
	Restorer   Restorer
	Templates  Templates
}

// MembersFunc makes a function a Members.
type MembersFunc func(account, region string) Member

// Member calls f.
func (f MembersFunc) Member(account, region string) Member { return f(account, region) }

// OrganizationSummary is what one run over the organization did.
type OrganizationSummary struct {
	Summary
	AccountRegions int `json:"account_regions"`
	// FailedScopes names the account-regions whose watch failed.
	FailedScopes []string `json:"failed_scopes,omitempty"`
	// BreakersOpened names the account-regions whose breaker this run opened.
	BreakersOpened []string `json:"breakers_opened,omitempty"`
}

// HandleOrganization watches every member account-region once. One that fails does not
// stop the others; the run then fails, naming them, so that its alarm calls for a
// person and the next run watches them again.
func (h *Handler) HandleOrganization(ctx context.Context, o Organization) (OrganizationSummary, error) {
	var sum OrganizationSummary
	listed, err := o.Accounts.Accounts(ctx)
	if err != nil {
		return sum, fmt.Errorf("verify across the organization: %w", err)
	}
	concurrency := o.Concurrency
	if concurrency <= 0 {
		concurrency = 4
	}
	var mu sync.Mutex
	var failures []error
	slots := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for _, account := range o.Scope.Accounts(listed) {
		for _, region := range o.Scope.Regions {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				one, err := h.member(account, region, o.Members).Handle(ctx, account)
				mu.Lock()
				defer mu.Unlock()
				sum.AccountRegions++
				sum.add(one)
				name := account + "/" + region
				if one.BreakerOpened {
					sum.BreakersOpened = append(sum.BreakersOpened, name)
				}
				if err != nil {
					sum.FailedScopes = append(sum.FailedScopes, name)
					failures = append(failures, err)
				}
			})
		}
	}
	wg.Wait()
	h.gaugeVerifying(sum.Summary)
	if len(failures) > 0 {
		return sum, fmt.Errorf("verify failed in %d account-regions of the organization: %w", len(failures), errors.Join(failures...))
	}
	return sum, nil
}

// member is this handler with the clients of a member account-region.
func (h *Handler) member(account, region string, members Members) *Handler {
	m := members.Member(account, region)
	at := *h
	at.Region, at.EC2, at.CloudWatch, at.Restorer = region, m.EC2, m.CloudWatch, m.Restorer
	at.partOfOrganization = true
	if h.Sources != nil {
		at.Sources = &Sources{Ledger: h.Sources.Ledger, Templates: m.Templates}
	}
	return &at
}

func (s *Summary) add(o Summary) {
	s.Watched += o.Watched
	s.Verified += o.Verified
	s.RolledBack += o.RolledBack
	s.Verifying += o.Verifying
	s.Ended += o.Ended
	s.Sources += o.Sources
	s.Failed += o.Failed
	s.BreakerOpened = s.BreakerOpened || o.BreakerOpened
}
