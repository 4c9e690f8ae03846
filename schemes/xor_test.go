package schemes

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestXORWire checks the bytes on the wire against PROTOCOL.md: the key
// byte is key + 10 mod 256, and a record is len(2, big-endian) ‖ message
// XOR key.
func TestXORWire(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		key, wireKey byte
	}{{0x2a, 0x34}, {0, 10}, {250, 4}, {0xff, 9}}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			s := mustNew(t, "xor", Config{XORKey: tt.key, XORKeySet: true})
			var wire []byte
			server, _ := runPairFuncs(t, func(c net.Conn) (Conn, error) {
				sc, err := s.Server(c)
				if err != nil {
					return nil, err
				}
				if err := sc.WriteLines([]byte("hi\n")); err != nil {
					return nil, err
				}
				return sc, sc.Close()
			}, func(c net.Conn) (Conn, error) {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				var err error
				wire, err = io.ReadAll(c)
				return nil, err
			})
			if server.err != nil {
				t.Fatal(server.err)
			}
			want := []byte{tt.wireKey, 0x00, 0x02, 'h' ^ tt.key, 'i' ^ tt.key}
			if !bytes.Equal(wire, want) {
				t.Errorf("key 0x%02x: got wire % x, want % x", tt.key, wire, want)
			}
			if got := XORKeyFromWire(tt.wireKey); got != tt.key {
				t.Errorf("XORKeyFromWire(0x%02x): got 0x%02x, want 0x%02x", tt.wireKey, got, tt.key)
			}
		})
	}
}

func TestXORKeyRandomPerRun(t *testing.T) {
	// One key per scheme instance (a server run); over 8 runs at least two
	// keys differ unless crypto/rand is broken (probability 2^-56).
	keys := map[byte]bool{}
	for range 8 {
		s := mustNew(t, "xor", Config{})
		keys[s.(*xorScheme).key] = true
	}
	if len(keys) < 2 {
		t.Errorf("got the same key in 8 runs, want random keys")
	}
}

func TestXORReadMessage(t *testing.T) {
	enc := func(key byte, msg string) []byte {
		b := []byte{byte(len(msg) >> 8), byte(len(msg))}
		for _, c := range []byte(msg) {
			b = append(b, c^key)
		}
		return b
	}
	t.Run("over the limit is skipped", func(t *testing.T) {
		in := append(enc(7, strings.Repeat("a", 11)), enc(7, "ok")...)
		x := &xorConn{r: bytes.NewReader(in), key: 7, max: 10}
		if _, err := x.ReadMessage(); !errors.Is(err, ErrMessageTooLong) {
			t.Fatalf("got %v, want ErrMessageTooLong", err)
		}
		if got, err := x.ReadMessage(); err != nil || string(got) != "ok" {
			t.Errorf("got %q, %v, want %q", got, err, "ok")
		}
		if _, err := x.ReadMessage(); err != io.EOF {
			t.Errorf("at the end: got %v, want io.EOF", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		x := &xorConn{r: bytes.NewReader(enc(7, "hello")[:4]), key: 7, max: 10}
		_, err := x.ReadMessage()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
		}
		if _, again := x.ReadMessage(); again != err {
			t.Errorf("got %v, want the sticky %v", again, err)
		}
	})
	t.Run("limit is the length field's", func(t *testing.T) {
		s := mustNew(t, "xor", Config{MaxMessage: 1 << 20})
		if got := s.(*xorScheme).max; got != XORMaxMessage {
			t.Errorf("got limit %d, want %d", got, XORMaxMessage)
		}
	})
}
