package sources

import (
	"context"
	"fmt"
	"slices"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// Inventory is what the sources of one account-region are judged by.
type Inventory struct {
	Templates []LaunchTemplate
	Groups    []Group
	Defaults  AccountDefaults
	// Images are the ImdsSupport of the AMIs the instances were launched from, by AMI id;
	// an AMI that no longer exists is missing.
	Images map[string]string
}

// API is every call the source inventory makes.
type API interface {
	EC2API
	DefaultsAPI
	ImagesAPI
}

// Read takes the source inventory of one account-region: its launch templates, its Auto
// Scaling groups, its instance metadata defaults and the ImdsSupport of the AMIs in
// imageIDs (those of its instances). Any read that fails fails the whole inventory: a
// source judged without all of it could be fixed on half the evidence.
func Read(ctx context.Context, ec2 API, autoScaling AutoScalingAPI, imageIDs []string) (Inventory, error) {
	var inv Inventory
	var err error
	if inv.Templates, err = LaunchTemplates(ctx, ec2); err != nil {
		return Inventory{}, fmt.Errorf("reading the launch templates: %w", err)
	}
	if inv.Groups, err = Groups(ctx, autoScaling); err != nil {
		return Inventory{}, fmt.Errorf("reading the Auto Scaling groups: %w", err)
	}
	if inv.Defaults, err = ReadAccountDefaults(ctx, ec2); err != nil {
		return Inventory{}, fmt.Errorf("reading the instance metadata defaults: %w", err)
	}
	if inv.Images, err = ImdsSupport(ctx, ec2, slices.DeleteFunc(slices.Clone(imageIDs), func(id string) bool { return id == "" })); err != nil {
		return Inventory{}, fmt.Errorf("reading the AMIs in use: %w", err)
	}
	return inv, nil
}

// Enforcements lists the instances of an account-region that imdsguard enforced and is
// verifying, those it verified, and the latest rollbacks, of instances and of sources
// (rollbacks.Index implements it).
type Enforcements interface {
	Enforcements(ctx context.Context, account, region string) (verifying, verified map[string]bool, err error)
	Rollbacks(ctx context.Context, account, region string) (map[string]policy.Rollback, error)
}

// ReadWatches reads the enforcements of an account-region as Judge takes them. Without a
// ledger (e is nil) there are none: a source whose instances imdsguard enforced then
// waits, because their compliance proves nothing about what the source's launches need.
func ReadWatches(ctx context.Context, e Enforcements, account, region string) (map[string]Watch, error) {
	out := map[string]Watch{}
	if e == nil {
		return out, nil
	}
	verifying, verified, err := e.Enforcements(ctx, account, region)
	if err != nil {
		return nil, fmt.Errorf("reading imdsguard's enforcements: %w", err)
	}
	rollbacks, err := e.Rollbacks(ctx, account, region)
	if err != nil {
		return nil, fmt.Errorf("reading imdsguard's rollbacks: %w", err)
	}
	for subject, rb := range rollbacks {
		out[subject] = Watch{RolledBack: &rb}
	}
	for id := range verified {
		out[id] = Watch{Verified: true}
	}
	for id := range verifying {
		// Enforced again since it was last verified: the new enforcement is what counts.
		out[id] = Watch{Verifying: true}
	}
	return out, nil
}
