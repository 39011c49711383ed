// Package upload is the model upload flow: open a bundle safely, check its
// modules against the ABI, resolve and pin its inputs to feature view
// versions, verify its signature, run its sample, then store it as the next
// version of its model. Nothing is stored unless every check passes.
//
// # Caveats
//
//   - The whole bundle is held in memory (bounded by Limits.MaxCompressed
//     and MaxUncompressed): modules are compiled from memory anyway.
//   - A valid signature by an untrusted key is recorded, not refused: trust
//     is enforced by alias policies when an alias is set.
package upload

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/bundle"
)

// SampleRunner runs a module from its bytes, before it is stored.
type SampleRunner interface {
	PredictModule(ctx context.Context, wasm []byte, limits appliance.ModuleLimits, in, out []float64) error
}

// Uploader checks and stores model bundles.
type Uploader struct {
	Models    appliance.ModelRegistry
	Views     appliance.FeatureRegistry
	Inspector appliance.ModuleInspector
	Runner    SampleRunner
	// TrustedKeys by key id (bundle.KeyID).
	TrustedKeys map[string]ed25519.PublicKey
	Limits      bundle.Limits
}

// Upload checks raw (a .tar.gz bundle) and stores it. It returns the
// version and whether it was new: identical content returns the version
// stored before.
func (u *Uploader) Upload(ctx context.Context, raw []byte) (*appliance.ModelVersion, bool, error) {
	b, err := bundle.Open(bytes.NewReader(raw), u.Limits)
	if err != nil {
		return nil, false, err
	}
	m := &b.Manifest
	mv := &appliance.ModelVersion{Model: m.Name, SHA256: bundle.Digest(b), Inputs: m.Inputs, Outputs: m.Outputs,
		Manifest: b.RawManifest, Defaults: m.Defaults, Lineage: appliance.Lineage{FeatureViews: map[string]int{}}}
	if m.Limits != nil {
		mv.Limits = appliance.ModuleLimits{MemoryPages: uint32(m.Limits.MemoryPages), TimeoutMS: m.Limits.TimeoutMS}
	}
	modules := map[string][]byte{}
	for _, path := range m.ModulePaths() {
		wasm := b.Files[path]
		info, err := u.Inspector.InspectModule(ctx, wasm)
		if err != nil {
			return nil, false, fieldPrefix(err, path)
		}
		want := appliance.KindTransform
		if path == m.Module {
			want = appliance.KindModel
			mv.Module = "sha256:" + info.SHA256
		}
		if !info.HasKind(want) && !(want == appliance.KindTransform && info.HasKind(appliance.KindRowTransform)) {
			return nil, false, appliance.Invalid(path, "the module does not export the entry point of a %s (docs/abi.md)", want)
		}
		modules[path] = wasm
		mv.Lineage.Modules = append(mv.Lineage.Modules, "sha256:"+info.SHA256)
	}
	if err := u.resolveInputs(ctx, mv); err != nil {
		return nil, false, err
	}
	if b.Signature != nil {
		sig, err := u.checkSignature(b)
		if err != nil {
			return nil, false, err
		}
		mv.Signatures = []appliance.Signature{*sig}
	}
	if m.Sample != nil {
		in, err := m.SampleInput()
		if err != nil {
			return nil, false, err
		}
		out := make([]float64, len(m.Outputs))
		if err := u.Runner.PredictModule(ctx, modules[m.Module], mv.Limits, in, out); err != nil {
			return nil, false, &appliance.Error{Code: appliance.EINVALID, Field: "sample", Message: "running the sample input: " + appliance.ErrorMessage(err)}
		}
		if err := m.CheckSample(out); err != nil {
			return nil, false, err
		}
	}
	return u.Models.CreateModelVersion(ctx, mv, raw, modules)
}

// resolveInputs checks that every stored-feature input exists, pins the
// view version it reads (the latest at upload, unless the reference pins
// one), and refuses inputs the ABI cannot carry as numbers.
func (u *Uploader) resolveInputs(ctx context.Context, mv *appliance.ModelVersion) error {
	for i, in := range mv.Inputs {
		field := fmt.Sprintf("inputs[%d]", i)
		parsed, err := bundle.ParseInput(field, in)
		if err != nil {
			return err
		}
		if parsed.Request != "" {
			continue
		}
		ref := parsed.Feature
		view, err := u.Views.FeatureView(ctx, ref.View, ref.Version)
		if err != nil {
			return &appliance.Error{Code: appliance.ErrorCode(err), Field: field, Message: fmt.Sprintf("%q: %s", in, appliance.ErrorMessage(err))}
		}
		if pinned, ok := mv.Lineage.FeatureViews[view.Name]; ok && pinned != view.Version && ref.Version == 0 {
			return appliance.Invalid(field, "%q reads %s while another input pins version %d", in, view.Key(), pinned)
		}
		if ref.Version == 0 {
			mv.Lineage.FeatureViews[view.Name] = view.Version
		} else if _, ok := mv.Lineage.FeatureViews[view.Name]; !ok {
			mv.Lineage.FeatureViews[view.Name] = view.Version
		}
		idx := view.FeatureIndex(ref.Feature)
		if idx < 0 {
			return &appliance.Error{Code: appliance.ENOTFOUND, Field: field, Message: fmt.Sprintf("%q: %s has no feature %q", in, view.Key(), ref.Feature)}
		}
		switch dt := view.Features[idx].Dtype; dt {
		case appliance.DTypeInt64, appliance.DTypeFloat64, appliance.DTypeBool, appliance.DTypeTimestamp:
		default:
			return appliance.Invalid(field, "%q is %s: models take numbers; derive a number from it with a transform", in, dt)
		}
	}
	return nil
}

// checkSignature verifies a bundle's signature against its own key and
// says whether that key is trusted. A signature that does not verify fails
// the upload: a bundle claiming a signature it does not have is corrupt or
// tampered with.
func (u *Uploader) checkSignature(b *bundle.Bundle) (*appliance.Signature, error) {
	s, err := bundle.ParseSignature(b.Signature)
	if err != nil {
		return nil, err
	}
	if err := bundle.Verify(b, b.Signature, s.PublicKey); err != nil {
		return nil, err
	}
	trusted := false
	if key, ok := u.TrustedKeys[s.KeyID()]; ok && key.Equal(s.PublicKey) {
		trusted = true
	}
	return &appliance.Signature{KeyID: s.KeyID(), Valid: true, Trusted: trusted, Signature: bytes.Clone(b.Signature)}, nil
}

// VerifyDetached checks a signature (the content of signature.ed25519)
// attached to a stored version after upload, against its digest.
func (u *Uploader) VerifyDetached(mv *appliance.ModelVersion, sig []byte) (*appliance.Signature, error) {
	s, err := bundle.ParseSignature(sig)
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(s.PublicKey, bundle.SignedMessage(mv.SHA256), s.Signature) {
		return nil, appliance.Invalid(bundle.SignatureFile, "the signature by key %s does not match version %d's digest", s.KeyID(), mv.Version)
	}
	trusted := false
	if key, ok := u.TrustedKeys[s.KeyID()]; ok && key.Equal(s.PublicKey) {
		trusted = true
	}
	return &appliance.Signature{KeyID: s.KeyID(), Valid: true, Trusted: trusted, Signature: bytes.Clone(sig)}, nil
}

// fieldPrefix names the archive path in a module error.
func fieldPrefix(err error, path string) error {
	if e, ok := err.(*appliance.Error); ok {
		c := *e
		if c.Field == "" || c.Field == "module" {
			c.Field = path
		} else if !strings.HasPrefix(c.Field, path) {
			c.Field = path + ": " + c.Field
		}
		return &c
	}
	return err
}
