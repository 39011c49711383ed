package store

import (
	"fmt"

	"github.com/mlnode/mlnode/appliance"
)

// encodeValues appends the row's values in schema order, each in its
// binary form (appliance.AppendValueBinary).
func encodeValues(dst []byte, values []appliance.Value) []byte {
	for _, v := range values {
		dst = appliance.AppendValueBinary(dst, v)
	}
	return dst
}

// decodeValues reads n values into dst (reusing its capacity). Strings are
// copied: b may be memory owned by a transaction.
func decodeValues(dst []appliance.Value, b []byte, n int) ([]appliance.Value, error) {
	vals, err := appliance.DecodeValuesBinary(dst, b, n)
	if err != nil {
		return nil, fmt.Errorf("decode row: %w", err)
	}
	return vals, nil
}
