package schemes

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
)

// XORKeyOffset is added (mod 256) to the xor key before the server sends it
// in the clear, as the original project did (PROTOCOL.md, "xor").
const XORKeyOffset = 10

// XORMaxMessage is the largest message an xor record can carry: its length
// field has two bytes.
const XORMaxMessage = 0xffff

const xorHeaderLen = 2

// XORKeyFromWire returns the xor key that the server's first byte b
// announces.
func XORKeyFromWire(b byte) byte { return b - XORKeyOffset }

// XORKeyToWire returns the byte a server sends to announce key.
func XORKeyToWire(key byte) byte { return key + XORKeyOffset }

func init() {
	register(Properties{
		Name:     "xor",
		Summary:  "messages XORed with a one-byte key that the server sends in the clear on connect",
		Insecure: true,
		Warning:  "xor is INSECURE: it is not encryption, because the one-byte key crosses the network in the clear on connect and, even without it, all 256 keys can be tried in an instant.",
		Leaks: []string{
			"the key itself: the first byte from the server is key + 10",
			"every message, to anyone who reads that byte or tries 256 keys",
			"every message's exact length (the 2-byte length field)",
		},
		Weaknesses: []string{
			"an eavesdropper decrypts everything: the key is on the wire, and 256 keys fall to brute force",
			"a man in the middle rewrites, drops or injects messages undetected",
			"one key per server run: every member and every connection shares it",
			"names are self-asserted: anyone can claim any name",
		},
		Teaches: "key sent in the clear; obscurity is not secrecy; a 256-key space falls to brute force",
	}, newXORScheme)
}

// xorScheme holds the one key of a server run.
type xorScheme struct {
	key byte
	max int
}

var _ Scheme = (*xorScheme)(nil)

func newXORScheme(cfg Config) (Scheme, error) {
	s := &xorScheme{key: cfg.XORKey, max: min(cfg.maxMessage(), XORMaxMessage)}
	if !cfg.XORKeySet {
		var b [1]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("schemes: failed to draw an xor key: %w", err)
		}
		s.key = b[0]
	}
	return s, nil
}

func (s *xorScheme) Name() string { return "xor" }

func (s *xorScheme) Properties() Properties { p, _ := Describe("xor"); return p }

// Server sends the key byte, XORKeyToWire(key), in the clear.
func (s *xorScheme) Server(c net.Conn) (Conn, error) {
	if _, err := c.Write([]byte{XORKeyToWire(s.key)}); err != nil {
		return nil, fmt.Errorf("schemes: failed to send the xor key byte: %w", err)
	}
	return newXORConn(c, s.key, s.max), nil
}

// Client reads the key byte; the client's own key setting, if any, is
// ignored because the server's byte decides.
func (s *xorScheme) Client(c net.Conn) (Conn, error) {
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("schemes: failed to read the xor key byte: %w", err)
	}
	return newXORConn(c, XORKeyFromWire(b[0]), s.max), nil
}

// xorConn frames messages as xor records: len(2, big-endian) ‖ message XOR
// key. Its reader and writer share only the immutable key.
type xorConn struct {
	net.Conn
	r    io.Reader
	key  byte
	max  int
	hdr  [xorHeaderLen]byte
	in   []byte
	rerr error
	out  []byte
	werr error
}

var _ Conn = (*xorConn)(nil)

func newXORConn(c net.Conn, key byte, max int) *xorConn {
	return &xorConn{Conn: c, r: c, key: key, max: max}
}

func xorBytes(b []byte, key byte) {
	for i := range b {
		b[i] ^= key
	}
}

// ReadMessage reads and decodes the next record. A record over the limit is
// skipped and reported as ErrMessageTooLong, and the Conn stays usable (the
// 2-byte length field bounds what is skipped); every other error is sticky.
func (x *xorConn) ReadMessage() ([]byte, error) {
	if x.rerr != nil {
		return nil, x.rerr
	}
	if _, err := io.ReadFull(x.r, x.hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("schemes: connection closed inside an xor record header: %w", err)
		}
		x.rerr = err
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(x.hdr[:]))
	if n > x.max {
		if _, err := io.CopyN(io.Discard, x.r, int64(n)); err != nil {
			x.rerr = fmt.Errorf("schemes: connection closed inside a %d-byte xor record: %w", n, io.ErrUnexpectedEOF)
			return nil, x.rerr
		}
		return nil, fmt.Errorf("schemes: received a %d-byte xor record: %w (limit %d bytes)", n, ErrMessageTooLong, x.max)
	}
	if cap(x.in) < n {
		x.in = make([]byte, max(n, 2*cap(x.in), 2048))
	}
	msg := x.in[:n]
	if _, err := io.ReadFull(x.r, msg); err != nil {
		x.rerr = fmt.Errorf("schemes: connection closed inside a %d-byte xor record: %w", n, io.ErrUnexpectedEOF)
		return nil, x.rerr
	}
	xorBytes(msg, x.key)
	return msg, nil
}

// WriteLines encodes every '\n'-terminated message of b as its own record
// and sends them all in one Write. A message over the limit fails the call
// before anything is sent (ErrMessageTooLong); a write error is sticky.
func (x *xorConn) WriteLines(b []byte) error {
	if x.werr != nil {
		return x.werr
	}
	out := x.out[:0]
	for len(b) > 0 {
		msg := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			msg, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(msg) > x.max {
			return fmt.Errorf("schemes: cannot send a %d-byte message: %w (limit %d bytes)", len(msg), ErrMessageTooLong, x.max)
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(msg)))
		start := len(out)
		out = append(out, msg...)
		xorBytes(out[start:], x.key)
	}
	if cap(out) <= 1<<20 {
		x.out = out
	}
	if len(out) == 0 {
		return nil
	}
	if _, err := x.Conn.Write(out); err != nil {
		x.werr = fmt.Errorf("schemes: failed to send xor records: %w", err)
		return x.werr
	}
	return nil
}

func (x *xorConn) Peer() Peer {
	return Peer{Detail: fmt.Sprintf("xor, key 0x%02x (sent in the clear as 0x%02x)", x.key, XORKeyToWire(x.key))}
}
