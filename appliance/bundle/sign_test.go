package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/bundle"
)

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func TestSignVerify(t *testing.T) {
	pub, priv := newKey(t)
	otherPub, otherPriv := newKey(t)
	archive := tarGz(t, goodEntries([]byte(manifestJSON))...)
	b := open(t, archive)
	sig := bundle.Sign(b, priv)

	if err := bundle.Verify(b, sig, pub); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	s, err := bundle.ParseSignature(sig)
	if err != nil || s.KeyID() != bundle.KeyID(pub) || !ed25519.Verify(pub, []byte("mlnode-bundle-v1:"+bundle.Digest(b)), s.Signature) {
		t.Fatalf("the signature is not of the documented message: %v", err)
	}

	// Into the archive and back: the digest does not change.
	signed, err := bundle.WithSignature(archive, sig)
	if err != nil {
		t.Fatal(err)
	}
	sb := open(t, signed)
	if !bytes.Equal(sb.Signature, sig) || bundle.Digest(sb) != bundle.Digest(b) || !bytes.Equal(sb.RawManifest, b.RawManifest) {
		t.Fatal("signing changed the bundle")
	}
	if err := bundle.Verify(sb, sb.Signature, pub); err != nil {
		t.Fatal(err)
	}
	// Re-signing replaces the signature.
	resigned, err := bundle.WithSignature(signed, bundle.Sign(sb, otherPriv))
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.Verify(open(t, resigned), open(t, resigned).Signature, otherPub); err != nil {
		t.Fatal(err)
	}

	// A changed module makes another bundle: the signature no longer holds.
	tampered := open(t, tarGz(t, file("manifest.json", []byte(manifestJSON)), file("model.wasm", append(bytes.Clone(wasm), 0)),
		file("transforms/bucket.wasm", moduleFiles()["transforms/bucket.wasm"])))
	forged := s.Signature
	forged = append(bytes.Clone(forged[:10]), forged[10]^1)
	forged = append(forged, s.Signature[11:]...)
	forgedSig := []byte(`{"public_key":"` + base64.StdEncoding.EncodeToString(pub) + `","signature":"` + base64.StdEncoding.EncodeToString(forged) + `"}`)
	tests := []struct {
		name string
		b    *bundle.Bundle
		sig  []byte
		pub  ed25519.PublicKey
		msg  string
	}{
		{"other key", b, sig, otherPub, "signed by key " + bundle.KeyID(pub) + ", not by key " + bundle.KeyID(otherPub)},
		{"signed by another key", b, bundle.Sign(b, otherPriv), pub, "not by key"},
		{"tampered bundle", tampered, sig, pub, "does not match the bundle's digest"},
		{"bad signature bytes", b, forgedSig, pub, "does not match"},
		{"not a signature", b, []byte("hello"), pub, ""},
		{"unknown field", b, []byte(`{"public_key":"","signature":"","alg":"rsa"}`), pub, "unknown field"},
		{"duplicate key", b, []byte(`{"public_key":"","public_key":""}`), pub, "duplicate key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, bundle.Verify(tt.b, tt.sig, tt.pub), appliance.EINVALID, "signature.ed25519", tt.msg)
		})
	}

	// WithSignature refuses a signature that does not hold for the bundle.
	tamperedArchive := tarGz(t, file("manifest.json", []byte(manifestJSON)), file("model.wasm", append(bytes.Clone(wasm), 0)),
		file("transforms/bucket.wasm", moduleFiles()["transforms/bucket.wasm"]))
	if _, err := bundle.WithSignature(tamperedArchive, sig); appliance.ErrorCode(err) != appliance.EINVALID {
		t.Errorf("WithSignature of a signature of another bundle: %v", err)
	}
}

func TestKeys(t *testing.T) {
	pub, priv := newKey(t)
	privPEM, err := bundle.MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := bundle.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(privPEM), "-----BEGIN PRIVATE KEY-----") || !strings.HasPrefix(string(pubPEM), "-----BEGIN PUBLIC KEY-----") {
		t.Errorf("PEM:\n%s%s", privPEM, pubPEM)
	}
	priv2, err := bundle.ParsePrivateKey(privPEM)
	if err != nil || !priv2.Equal(priv) {
		t.Errorf("private key round trip: %v", err)
	}
	pub2, err := bundle.ParsePublicKey(pubPEM)
	if err != nil || !pub2.Equal(pub) {
		t.Errorf("public key round trip: %v", err)
	}
	pub3, err := bundle.ParsePublicKey([]byte(base64.StdEncoding.EncodeToString(pub) + "\n"))
	if err != nil || !pub3.Equal(pub) {
		t.Errorf("base64 public key: %v", err)
	}
	for _, bad := range [][]byte{nil, []byte("hello"), privPEM, []byte(base64.StdEncoding.EncodeToString(pub[:31]))} {
		if _, err := bundle.ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%.20q) accepted", bad)
		}
	}
	if _, err := bundle.ParsePrivateKey(pubPEM); err == nil {
		t.Error("ParsePrivateKey accepted a public key")
	}
	if id := bundle.KeyID(pub); len(id) != 16 {
		t.Errorf("KeyID = %q", id)
	}
}

// The key files are OpenSSL's, and OpenSSL can sign a bundle as docs/bundle.md
// says: the same (deterministic) signature as Sign.
func TestKeys_OpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	dir := t.TempDir()
	keyFile, msgFile := filepath.Join(dir, "ci.key"), filepath.Join(dir, "msg")
	run := func(args ...string) []byte {
		out, err := exec.Command("openssl", args...).Output()
		if err != nil {
			t.Skipf("openssl %v: %v", args, err)
		}
		return out
	}
	run("genpkey", "-algorithm", "ed25519", "-out", keyFile)
	pubPEM := run("pkey", "-in", keyFile, "-pubout")
	privPEM, _ := os.ReadFile(keyFile)
	priv, err := bundle.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := bundle.ParsePublicKey(pubPEM)
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("openssl public key: %v", err)
	}
	b := open(t, tarGz(t, goodEntries([]byte(manifestJSON))...))
	os.WriteFile(msgFile, []byte("mlnode-bundle-v1:"+bundle.Digest(b)), 0o644)
	raw := run("pkeyutl", "-sign", "-inkey", keyFile, "-rawin", "-in", msgFile)
	s, _ := bundle.ParseSignature(bundle.Sign(b, priv))
	if !bytes.Equal(raw, s.Signature) {
		t.Errorf("openssl signed %x, Sign %x", raw, s.Signature)
	}
}
