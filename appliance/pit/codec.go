package pit

import (
	"encoding/binary"
	"errors"
)

// The spill files hold values in their binary form
// (appliance.AppendValueBinary). They live only as long as one request.

var errCorrupt = errors.New("corrupt spill record")

func readUvarint(b []byte) (uint64, []byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return 0, nil, errCorrupt
	}
	return n, b[w:], nil
}
