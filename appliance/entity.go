package appliance

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Entity is what features describe: a user, a driver, a store. Its join keys
// are the columns that identify one instance in rows and requests.
type Entity struct {
	Name        string    `json:"name"`
	JoinKeys    []string  `json:"join_keys"`
	ValueType   string    `json:"value_type"` // "string" or "int64", for every join key
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by,omitempty"`
}

// Entity value types.
const (
	EntityString = "string"
	EntityInt64  = "int64"
)

// Validate checks the entity's definition. A missing join key list defaults
// to the entity's name, as a single key, like Feast's default join key.
func (e *Entity) Validate() error {
	if err := ValidateName("name", e.Name); err != nil {
		return err
	}
	if len(e.JoinKeys) == 0 {
		return Invalid("join_keys", "at least one join key is required")
	}
	seen := map[string]bool{}
	for i, k := range e.JoinKeys {
		field := fmt.Sprintf("join_keys[%d]", i)
		if err := ValidateName(field, k); err != nil {
			return err
		}
		if seen[k] {
			return Invalid(field, "duplicate join key %q", k)
		}
		seen[k] = true
	}
	switch e.ValueType {
	case EntityString, EntityInt64:
	case "":
		return Invalid("value_type", "is required: \"string\" or \"int64\"")
	default:
		return Invalid("value_type", "%q is not \"string\" or \"int64\"", e.ValueType)
	}
	if len(e.Description) > 4096 {
		return Invalid("description", "is longer than 4096 bytes")
	}
	return nil
}

// SameDefinition reports whether two entities define the same thing, so that
// re-posting an entity is a no-op rather than a conflict.
func (e *Entity) SameDefinition(o *Entity) bool {
	if e.Name != o.Name || e.ValueType != o.ValueType || e.Description != o.Description || len(e.JoinKeys) != len(o.JoinKeys) {
		return false
	}
	for i := range e.JoinKeys {
		if e.JoinKeys[i] != o.JoinKeys[i] {
			return false
		}
	}
	return true
}

// MaxJoinKeyBytes bounds a string join key value. Entity keys prefix every
// online and offline key, and bbolt refuses keys over 32 KiB: a longer value
// would be refused deep in a write (or, written offline only, would fail
// every later materialization of its view).
const MaxJoinKeyBytes = 2048

// AppendEntityKeyPart appends the order-preserving, self-delimiting encoding
// of one join key value to dst. Strings are a uvarint length and the bytes;
// int64s are 8 big-endian bytes with the sign bit flipped so that negative
// keys sort first. The concatenation of a view's parts is its entity key: the
// prefix of every offline and online key of that view.
func AppendEntityKeyPart(dst []byte, v Value) []byte {
	if v.Kind == KindInt64 {
		return binary.BigEndian.AppendUint64(dst, uint64(v.Int)^(1<<63))
	}
	dst = binary.AppendUvarint(dst, uint64(len(v.Str)))
	return append(dst, v.Str...)
}

// DecodeEntityKeyPart reads one join key value of the given entity value type
// from the start of key and returns it and the rest of the key.
func DecodeEntityKeyPart(key []byte, valueType string) (Value, []byte, error) {
	if valueType == EntityInt64 {
		if len(key) < 8 {
			return Value{}, nil, fmt.Errorf("entity key: short int64 part")
		}
		return Int64Value(int64(binary.BigEndian.Uint64(key) ^ (1 << 63))), key[8:], nil
	}
	n, w := binary.Uvarint(key)
	if w <= 0 || uint64(len(key)-w) < n {
		return Value{}, nil, fmt.Errorf("entity key: bad string part")
	}
	return StringValue(string(key[w : w+int(n)])), key[w+int(n):], nil
}
