package wiring

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Sessions builds the clients of the account-regions a hub reaches (DESIGN.md section
// 11): its own account with its own credentials, any other through a session of one
// role in it. Each account has one credentials cache, so its regions share a session,
// and each account-region one Clients, so all its LookupEvents wait for one limiter.
// It is safe for concurrent use, and builds nothing, nor calls STS, until asked.
type Sessions struct {
	base        aws.Config
	home        string
	role        string
	sessionName string
	opts        Options

	mu       sync.Mutex
	sts      *sts.Client
	accounts map[string]aws.CredentialsProvider
	scopes   map[string]*Clients
}

// SessionsOptions say which role is assumed in the members, under which session name
// (how the members' CloudTrail names the hub's calls). Home is the account whose own
// credentials are used as they are; empty means none: every account is reached
// through the role, as the CLI does.
type SessionsOptions struct {
	Home        string
	RoleName    string
	SessionName string
	Clients     Options
}

// NewSessions returns the sessions reached from base, the hub's configuration.
func NewSessions(base aws.Config, o SessionsOptions) *Sessions {
	return &Sessions{base: base, home: o.Home, role: o.RoleName, sessionName: o.SessionName, opts: o.Clients,
		accounts: map[string]aws.CredentialsProvider{}, scopes: map[string]*Clients{}}
}

// Config is the configuration of account in region: the hub's own, or a session of the
// role in account.
func (s *Sessions) Config(account, region string) aws.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.configLocked(account, region)
}

func (s *Sessions) configLocked(account, region string) aws.Config {
	cfg := s.base.Copy()
	cfg.Region = region
	if account == s.home {
		return cfg
	}
	creds, ok := s.accounts[account]
	if !ok {
		if s.sts == nil {
			s.sts = sts.NewFromConfig(s.base)
		}
		creds = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(s.sts, RoleARN(s.base.Region, account, s.role), func(p *stscreds.AssumeRoleOptions) {
			p.RoleSessionName = s.sessionName
		}))
		s.accounts[account] = creds
	}
	cfg.Credentials = creds
	return cfg
}

// Clients returns the clients of account in region, built once.
func (s *Sessions) Clients(account, region string) *Clients {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := account + "/" + region
	if c, ok := s.scopes[key]; ok {
		return c
	}
	c := New(s.configLocked(account, region), s.opts)
	s.scopes[key] = c
	return c
}

// RoleARN is the ARN of the role named roleName in account, in the partition of region.
func RoleARN(region, account, roleName string) string {
	return fmt.Sprintf("arn:%s:iam::%s:role/%s", partitionOf(region), account, roleName)
}

// partitionOf is the partition of a region.
func partitionOf(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// Reachable gets the session of account (assumes its role, or reads the hub's own
// credentials), so that a member without the role, or that does not trust the hub,
// fails as itself, naming the role, before anything is judged there. The session is
// cached: the calls made in the account then use it.
func (s *Sessions) Reachable(ctx context.Context, account string) error {
	cfg := s.Config(account, s.base.Region)
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		if account == s.home {
			return fmt.Errorf("the hub's own credentials: %w", err)
		}
		return fmt.Errorf("assuming %s: %w", RoleARN(s.base.Region, account, s.role), err)
	}
	return nil
}
