package labs

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-edu/parley/capture"
)

func TestTLSDecryptSolved(t *testing.T) {
	_, dir := startLab(t, "tls-decrypt", "student1")
	path := filepath.Join(dir, "tls-decrypt.pcapng")
	for _, s := range recovered(t, path, capture.ReadOptions{}) {
		if strings.Contains(s, "door code is") {
			t.Fatalf("the capture alone gives the answer away: %q", s)
		}
	}
	keyLog := []byte(readFile(t, filepath.Join(dir, "tls-decrypt.keys.log")))
	answer := findAfter(t, recovered(t, path, capture.ReadOptions{KeyLog: keyLog}), "the new door code is")
	wantSolved(t, "tls-decrypt", "student1", answer)
}
