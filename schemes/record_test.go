package schemes

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestRecordSchemesRoundTrip(t *testing.T) {
	defer goleak.VerifyNone(t)
	long := strings.Repeat("x", 1000)
	tests := []struct {
		scheme string
		cfg    Config
	}{
		{"plain", Config{}},
		{"xor", Config{}},
		{"xor", Config{XORKey: 0, XORKeySet: true}},
		{"aes-cbc-hmac", Config{PSK: testPSK}},
		{"aes-cbc", Config{PSK: testPSK}},
		{"aes-cbc", Config{PSK: testPSK, PaddingOracle: true}},
	}
	for _, tt := range tests {
		t.Run(tt.scheme, func(t *testing.T) {
			srv, cli := mustNew(t, tt.scheme, tt.cfg), mustNew(t, tt.scheme, tt.cfg)
			server, client := runPair(t, srv, cli)
			if server.err != nil || client.err != nil {
				t.Fatalf("handshake: server: %v, client: %v", server.err, client.err)
			}
			for _, dir := range []struct {
				name     string
				from, to Conn
			}{{"server to client", server.conn, client.conn}, {"client to server", client.conn, server.conn}} {
				msgs := []string{"* parley room test", "", "héllo", "a line with\ttab", long, "15 bytes: 12345", "16 bytes: 123456"}
				if err := dir.from.WriteLines([]byte(strings.Join(msgs, "\n") + "\n")); err != nil {
					t.Fatalf("%s: WriteLines: %v", dir.name, err)
				}
				for i, want := range msgs {
					got, err := readMessage(t, dir.to)
					if err != nil {
						t.Fatalf("%s: message %d: %v", dir.name, i, err)
					}
					if got != want {
						t.Errorf("%s: message %d: got %q, want %q", dir.name, i, got, want)
					}
				}
			}
		})
	}
}

// countingConn counts Write calls.
type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

func TestWriteLinesOneWrite(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, name := range []string{"xor", "aes-cbc-hmac", "aes-cbc"} {
		t.Run(name, func(t *testing.T) {
			s := mustNew(t, name, Config{PSK: testPSK})
			var cc *countingConn
			server, client := runPairFuncs(t, s.Server, func(c net.Conn) (Conn, error) {
				cc = &countingConn{Conn: c}
				return s.Client(cc)
			})
			if server.err != nil || client.err != nil {
				t.Fatalf("handshake: server: %v, client: %v", server.err, client.err)
			}
			cc.writes.Store(0)
			if err := client.conn.WriteLines([]byte("one\ntwo\nthree\n")); err != nil {
				t.Fatal(err)
			}
			if got := cc.writes.Load(); got != 1 {
				t.Errorf("got %d writes for three messages, want 1", got)
			}
			for _, want := range []string{"one", "two", "three"} {
				if got, err := readMessage(t, server.conn); err != nil || got != want {
					t.Errorf("got %q, %v, want %q", got, err, want)
				}
			}
		})
	}
}

func TestWriteLinesTooLong(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, name := range []string{"xor", "aes-cbc-hmac", "aes-cbc"} {
		t.Run(name, func(t *testing.T) {
			s := mustNew(t, name, Config{PSK: testPSK, MaxMessage: 10})
			server, client := runPair(t, s, s)
			if server.err != nil || client.err != nil {
				t.Fatalf("handshake: server: %v, client: %v", server.err, client.err)
			}
			err := client.conn.WriteLines([]byte("short\n" + strings.Repeat("y", 11) + "\n"))
			if !errors.Is(err, ErrMessageTooLong) {
				t.Fatalf("WriteLines of an 11-byte message with limit 10: got %v, want ErrMessageTooLong", err)
			}
			// Nothing was sent and the sequence numbers still agree.
			if err := client.conn.WriteLines([]byte("after\n")); err != nil {
				t.Fatal(err)
			}
			if got, err := readMessage(t, server.conn); err != nil || got != "after" {
				t.Errorf("got %q, %v, want %q", got, err, "after")
			}
		})
	}
}

// flip returns a copy of rec with bit 0 of byte i flipped.
func flip(rec []byte, i int) []byte {
	b := bytes.Clone(rec)
	b[i] ^= 0x01
	return b
}

// truncate returns rec shortened by n bytes with its length field fixed.
func truncate(rec []byte, n int) []byte {
	b := bytes.Clone(rec[:len(rec)-n])
	l := len(b) - RecordHeaderLen
	b[0], b[1], b[2], b[3] = byte(l>>24), byte(l>>16), byte(l>>8), byte(l)
	return b
}

func TestAESCBCHMACRejects(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv := mustNew(t, "aes-cbc-hmac", Config{PSK: testPSK})
	const (
		ivAt  = RecordHeaderLen
		ctAt  = RecordHeaderLen + RecordIVLen
		tagAt = -1 // last byte of the tag, counted from the end
	)
	tests := []struct {
		name string
		// records returns what the raw client sends; the server must
		// accept the first ok messages and then reject.
		records func(rc *rawClient, other *rawClient) [][]byte
		ok      []string
	}{
		{"flipped IV bit", func(rc, _ *rawClient) [][]byte { return [][]byte{flip(rc.seal(1, "hello"), ivAt)} }, nil},
		{"flipped ciphertext bit", func(rc, _ *rawClient) [][]byte { return [][]byte{flip(rc.seal(1, "hello"), ctAt+3)} }, nil},
		{"flipped tag bit", func(rc, _ *rawClient) [][]byte {
			r := rc.seal(1, "hello")
			return [][]byte{flip(r, len(r)+tagAt)}
		}, nil},
		{"flipped length bit", func(rc, _ *rawClient) [][]byte {
			r := rc.seal(1, "hello")
			return [][]byte{flip(r, 3), make([]byte, 32)}
		}, nil},
		{"replayed record", func(rc, _ *rawClient) [][]byte {
			r := rc.seal(1, "first")
			return [][]byte{r, r}
		}, []string{"first"}},
		{"two records swapped", func(rc, _ *rawClient) [][]byte { return [][]byte{rc.seal(2, "second"), rc.seal(1, "first")} }, nil},
		{"record dropped", func(rc, _ *rawClient) [][]byte { return [][]byte{rc.seal(1, "first"), rc.seal(3, "third")} }, []string{"first"}},
		{"truncated by one byte", func(rc, _ *rawClient) [][]byte { return [][]byte{truncate(rc.seal(1, "hello"), 1)} }, nil},
		{"truncated by one block", func(rc, _ *rawClient) [][]byte { return [][]byte{truncate(rc.seal(1, "hello, room, 17 b"), 16)} }, nil},
		{"tag stripped", func(rc, _ *rawClient) [][]byte {
			return [][]byte{truncate(rc.seal(1, "hello, room, 17 b"), RecordTagLen)}
		}, nil},
		{"record from another connection", func(rc, other *rawClient) [][]byte { return [][]byte{other.seal(1, "hello")} }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, srv, "aes-cbc-hmac", testPSK)
			other := dialRaw(t, srv, "aes-cbc-hmac", testPSK)
			rc.send(t, tt.records(rc, other)...)
			for _, want := range tt.ok {
				if got, err := readMessage(t, rc.server); err != nil || got != want {
					t.Fatalf("got %q, %v, want %q", got, err, want)
				}
			}
			_, err := readMessage(t, rc.server)
			if !errors.Is(err, ErrBadRecordMAC) {
				t.Fatalf("got %v, want ErrBadRecordMAC", err)
			}
			if errors.Is(err, ErrWrongKey) {
				t.Errorf("got %v, which claims a wrong key after the key was confirmed", err)
			}
			if _, again := rc.server.ReadMessage(); again != err {
				t.Errorf("second ReadMessage: got %v, want the sticky %v", again, err)
			}
			// The caller closes a Conn after a fatal error; the room first
			// tells the peer why, over the direction that still works.
			if err := rc.server.WriteLines([]byte("! closing your connection: bad record MAC\n")); err != nil {
				t.Errorf("telling the peer why: %v", err)
			}
			rc.server.Close()
			waitClosed(t, rc.c)
		})
	}
}

func TestWrongKey(t *testing.T) {
	defer goleak.VerifyNone(t)
	other := bytes.Repeat([]byte{0x43}, PSKLen)
	for _, name := range []string{"aes-cbc-hmac", "aes-cbc"} {
		t.Run(name, func(t *testing.T) {
			server, client := runPair(t, mustNew(t, name, Config{PSK: testPSK}), mustNew(t, name, Config{PSK: other}))
			for _, side := range []struct {
				name string
				err  error
			}{{"server", server.err}, {"client", client.err}} {
				if !errors.Is(side.err, ErrWrongKey) {
					t.Errorf("%s: got %v, want ErrWrongKey", side.name, side.err)
				} else if !strings.Contains(side.err.Error(), "the peer uses a different pre-shared key") {
					t.Errorf("%s: got %q, want it to say the peer uses a different pre-shared key", side.name, side.err)
				}
			}
		})
	}
}

func TestAESCBCBitFlipping(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv := mustNew(t, "aes-cbc", Config{PSK: testPSK})
	rc := dialRaw(t, srv, "aes-cbc", testPSK)
	const msg = "pay alice 10 EUR and bob 20"
	rec := rc.seal(1, msg)
	// Flipping IV bits flips the same bits of the first plaintext block:
	// "alice" becomes "mallo" with IV ^= "alice" ^ "mallo" at offset 4.
	evil := bytes.Clone(rec)
	for i := range 5 {
		evil[RecordHeaderLen+4+i] ^= "alice"[i] ^ "mallo"[i]
	}
	rc.send(t, evil)
	got, err := readMessage(t, rc.server)
	if err != nil {
		t.Fatal(err)
	}
	if want := "pay mallo 10 EUR and bob 20"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPaddingOracle(t *testing.T) {
	defer goleak.VerifyNone(t)
	// badPad flips the last IV byte of a one-block record, which turns
	// the last padding byte into 13^0x80 and so breaks the padding.
	badPad := func(rc *rawClient, seq uint64) []byte {
		r := rc.seal(seq, "abc")
		r[RecordHeaderLen+RecordIVLen-1] ^= 0x80
		return r
	}
	t.Run("oracle on: bad padding is distinct and survivable", func(t *testing.T) {
		rc := dialRaw(t, mustNew(t, "aes-cbc", Config{PSK: testPSK, PaddingOracle: true}), "aes-cbc", testPSK)
		rc.send(t, badPad(rc, 1), rc.seal(2, "still here"))
		if _, err := readMessage(t, rc.server); !errors.Is(err, ErrBadPadding) {
			t.Fatalf("got %v, want ErrBadPadding", err)
		}
		if got, err := readMessage(t, rc.server); err != nil || got != "still here" {
			t.Errorf("after bad padding: got %q, %v, want %q", got, err, "still here")
		}
	})
	t.Run("oracle off: one error, fatal", func(t *testing.T) {
		rc := dialRaw(t, mustNew(t, "aes-cbc", Config{PSK: testPSK}), "aes-cbc", testPSK)
		rc.send(t, badPad(rc, 1))
		_, err := readMessage(t, rc.server)
		if !errors.Is(err, ErrBadRecord) || errors.Is(err, ErrBadPadding) {
			t.Fatalf("got %v, want ErrBadRecord and not ErrBadPadding", err)
		}
		if _, again := rc.server.ReadMessage(); again != err {
			t.Errorf("second ReadMessage: got %v, want the sticky %v", again, err)
		}
		rc.server.Close()
		waitClosed(t, rc.c)
	})
	t.Run("oracle off: bad length looks the same", func(t *testing.T) {
		rc := dialRaw(t, mustNew(t, "aes-cbc", Config{PSK: testPSK}), "aes-cbc", testPSK)
		rc.send(t, truncate(rc.seal(1, "abc"), 1))
		if _, err := readMessage(t, rc.server); !errors.Is(err, ErrBadRecord) {
			t.Fatalf("got %v, want ErrBadRecord", err)
		}
	})
	t.Run("aes-cbc-hmac refuses the oracle", func(t *testing.T) {
		if _, err := New("aes-cbc-hmac", Config{PSK: testPSK, PaddingOracle: true}); err == nil {
			t.Fatal("got no error, want aes-cbc-hmac to refuse PaddingOracle")
		}
	})
}

func TestRecordLengthLimit(t *testing.T) {
	for _, mac := range []bool{true, false} {
		h := &inHalf{r: bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}), maxBody: maxRecordBody(DefaultMaxMessage, mac)}
		_, err := h.readRecord()
		if !errors.Is(err, ErrRecordTooLarge) {
			t.Errorf("mac %v: 4 GiB length field: got %v, want ErrRecordTooLarge", mac, err)
		}
		if errors.Is(err, ErrMessageTooLong) {
			t.Errorf("mac %v: got %v, which must not wrap ErrMessageTooLong (its callers keep reading)", mac, err)
		}
		if cap(h.buf) != 0 {
			t.Errorf("mac %v: got a %d-byte buffer allocated, want none", mac, cap(h.buf))
		}
	}

	t.Run("over the network", func(t *testing.T) {
		defer goleak.VerifyNone(t)
		rc := dialRaw(t, mustNew(t, "aes-cbc-hmac", Config{PSK: testPSK}), "aes-cbc-hmac", testPSK)
		rc.send(t, []byte{0xff, 0xff, 0xff, 0xff})
		if _, err := readMessage(t, rc.server); !errors.Is(err, ErrRecordTooLarge) {
			t.Fatalf("got %v, want ErrRecordTooLarge", err)
		}
		waitClosed(t, rc.c)
	})

	t.Run("authentic message over the limit", func(t *testing.T) {
		defer goleak.VerifyNone(t)
		// A peer with a larger limit sends 20 bytes to a server whose
		// limit is 17: the record is within the padded bound, authentic,
		// reported as too long, and the Conn carries on.
		rc := dialRaw(t, mustNew(t, "aes-cbc-hmac", Config{PSK: testPSK, MaxMessage: 17}), "aes-cbc-hmac", testPSK)
		rc.send(t, rc.seal(1, strings.Repeat("z", 20)), rc.seal(2, "ok"))
		if _, err := readMessage(t, rc.server); !errors.Is(err, ErrMessageTooLong) {
			t.Fatalf("got %v, want ErrMessageTooLong", err)
		}
		if got, err := readMessage(t, rc.server); err != nil || got != "ok" {
			t.Errorf("got %q, %v, want %q", got, err, "ok")
		}
	})
}

func TestOpenRecordDoesNotModifyBody(t *testing.T) {
	k := DirectionKeys{Enc: testPSK, MAC: testPSK}
	rec := SealRecord(nil, k, 7, []byte("hello"), true)
	body := bytes.Clone(rec[RecordHeaderLen:])
	msg, err := OpenRecord(k, 7, body, true)
	if err != nil || string(msg) != "hello" {
		t.Fatalf("got %q, %v, want %q", msg, err, "hello")
	}
	if !bytes.Equal(body, rec[RecordHeaderLen:]) {
		t.Error("OpenRecord modified its input")
	}
	if _, err := OpenRecord(k, 8, body, true); !errors.Is(err, ErrBadRecordMAC) {
		t.Errorf("wrong sequence number: got %v, want ErrBadRecordMAC", err)
	}
	if _, err := OpenRecord(DirectionKeys{Enc: []byte("short")}, 0, body, false); err == nil {
		t.Error("5-byte key: got no error")
	}
}
