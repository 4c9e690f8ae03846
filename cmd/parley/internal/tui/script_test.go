package tui

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/schemes"
)

// clock is the fixed time of every scripted session.
var clock = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// scriptConn is the network under a scripted session's WireConn: Read
// returns what the script queued as the server's bytes, Write discards.
type scriptConn struct {
	net.Conn
	in bytes.Buffer
}

func (c *scriptConn) Read(b []byte) (int, error) {
	if c.in.Len() == 0 {
		return 0, io.EOF
	}
	return c.in.Read(b)
}

func (c *scriptConn) Write(b []byte) (int, error) { return len(b), nil }

// script produces what a session of one scheme puts on the wire, byte
// for byte as the scheme frames it, and the units a WireConn records of
// it. The bytes are real for plain, xor and the aes schemes (IVs from a
// seeded crypto/rand); for tls and mtls they are records of the sizes TLS
// 1.3 with TLS_AES_128_GCM_SHA256 sends, whose encrypted bytes are a fixed
// stand-in, since a real handshake cannot be made repeatable.
type script struct {
	t       *testing.T
	scheme  string
	conn    *scriptConn
	wc      *capture.WireConn
	aesKeys [2]schemes.DirectionKeys // client to server, server to client
	seq     [2]uint64
	filler  uint64
}

func newScript(t *testing.T, scheme string) *script {
	t.Helper()
	cryptotest.SetGlobalRandom(t, 1)
	s := &script{t: t, scheme: scheme, conn: &scriptConn{}}
	s.wc = capture.NewWireConn(s.conn, scheme)
	switch scheme {
	case "xor":
		s.read([]byte{schemes.XORKeyToWire(0x5a)})
	case "aes-cbc", "aes-cbc-hmac":
		id, _ := schemes.SchemeID(scheme)
		var cn, sn [schemes.NonceLen]byte
		copy(cn[:], bytes.Repeat([]byte{0xa0}, 16))
		copy(sn[:], bytes.Repeat([]byte{0xb0}, 16))
		s.aesKeys[0], s.aesKeys[1] = schemes.DeriveSessionKeys(bytes.Repeat([]byte{7}, 32), cn, sn)
		s.write(schemes.AppendHello(nil, schemes.Hello{Version: schemes.HelloVersion, SchemeID: id, Nonce: cn}))
		s.read(schemes.AppendHello(nil, schemes.Hello{Version: schemes.HelloVersion, SchemeID: id, Nonce: sn}))
		s.read(s.encode(1, "parley key confirmation v1"))
		s.write(s.encode(0, "parley key confirmation v1"))
	case "tls", "mtls":
		s.write(mustHex(t, "16030100050100000100")) // a ClientHello, cut short
		// A ServerHello: TLS 1.3 (supported_versions), TLS_AES_128_GCM_SHA256.
		sh := mustHex(t, "0303"+hex.EncodeToString(bytes.Repeat([]byte{0x11}, 32))+"00"+"1301"+"00"+"0006"+"002b00020304")
		hs := append([]byte{2, 0, 0, byte(len(sh))}, sh...)
		s.read(append([]byte{22, 3, 3, 0, byte(len(hs))}, hs...))
	}
	return s
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// encode returns the bytes of one line sent by the client (dir 0) or the
// server (dir 1), as the scheme frames it.
func (s *script) encode(dir int, line string) []byte {
	switch s.scheme {
	case "xor":
		b := binary.BigEndian.AppendUint16(nil, uint16(len(line)))
		for _, c := range []byte(line) {
			b = append(b, c^0x5a)
		}
		return b
	case "aes-cbc", "aes-cbc-hmac":
		b := schemes.SealRecord(nil, s.aesKeys[dir], s.seq[dir], []byte(line), s.scheme == "aes-cbc-hmac")
		s.seq[dir]++
		return b
	case "tls":
		return s.tlsRecord(len(line) + 1)
	case "mtls":
		if dir == 1 {
			// "280 <signature> <line>\n"
			return s.tlsRecord(len("280 ") + 64 + 1 + len(line) + 1)
		}
		return s.tlsRecord(len("DATA\n") + len(line) + len("\n.\n"))
	}
	return []byte(line + "\n")
}

// tlsRecord returns a TLS 1.3 application_data record carrying n bytes of
// plaintext: the content type and the 16-byte tag come on top.
func (s *script) tlsRecord(n int) []byte {
	size := n + 1 + 16
	b := []byte{23, 3, 3, byte(size >> 8), byte(size)}
	for len(b) < 5+size {
		s.filler++
		sum := sha256.Sum256(binary.BigEndian.AppendUint64(nil, s.filler))
		b = append(b, sum[:]...)
	}
	return b[:5+size]
}

// read passes b through the WireConn as bytes from the server.
func (s *script) read(b []byte) {
	s.t.Helper()
	s.conn.in.Write(b)
	if _, err := io.ReadFull(s.wc, make([]byte, len(b))); err != nil {
		s.t.Fatal(err)
	}
}

// write passes b through the WireConn as bytes from the client.
func (s *script) write(b []byte) {
	s.t.Helper()
	if _, err := s.wc.Write(b); err != nil {
		s.t.Fatal(err)
	}
}

// recv returns the lineMsg of a line from the room.
func (s *script) recv(line string) lineMsg {
	s.t.Helper()
	s.read(s.encode(1, line))
	msg := lineMsg{text: line, at: clock}
	msg.wire, msg.hasWire = s.wc.LastRead()
	return msg
}

// sent returns the sentMsg of a line the client wrote.
func (s *script) sent(o outgoing) sentMsg {
	s.t.Helper()
	units, dropped, err := s.wc.CaptureWrites(func() error {
		s.write(s.encode(0, o.line))
		if s.scheme == "mtls" {
			s.write(s.tlsRecord(len("PASS\n")))
		}
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	msg := sentMsg{out: o, at: clock}
	if o.shown() {
		msg.wire, msg.dropped = units, dropped
	}
	return msg
}
