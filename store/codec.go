package store

import "fmt"

// Codec seals every value before it is stored and opens it when read. It is
// the one place where encryption at rest is added: an implementation must
// tell its own format apart by the first byte and open every older one.
type Codec interface {
	// Seal appends the sealed form of plain to dst.
	Seal(dst, plain []byte) []byte
	// Open returns the plain form of sealed, appended to dst or aliasing
	// sealed itself: like sealed, it is valid only as long as the
	// transaction it came from. Callers copy what they keep.
	Open(dst, sealed []byte) ([]byte, error)
}

// formatPlain marks a value stored without encryption.
const formatPlain = 0

// PlainCodec stores values as they are, behind a format byte.
type PlainCodec struct{}

func (PlainCodec) Seal(dst, plain []byte) []byte {
	dst = append(dst, formatPlain)
	return append(dst, plain...)
}

// Open returns the bytes after the format byte without copying them: reads
// of the online table decode straight from the mapped file.
func (PlainCodec) Open(_, sealed []byte) ([]byte, error) {
	if len(sealed) == 0 || sealed[0] != formatPlain {
		return nil, fmt.Errorf("open value: unknown format byte (encrypted store without its key?)")
	}
	return sealed[1:], nil
}
