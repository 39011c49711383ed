package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/mlnode/mlnode/appliance"
)

// SignedPrefix starts the message a bundle signature signs: the ASCII bytes
// "mlnode-bundle-v1:" followed by the bundle's hex digest. The prefix keeps
// a bundle signature from being valid for anything else signed by the key.
const SignedPrefix = "mlnode-bundle-v1:"

// maxSignatureSize bounds signature.ed25519.
const maxSignatureSize = 4 << 10

// SignedMessage returns the bytes a signature of a bundle with this digest
// signs.
func SignedMessage(digest string) []byte {
	return []byte(SignedPrefix + digest)
}

// Signature is the content of signature.ed25519: a JSON object with the
// signer's public key and the signature, both in standard base64 (with
// padding). The key travels with the signature so that a node can tell
// which key signed; whether that key is trusted is the node's decision.
type Signature struct {
	PublicKey ed25519.PublicKey `json:"public_key"`
	Signature []byte            `json:"signature"`
}

// KeyID names the signing key (see KeyID).
func (s *Signature) KeyID() string { return KeyID(s.PublicKey) }

// ParseSignature parses the content of signature.ed25519 strictly.
// Errors are EINVALID with field "signature.ed25519".
func ParseSignature(data []byte) (*Signature, error) {
	if len(data) > maxSignatureSize {
		return nil, &appliance.Error{Code: appliance.ETOOLARGE, Field: SignatureFile, Message: fmt.Sprintf("is larger than %d bytes", maxSignatureSize)}
	}
	if _, err := parseJSON(data, SignatureFile); err != nil { // duplicate keys, bad UTF-8
		if e, ok := err.(*appliance.Error); ok && e.Field != SignatureFile {
			return nil, appliance.Invalid(SignatureFile, "%s: %s", e.Field, e.Message)
		}
		return nil, err
	}
	var s Signature
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, appliance.Invalid(SignatureFile, `must be {"public_key":"<base64>","signature":"<base64>"}: %v`, err)
	}
	if dec.More() {
		return nil, appliance.Invalid(SignatureFile, "unexpected data after the JSON object")
	}
	if len(s.PublicKey) != ed25519.PublicKeySize {
		return nil, appliance.Invalid(SignatureFile, "public_key is %d bytes; an ed25519 public key is %d", len(s.PublicKey), ed25519.PublicKeySize)
	}
	if len(s.Signature) != ed25519.SignatureSize {
		return nil, appliance.Invalid(SignatureFile, "signature is %d bytes; an ed25519 signature is %d", len(s.Signature), ed25519.SignatureSize)
	}
	return &s, nil
}

// Sign signs the bundle's digest and returns the content of
// signature.ed25519 (see WithSignature to put it in the archive).
func Sign(b *Bundle, priv ed25519.PrivateKey) []byte {
	s := Signature{
		PublicKey: priv.Public().(ed25519.PublicKey),
		Signature: ed25519.Sign(priv, SignedMessage(Digest(b))),
	}
	out, err := json.Marshal(s)
	if err != nil {
		panic("BUG: marshal signature: " + err.Error())
	}
	return append(out, '\n')
}

// Verify checks that sig (the content of signature.ed25519) is pub's
// signature of the bundle's digest. Errors are EINVALID with field
// "signature.ed25519"; they say whether the key or the signature is wrong.
func Verify(b *Bundle, sig []byte, pub ed25519.PublicKey) error {
	s, err := ParseSignature(sig)
	if err != nil {
		return err
	}
	if len(pub) != ed25519.PublicKeySize {
		return appliance.Invalid("key", "is %d bytes; an ed25519 public key is %d", len(pub), ed25519.PublicKeySize)
	}
	if !bytes.Equal(s.PublicKey, pub) {
		return appliance.Invalid(SignatureFile, "signed by key %s, not by key %s", s.KeyID(), KeyID(pub))
	}
	if !ed25519.Verify(pub, SignedMessage(Digest(b)), s.Signature) {
		return appliance.Invalid(SignatureFile, "the signature by key %s does not match the bundle's digest", s.KeyID())
	}
	return nil
}

// KeyID returns a short name for a public key: the first 16 hex digits of
// the sha256 of its 32 raw bytes. It labels keys; trust compares whole keys.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// PEM block types, as OpenSSL writes them.
const (
	pemPrivateKey = "PRIVATE KEY" // PKCS #8
	pemPublicKey  = "PUBLIC KEY"  // PKIX SubjectPublicKeyInfo
)

// MarshalPrivateKey encodes a private key as PEM PKCS #8 ("PRIVATE KEY"),
// the form `openssl genpkey -algorithm ed25519` writes.
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// MarshalPublicKey encodes a public key as PEM PKIX ("PUBLIC KEY"), the
// form `openssl pkey -pubout` writes.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}

// ParsePrivateKey reads an ed25519 private key in PEM PKCS #8.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemPrivateKey {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" (PKCS #8) block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the private key is %T, not ed25519", key)
	}
	return priv, nil
}

// ParsePublicKey reads an ed25519 public key in PEM PKIX ("PUBLIC KEY"),
// or as the standard base64 of its 32 raw bytes (one line, handy in a
// configuration file).
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != pemPublicKey {
			return nil, fmt.Errorf("a PEM %q block is not a public key; want \"PUBLIC KEY\"", block.Type)
		}
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		pub, ok := key.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("the public key is %T, not ed25519", key)
		}
		return pub, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, errors.New("not a PEM \"PUBLIC KEY\" block nor the base64 of 32 bytes")
	}
	return ed25519.PublicKey(raw), nil
}
