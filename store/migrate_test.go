package store

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func setSchemaVersion(t *testing.T, dir string, version uint32, drop ...[]byte) {
	t.Helper()
	s, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range drop {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, binary.BigEndian.AppendUint32(nil, version))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestMigrate_FromSchema1(t *testing.T) {
	dir := t.TempDir()
	setSchemaVersion(t, dir, 1, bucketModules)
	s, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketModules) == nil {
			t.Error("migration 2 did not create the modules bucket")
		}
		if v := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keySchemaVersion)); v != SchemaVersion {
			t.Errorf("schema version %d after migration", v)
		}
		return nil
	})
}

func TestMigrate_RefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	setSchemaVersion(t, dir, SchemaVersion+1)
	_, err := Open(context.Background(), dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "newer than this binary") {
		t.Fatalf("opening a newer store: %v", err)
	}
}
