package schemes

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVectorWithOpenSSL checks the aes-cbc-hmac vector record with an
// independent implementation: the openssl command decrypts its ciphertext
// (AES-256-CBC, PKCS#7 padding removed) and computes its HMAC-SHA256 tag
// over seq(8) ‖ len(4) ‖ IV ‖ ciphertext.
func TestVectorWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("this test needs the openssl command on PATH (CI installs it): ", err)
	}
	v := readVector(t, "aes-cbc-hmac.txt")
	encKey, macKey := v.hex(t, "c2s_enc"), v.hex(t, "c2s_mac")
	for _, r := range []struct {
		prefix string
		seq    uint64
	}{{"confirm_", 0}, {"", 1}} {
		t.Run(r.prefix+"record", func(t *testing.T) {
			rec := v.hex(t, r.prefix+"record")
			n := binary.BigEndian.Uint32(rec)
			if int(n) != len(rec)-RecordHeaderLen {
				t.Fatalf("length field %d, want %d", n, len(rec)-RecordHeaderLen)
			}
			iv := rec[RecordHeaderLen : RecordHeaderLen+RecordIVLen]
			ct := rec[RecordHeaderLen+RecordIVLen : len(rec)-RecordTagLen]
			tag := rec[len(rec)-RecordTagLen:]
			dir := t.TempDir()

			ctFile := filepath.Join(dir, "ct")
			os.WriteFile(ctFile, ct, 0o600)
			out, err := exec.Command(openssl, "enc", "-d", "-aes-256-cbc",
				"-K", hex.EncodeToString(encKey), "-iv", hex.EncodeToString(iv), "-in", ctFile).Output()
			if err != nil {
				t.Fatalf("openssl enc: %v", err)
			}
			if want := v.str(t, r.prefix+"message"); string(out) != want {
				t.Errorf("openssl decrypts to %q, want %q", out, want)
			}

			macFile := filepath.Join(dir, "mac-input")
			input := binary.BigEndian.AppendUint64(nil, r.seq)
			input = append(input, rec[:len(rec)-RecordTagLen]...)
			os.WriteFile(macFile, input, 0o600)
			out, err = exec.Command(openssl, "dgst", "-sha256", "-mac", "HMAC",
				"-macopt", "hexkey:"+hex.EncodeToString(macKey), macFile).Output()
			if err != nil {
				t.Fatalf("openssl dgst: %v", err)
			}
			// Output: "HMAC-SHA2-256(file)= hex" (wording varies by version).
			_, got, ok := strings.Cut(strings.TrimSpace(string(out)), "= ")
			gotTag, herr := hex.DecodeString(got)
			if !ok || herr != nil {
				t.Fatalf("cannot read openssl dgst output %q", out)
			}
			if !bytes.Equal(gotTag, tag) {
				t.Errorf("openssl tag %x, want the record's %x", gotTag, tag)
			}
		})
	}
}
