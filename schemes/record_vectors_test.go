package schemes

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var updateVectors = flag.Bool("update-vectors", false, "rewrite schemes/testdata/*.txt from the code (then copy them into PROTOCOL.md)")

// vector is one testdata/*.txt file: "name = value" lines, '#' comments,
// indented continuation lines. A value is hex (spaces allowed), a "quoted
// string", or a decimal number; the accessors say which they expect.
type vector struct {
	file   string
	keys   []string
	values map[string]string
}

func readVector(t testing.TB, file string) *vector {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	v := &vector{file: file, values: map[string]string{}}
	last := ""
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#"):
			last = ""
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				t.Fatalf("%s:%d: continuation line without a value", file, i+1)
			}
			v.values[last] += " " + strings.TrimSpace(line)
		default:
			name, value, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s:%d: want name = value, got %q", file, i+1, line)
			}
			last = strings.TrimSpace(name)
			v.keys = append(v.keys, last)
			v.values[last] = strings.TrimSpace(value)
		}
	}
	return v
}

func (v *vector) raw(t testing.TB, name string) string {
	t.Helper()
	s, ok := v.values[name]
	if !ok {
		t.Fatalf("%s: no %s", v.file, name)
	}
	return s
}

func (v *vector) hex(t testing.TB, name string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(v.raw(t, name), " ", ""))
	if err != nil {
		t.Fatalf("%s: %s: %v", v.file, name, err)
	}
	return b
}

func (v *vector) nonce(t testing.TB, name string) (n [NonceLen]byte) {
	t.Helper()
	if b := v.hex(t, name); copy(n[:], b) != NonceLen || len(b) != NonceLen {
		t.Fatalf("%s: %s: got %d bytes, want %d", v.file, name, len(b), NonceLen)
	}
	return n
}

func (v *vector) str(t testing.TB, name string) string {
	t.Helper()
	s, err := strconv.Unquote(v.raw(t, name))
	if err != nil {
		t.Fatalf("%s: %s: want a quoted string: %v", v.file, name, err)
	}
	return s
}

func (v *vector) num(t testing.TB, name string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(v.raw(t, name), 10, 64)
	if err != nil {
		t.Fatalf("%s: %s: %v", v.file, name, err)
	}
	return n
}

// hexLines formats b as hex in groups of 16 bytes, one group per line,
// continuation lines indented.
func hexLines(b []byte) string {
	var sb strings.Builder
	for i := 0; i < len(b); i += 16 {
		if i > 0 {
			sb.WriteString("\n    ")
		}
		sb.WriteString(hex.EncodeToString(b[i:min(i+16, len(b))]))
	}
	return sb.String()
}

func seqBytes(n byte) (b [NonceLen]byte) {
	for i := range b {
		b[i] = n + byte(i)
	}
	return b
}

// vectorInputs are the fixed inputs of the aes vectors.
var (
	vectorPSK         = func() []byte { b := seqBytes(0x00); c := seqBytes(0x10); return append(b[:], c[:]...) }()
	vectorClientNonce = seqBytes(0xa0)
	vectorServerNonce = seqBytes(0xb0)
	vectorConfirmIV   = seqBytes(0xc0)
	vectorIV          = seqBytes(0xd0)
)

const (
	vectorMessage    = "alice"
	vectorXORKey     = 0x2a
	vectorXORMessage = "* parley room lobby (xor)"
	vectorPassphrase = "correct horse battery staple"
)

// writeVectors regenerates the testdata files from the code.
func writeVectors(t *testing.T) {
	c2s, s2c := DeriveSessionKeys(vectorPSK, vectorClientNonce, vectorServerNonce)
	ch := AppendHello(nil, Hello{Version: 1, SchemeID: 3, Nonce: vectorClientNonce})
	sh := AppendHello(nil, Hello{Version: 1, SchemeID: 3, Nonce: vectorServerNonce})
	for _, f := range []struct {
		file string
		mac  bool
	}{{"aes-cbc-hmac.txt", true}, {"aes-cbc.txt", false}} {
		id := byte(3)
		name := "aes-cbc-hmac"
		if !f.mac {
			id, name = 2, "aes-cbc"
			ch[5], sh[5] = id, id
		}
		tagNote := "IV ‖ ciphertext ‖ tag"
		if !f.mac {
			tagNote = "IV ‖ ciphertext (no tag)"
		}
		s := fmt.Sprintf(`# %s test vector: PROTOCOL.md, "Test vectors". Hex unless quoted;
# indented lines continue a value. TestVectors recomputes every value.

# Inputs: the pre-shared key and the two hello nonces.
psk          = %s
client_nonce = %s
server_nonce = %s

# Hellos: "PRLY" ‖ version 1 ‖ scheme id %d ‖ nonce.
client_hello = %s
server_hello = %s

# HKDF-SHA256(IKM = psk, salt = client_nonce ‖ server_nonce,
# info = %q, L = 128), split in four.
c2s_enc = %s
c2s_mac = %s
s2c_enc = %s
s2c_mac = %s

# The client's key-confirmation record: client to server, sequence number 0.
# record = len(4) ‖ %s
confirm_iv      = %s
confirm_message = %q
confirm_record  = %s

# The client's first room message (its name): client to server, sequence
# number 1.
iv      = %s
message = %q
record  = %s
`, name, hexLines(vectorPSK), hexLines(vectorClientNonce[:]), hexLines(vectorServerNonce[:]), id,
			hexLines(ch), hexLines(sh), SessionKeyInfo,
			hexLines(c2s.Enc), hexLines(c2s.MAC), hexLines(s2c.Enc), hexLines(s2c.MAC), tagNote,
			hexLines(vectorConfirmIV[:]), confirmMessage,
			hexLines(sealRecordIV(nil, c2s, 0, []byte(confirmMessage), f.mac, vectorConfirmIV[:])),
			hexLines(vectorIV[:]), vectorMessage,
			hexLines(sealRecordIV(nil, c2s, 1, []byte(vectorMessage), f.mac, vectorIV[:])))
		writeFile(t, f.file, s)
	}
	x := []byte{0, byte(len(vectorXORMessage))}
	for _, c := range []byte(vectorXORMessage) {
		x = append(x, c^vectorXORKey)
	}
	writeFile(t, "xor.txt", fmt.Sprintf(`# xor test vector: PROTOCOL.md, "xor". Hex unless quoted.

key      = %02x
# The server's first byte: (key + 10) mod 256.
wire_key = %02x
message  = %q
# len(2, big-endian) ‖ message XOR key.
record   = %s
`, vectorXORKey, XORKeyToWire(vectorXORKey), vectorXORMessage, hexLines(x)))
	writeFile(t, "psk.txt", fmt.Sprintf(`# Pre-shared key vectors: PROTOCOL.md, "Pre-shared key".

# A key file holds base64 (RFC 4648 §4) of the 32 bytes and a newline; this
# one holds the psk of aes-cbc-hmac.txt.
psk      = %s
psk_file = %q

# Argon2id(passphrase, salt = %q, t = %d, m = %d KiB, p = %d, 32 bytes).
passphrase     = %q
passphrase_key = %s
`, hexLines(vectorPSK), base64.StdEncoding.EncodeToString(vectorPSK)+"\n",
		PassphraseSalt, PassphraseTime, PassphraseMemory, PassphraseThreads,
		vectorPassphrase, hexLines(PassphraseKey(vectorPassphrase))))
}

func writeFile(t *testing.T, name, s string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join("testdata", name), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVectors(t *testing.T) {
	if *updateVectors {
		writeVectors(t)
	}
	for _, f := range []struct {
		file string
		mac  bool
		id   byte
	}{{"aes-cbc-hmac.txt", true, 3}, {"aes-cbc.txt", false, 2}} {
		t.Run(f.file, func(t *testing.T) {
			v := readVector(t, f.file)
			psk := v.hex(t, "psk")
			cn, sn := v.nonce(t, "client_nonce"), v.nonce(t, "server_nonce")
			for _, h := range []struct {
				name  string
				nonce [NonceLen]byte
			}{{"client_hello", cn}, {"server_hello", sn}} {
				want := v.hex(t, h.name)
				if got := AppendHello(nil, Hello{Version: HelloVersion, SchemeID: f.id, Nonce: h.nonce}); !bytes.Equal(got, want) {
					t.Errorf("%s: got %x, want %x", h.name, got, want)
				}
				parsed, err := ParseHello(want)
				if err != nil || parsed != (Hello{Version: 1, SchemeID: f.id, Nonce: h.nonce}) {
					t.Errorf("ParseHello(%s): got %+v, %v", h.name, parsed, err)
				}
			}
			c2s, s2c := DeriveSessionKeys(psk, cn, sn)
			for _, k := range []struct {
				name string
				got  []byte
			}{{"c2s_enc", c2s.Enc}, {"c2s_mac", c2s.MAC}, {"s2c_enc", s2c.Enc}, {"s2c_mac", s2c.MAC}} {
				if want := v.hex(t, k.name); !bytes.Equal(k.got, want) {
					t.Errorf("%s: got %x, want %x", k.name, k.got, want)
				}
			}
			for _, r := range []struct{ prefix string }{{"confirm_"}, {""}} {
				iv := v.hex(t, r.prefix+"iv")
				msg := v.str(t, r.prefix+"message")
				want := v.hex(t, r.prefix+"record")
				seq := uint64(1)
				if r.prefix == "confirm_" {
					seq = 0
				}
				if got := sealRecordIV(nil, c2s, seq, []byte(msg), f.mac, iv); !bytes.Equal(got, want) {
					t.Errorf("%srecord: got %x, want %x", r.prefix, got, want)
				}
				opened, err := OpenRecord(c2s, seq, want[RecordHeaderLen:], f.mac)
				if err != nil || string(opened) != msg {
					t.Errorf("OpenRecord(%srecord): got %q, %v, want %q", r.prefix, opened, err, msg)
				}
			}
		})
	}
	t.Run("xor.txt", func(t *testing.T) {
		v := readVector(t, "xor.txt")
		key, wire := v.hex(t, "key"), v.hex(t, "wire_key")
		if got := XORKeyToWire(key[0]); got != wire[0] {
			t.Errorf("wire key: got %02x, want %02x", got, wire[0])
		}
		if got := XORKeyFromWire(wire[0]); got != key[0] {
			t.Errorf("key from wire: got %02x, want %02x", got, key[0])
		}
		var buf bytes.Buffer
		x := &xorConn{Conn: writerConn{w: &buf}, key: key[0], max: XORMaxMessage}
		if err := x.WriteLines([]byte(v.str(t, "message") + "\n")); err != nil {
			t.Fatal(err)
		}
		if want := v.hex(t, "record"); !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("record: got %x, want %x", buf.Bytes(), want)
		}
	})
	t.Run("psk.txt", func(t *testing.T) {
		v := readVector(t, "psk.txt")
		got, err := ParsePSK([]byte(v.str(t, "psk_file")))
		if want := v.hex(t, "psk"); err != nil || !bytes.Equal(got, want) {
			t.Errorf("ParsePSK(psk_file): got %x, %v, want %x", got, err, want)
		}
		if testing.Short() {
			t.Skip("the passphrase vector needs 64 MiB and a fraction of a second: skipped with -short")
		}
		if got, want := PassphraseKey(v.str(t, "passphrase")), v.hex(t, "passphrase_key"); !bytes.Equal(got, want) {
			t.Errorf("PassphraseKey: got %x, want %x", got, want)
		}
	})
}

// TestVectorsInProtocol checks that PROTOCOL.md shows the same vectors as
// testdata, so the document that dissectors and labs are checked against
// cannot drift from the code.
func TestVectorsInProtocol(t *testing.T) {
	doc, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	space := regexp.MustCompile(`[\s|]+`)
	flat := space.ReplaceAllString(string(doc), "")
	for _, file := range []string{"aes-cbc-hmac.txt", "aes-cbc.txt", "xor.txt", "psk.txt"} {
		v := readVector(t, file)
		for _, k := range v.keys {
			val := v.values[k]
			if strings.HasPrefix(val, `"`) {
				val = v.str(t, k)
			}
			if !strings.Contains(flat, space.ReplaceAllString(val, "")) {
				t.Errorf("PROTOCOL.md does not show %s %s = %s", file, k, v.values[k])
			}
		}
	}
}

// writerConn is a net.Conn that only writes, to w.
type writerConn struct {
	net.Conn
	w *bytes.Buffer
}

func (c writerConn) Write(b []byte) (int, error) { return c.w.Write(b) }
