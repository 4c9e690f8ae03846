package labs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-edu/parley/labs/internal/sha256ext"
)

// extend is the student's tool (hashpump's job): it forges the tag of
// msg ‖ padding ‖ ext from msg's tag, knowing only the key's length.
func extend(t *testing.T, msg []byte, tagHex string, keyLen int, ext string) (forged []byte, tag [32]byte) {
	t.Helper()
	raw, err := hex.DecodeString(strings.TrimSpace(tagHex))
	if err != nil || len(raw) != 32 {
		t.Fatalf("bad tag %q: %v", tagHex, err)
	}
	n := uint64(keyLen + len(msg))
	d := sha256ext.Resume([32]byte(raw), n)
	d.Write([]byte(ext))
	forged = append(append(append([]byte(nil), msg...), sha256ext.Padding(n)...), ext...)
	return forged, d.Sum()
}

func TestLengthExtensionSolved(t *testing.T) {
	_, dir := startLab(t, "length-extension", "student1")
	msg := []byte(readFile(t, filepath.Join(dir, "message.txt")))
	forged, tag := extend(t, msg, readFile(t, filepath.Join(dir, "tag.txt")), 16, LengthExtSuffix)
	answer := hex.EncodeToString(forged) + ":" + hex.EncodeToString(tag[:])
	wantSolved(t, "length-extension", "student1", answer)

	// The same extension against the HMAC tag gives a tag that the check
	// (which is sha256(key ‖ m)) rejects, and that is not the HMAC of the
	// forged message either: there is no state to continue.
	_, htag := extend(t, msg, readFile(t, filepath.Join(dir, "hmac-tag.txt")), 16, LengthExtSuffix)
	if r := checkAnswer(t, "length-extension", "student1", hex.EncodeToString(forged)+":"+hex.EncodeToString(htag[:])); r.Correct {
		t.Error("an extension of the HMAC tag was accepted")
	}
	if bytes.Equal(htag[:], tag[:]) {
		t.Error("the HMAC tag extended to the same tag")
	}

	// Wrong key lengths, a missing suffix and the untouched message are
	// turned down with a nudge.
	for _, kl := range []int{15, 17} {
		f, tg := extend(t, msg, readFile(t, filepath.Join(dir, "tag.txt")), kl, LengthExtSuffix)
		if r := checkAnswer(t, "length-extension", "student1", hex.EncodeToString(f)+":"+hex.EncodeToString(tg[:])); r.Correct {
			t.Errorf("key length %d: accepted", kl)
		}
	}
	orig := sha256.Sum256(msg)
	for name, a := range map[string]string{
		"not hex":     "hello:world",
		"no colon":    hex.EncodeToString(forged),
		"the message": hex.EncodeToString(msg) + ":" + strings.TrimSpace(readFile(t, filepath.Join(dir, "tag.txt"))),
		"naive":       hex.EncodeToString(append(msg, LengthExtSuffix...)) + ":" + hex.EncodeToString(orig[:]),
	} {
		if r := checkAnswer(t, "length-extension", "student1", a); r.Correct || r.Message == "" {
			t.Errorf("%s: got correct=%v %q, want a nudge", name, r.Correct, r.Message)
		}
	}
}
