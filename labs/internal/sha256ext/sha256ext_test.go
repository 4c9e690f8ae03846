package sha256ext

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

func TestMatchesCryptoSHA256(t *testing.T) {
	for _, n := range []int{0, 1, 55, 56, 63, 64, 65, 119, 120, 200} {
		in := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
		d := New()
		d.Write(in)
		if got, want := d.Sum(), sha256.Sum256(in); got != want {
			t.Errorf("len %d: got %x, want %x", n, got, want)
		}
	}
}

func TestResumeExtends(t *testing.T) {
	for _, n := range []int{0, 20, 55, 56, 64, 100} {
		orig := bytes.Repeat([]byte("k"), n)
		ext := []byte("&admin=true")
		d := Resume(sha256.Sum256(orig), uint64(n))
		d.Write(ext)
		forged := append(append(append([]byte(nil), orig...), Padding(uint64(n))...), ext...)
		if got, want := d.Sum(), sha256.Sum256(forged); got != want {
			t.Errorf("len %d: got %x, want %x", n, got, want)
		}
	}
}
