package capture

import (
	"os"
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

// TestWriteRefusesSpecialFiles: writing a capture replaces the file by a
// rename, so a device, pipe or link at the path must be refused, not
// replaced.
func TestWriteRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.pcapng")
	link := filepath.Join(dir, "link.pcapng")
	if err := os.WriteFile(target, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("no symlinks here: %v", err)
	}
	rec := NewRecorder()
	defer rec.Close()
	if err := rec.WriteFile(link); err == nil {
		t.Fatalf("writing over a symlink: got no error, want a refusal")
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v, %v", st, err)
	}
}
