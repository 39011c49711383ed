package store

import "fmt"

// Codec seals every value before it is stored and opens it when read. It is
// the one place where encryption at rest is added: an implementation must
// tell its own format apart by the first byte and open every older one.
type Codec interface {
	// Seal appends the sealed form of plain to dst.
	Seal(dst, plain []byte) []byte
	// Open appends the plain form of sealed to dst. The result must not
	// alias sealed, which may be memory owned by a transaction.
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

func (PlainCodec) Open(dst, sealed []byte) ([]byte, error) {
	if len(sealed) == 0 || sealed[0] != formatPlain {
		return nil, fmt.Errorf("open value: unknown format byte (encrypted store without its key?)")
	}
	return append(dst, sealed[1:]...), nil
}
