package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/mlnode/mlnode/appliance"
)

// Digest returns a bundle's identity: the hex sha256 of its canonical
// manifest (see Canonical). Two bundles with the same manifest content and
// the same module bytes have the same digest, whatever their archive,
// compression, file order, JSON layout or claims in "modules".
//
// b must come from Open (or hold a manifest and modules Open would accept);
// anything else is a broken invariant and panics.
func Digest(b *Bundle) string {
	canon, err := Canonical(b)
	if err != nil {
		panic("BUG: bundle.Digest of a bundle Open would refuse: " + err.Error())
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

// Canonical returns the bytes the digest hashes: manifest.json with its
// "modules" member set to the sha256 of every module the manifest names
// (and nothing else), in the JSON Canonicalization Scheme (RFC 8785).
func Canonical(b *Bundle) ([]byte, error) {
	raw := b.RawManifest
	if len(raw) == 0 {
		var err error
		if raw, err = json.Marshal(&b.Manifest); err != nil {
			return nil, err
		}
	}
	m, tree, err := parseManifest(raw)
	if err != nil {
		return nil, err
	}
	digests := map[string]string{}
	for _, p := range m.ModulePaths() {
		data, ok := b.Files[p]
		if !ok {
			return nil, appliance.Invalid("module", "%q is not in the bundle", p)
		}
		digests[p] = appliance.ModuleDigest(data)
	}
	tree.set("modules", stringMap(digests), "module")
	return appendCanonical(nil, tree), nil
}
