package capture

import (
	"path/filepath"
	"testing"
)

// TestIgnoreEmbeddedKeys reads a TLS capture that carries its key log with
// and without IgnoreEmbeddedKeys: with it, nothing may be decrypted.
func TestIgnoreEmbeddedKeys(t *testing.T) {
	path := filepath.Join("testdata", "tls.pcapng")
	count := func(ignore bool) int {
		t.Helper()
		evs, err := ReadFile(path, ReadOptions{IgnoreEmbeddedKeys: ignore})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs {
			if e.RecoveredBy == "tls-keylog" {
				n++
			}
		}
		return n
	}
	if got := count(false); got == 0 {
		t.Fatalf("with the embedded keys: got 0 decrypted messages, want some (does the golden capture still embed its keys?)")
	}
	if got := count(true); got != 0 {
		t.Errorf("ignoring the embedded keys: got %d decrypted messages, want 0", got)
	}
}
