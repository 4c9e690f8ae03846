package schemes

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestParsePSK(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, PSKLen)
	enc := base64.StdEncoding.EncodeToString(key)
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" means success
	}{
		{"as written", enc + "\n", ""},
		{"CRLF and spaces", "  " + enc + "\r\n", ""},
		{"empty", "", "it is empty"},
		{"white space only", " \n\t", "it is empty"},
		{"not base64", "this is not a key!!", "it is not base64"},
		{"raw bytes", string(key), "raw bytes"},
		{"too short", base64.StdEncoding.EncodeToString(key[:16]), "it holds 16 bytes, want 32"},
		{"too long", base64.StdEncoding.EncodeToString(append(key, 1)), "it holds 33 bytes, want 32"},
		{"hex instead of base64", strings.Repeat("ab", 32), "it holds 48 bytes, want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePSK([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil || !bytes.Equal(got, key) {
					t.Fatalf("got %x, %v, want %x", got, err, key)
				}
				return
			}
			if !errors.Is(err, ErrBadPSK) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want ErrBadPSK saying %q", err, tt.wantErr)
			}
		})
	}
}

func TestGeneratePSK(t *testing.T) {
	a, err := GeneratePSK()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GeneratePSK()
	ka, err := ParsePSK(a)
	if err != nil {
		t.Fatalf("ParsePSK(GeneratePSK()): %v", err)
	}
	kb, _ := ParsePSK(b)
	if bytes.Equal(ka, kb) {
		t.Error("two generated keys are equal")
	}
	if a[len(a)-1] != '\n' {
		t.Errorf("got %q, want a trailing newline", a)
	}
}

func TestDeriveSessionKeysDistinct(t *testing.T) {
	var cn, sn [NonceLen]byte
	c2s, s2c := DeriveSessionKeys(testPSK, cn, sn)
	keys := [][]byte{c2s.Enc, c2s.MAC, s2c.Enc, s2c.MAC}
	for i := range keys {
		if len(keys[i]) != 32 {
			t.Errorf("key %d: got %d bytes, want 32", i, len(keys[i]))
		}
		for j := range i {
			if bytes.Equal(keys[i], keys[j]) {
				t.Errorf("keys %d and %d are equal", j, i)
			}
		}
	}
	sn[0] = 1
	c2s2, _ := DeriveSessionKeys(testPSK, cn, sn)
	if bytes.Equal(c2s.Enc, c2s2.Enc) {
		t.Error("a different server nonce gave the same keys")
	}
	// Appending to one key must not overwrite the next.
	for i, k := range keys {
		if cap(k) != 32 {
			t.Errorf("key %d: got capacity %d, want 32", i, cap(k))
		}
	}
}
