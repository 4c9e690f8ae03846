package certs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzKeyFiles feeds arbitrary file contents to the readers of the other
// files parley loads: signing keys and the room signing secret (hex),
// and CA bundles (--ca). A key that is read is exactly SecretSize bytes.
func FuzzKeyFiles(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "certs")
	if _, err := Init(dir, Options{}); err != nil {
		f.Fatal(err)
	}
	if _, err := IssueClient(dir, "alice", Options{}); err != nil {
		f.Fatal(err)
	}
	for _, name := range []string{SigningSecretFile, "alice.sigkey", CACertFile, "alice.crt"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(bytes.Repeat([]byte("zz"), SecretSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if k, err := ReadSigKey(path); err == nil && len(k) != SecretSize {
			t.Fatalf("read a %d-byte signing key, want %d bytes", len(k), SecretSize)
		}
		if p, err := LoadPool(path); err == nil && p == nil {
			t.Fatal("LoadPool returned neither a pool nor an error")
		}
	})
}
