package cli

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/policy"
	"github.com/imdsguard/imdsguard/internal/sourcefix"
	"github.com/imdsguard/imdsguard/internal/wiring"
)

// rollbackSourceJSON is one source in `rollback --source --format json`.
type rollbackSourceJSON struct {
	Kind       policy.SourceKind `json:"kind"`
	ID         string            `json:"id"`
	DecisionID string            `json:"decision_id"`
	FixedAt    *time.Time        `json:"fixed_at"`
	// Before and Restored are a launch template's default version, or the account
	// defaults' HttpTokens ("" for no preference).
	Before   *sourceState `json:"before"`
	Restored *sourceState `json:"restored"`
	Result   string       `json:"result"`
	Detail   string       `json:"detail"`
}

type sourceState struct {
	DefaultVersion *int64  `json:"default_version,omitempty"`
	HTTPTokens     *string `json:"http_tokens,omitempty"`
}

var launchTemplateID = regexp.MustCompile(`^lt-[0-9a-f]{8}([0-9a-f]{9})?$`)

// rollbackSource puts a source imdsguard fixed back as its snapshot has it: a launch
// template's default version from before the fix (the fixed version stays, unused), or
// the account defaults' HttpTokens. It records the rollback, so that detect does not fix
// the source again for a lookback.
func rollbackSource(cmd *cobra.Command, env Env, l *ledger.Ledger, clients *wiring.Clients, account, source, why, format string, yes bool) error {
	ctx := cmd.Context()
	kind := policy.SourceLaunchTemplate
	switch {
	case source == string(policy.SourceAccountDefaults):
		kind = policy.SourceAccountDefaults
	case !launchTemplateID.MatchString(source):
		return usagef("--source %q: want a launch template id (lt-...) or account-defaults", source)
	}
	ref := ledger.Ref{AccountID: account, Region: clients.Region(), InstanceID: policy.SourceSubject(kind, source)}
	snap, err := l.GetSourceSnapshot(ctx, ref)
	if err != nil {
		return err
	}
	item := rollbackSourceJSON{Kind: kind, ID: source}
	out := env.Stdout
	if format == "json" {
		out = io.Discard
		defer func() { writeRollbackSourceJSON(env.Stdout, account, clients.Region(), item) }()
	}
	if snap == nil {
		item.Result, item.Detail = "skipped", "imdsguard never fixed it (no snapshot)"
		fmt.Fprintf(out, "%s %s: nothing to do: %s\n", kind, source, item.Detail)
		return nil
	}
	at := snap.At.UTC()
	item.DecisionID, item.FixedAt = snap.DecisionID, &at
	fixer := &sourcefix.Fixer{EC2: clients.EC2()}

	var now, back sourceState
	var undo func() error
	switch kind {
	case policy.SourceLaunchTemplate:
		t, err := fixer.Template(ctx, source)
		if err != nil {
			return err
		}
		now.DefaultVersion, back.DefaultVersion = &t.DefaultVersion, &snap.DefaultVersion
		switch {
		case t.DefaultVersion == snap.DefaultVersion:
			item.Result, item.Detail = "skipped", fmt.Sprintf("its default version is %d, as before imdsguard", t.DefaultVersion)
		case snap.FixedVersion != 0 && t.DefaultVersion != snap.FixedVersion:
			// Its owners made another version the default since: putting back the one from
			// before the fix would undo their change too.
			item.Result, item.Detail = "skipped", fmt.Sprintf("its default version is %d, not imdsguard's %d: it changed since the fix; set it by hand",
				t.DefaultVersion, snap.FixedVersion)
		}
		undo = func() error { return fixer.SetDefaultVersion(ctx, source, snap.DefaultVersion) }
		fmt.Fprintf(out, "launch template %s: default version %d -> %d (as before decision %s of %s)\n", source, t.DefaultVersion,
			snap.DefaultVersion, snap.DecisionID, at.Format(time.RFC3339))
	default:
		d, err := fixer.Defaults(ctx)
		if err != nil {
			return err
		}
		now.HTTPTokens, back.HTTPTokens = &d.HTTPTokens, &snap.HTTPTokens
		if d.HTTPTokens == snap.HTTPTokens {
			item.Result, item.Detail = "skipped", "the account defaults are as before imdsguard"
		}
		undo = func() error { return fixer.SetDefaultTokens(ctx, snap.HTTPTokens, false) }
		fmt.Fprintf(out, "account defaults of %s/%s: HttpTokens %s -> %s (as before decision %s of %s)\n", account, clients.Region(),
			cmp.Or(d.HTTPTokens, "no-preference"), cmp.Or(snap.HTTPTokens, "no-preference"), snap.DecisionID, at.Format(time.RFC3339))
	}
	item.Before = &now
	if item.Result == "skipped" {
		fmt.Fprintln(out, "nothing to roll back:", item.Detail)
		return nil
	}
	if !yes {
		ok, err := confirm(env, "Roll the source back? Type yes to go on: ")
		if err != nil {
			return err
		}
		if !ok {
			item.Result = "not-confirmed"
			return errors.New("not confirmed: nothing was changed")
		}
	}
	err = undo()
	var restored policy.MetadataOptions
	if err == nil {
		restored, err = restoredOptions(cmd, fixer, kind, source)
	}
	if err == nil {
		err = l.RecordManualRollback(ctx, ledger.ManualRollback{Ref: ref, DecisionID: snap.DecisionID, At: env.Now().UTC(), Restored: restored, Why: why})
	}
	if err != nil {
		item.Result, item.Detail = "failed", err.Error()
		fmt.Fprintf(out, "%s %s: FAILED: %v\n", kind, source, err)
		return fmt.Errorf("rolling back %s %s: %w", kind, source, err)
	}
	item.Result, item.Restored = "rolled-back", &back
	fmt.Fprintf(out, "%s %s: rolled back; detect does not fix it again for a lookback\n", kind, source)
	return nil
}

// restoredOptions are what the source launches with after the rollback, for the ledger.
func restoredOptions(cmd *cobra.Command, fixer *sourcefix.Fixer, kind policy.SourceKind, source string) (policy.MetadataOptions, error) {
	if kind == policy.SourceLaunchTemplate {
		t, err := fixer.Template(cmd.Context(), source)
		if err != nil || t.Options == nil {
			return policy.MetadataOptions{}, err
		}
		return *t.Options, nil
	}
	d, err := fixer.Defaults(cmd.Context())
	return policy.MetadataOptions{HTTPTokens: d.HTTPTokens, HopLimit: d.HopLimit, HTTPEndpoint: d.HTTPEndpoint}, err
}

func writeRollbackSourceJSON(w io.Writer, account, region string, item rollbackSourceJSON) {
	doc := struct {
		rollbackJSON
		Sources []rollbackSourceJSON `json:"sources"`
	}{rollbackJSON{Schema: rollbackSchema, AccountID: account, Region: region, Instances: []rollbackInstance{}}, []rollbackSourceJSON{item}}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(doc)
}
