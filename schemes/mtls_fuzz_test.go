package schemes

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// seedMTLS adds the wire bytes of every vector, and a few hand-written
// scripts, to f.
func seedMTLS(f *testing.F, field string) {
	for _, v := range readMTLSVectors(f) {
		if b, ok := v.hex[field]; ok {
			f.Add(b)
		}
	}
}

// FuzzMTLSServerLines feeds arbitrary client bytes to the server side of
// the signature protocol: it must not panic, must answer every command
// line, and may only deliver what a PASS settled.
func FuzzMTLSServerLines(f *testing.F) {
	seedMTLS(f, "data")
	f.Add([]byte("HELLO\nDATA\nhi\n.\nPASS\nDATA\n..x\n.\nFAIL\nQUIT\n"))
	f.Add([]byte("DATA\r\na\r\nb\r\n.\r\nPASS\r\n"))
	f.Add([]byte("PASS\nFAIL\nDATA\n.\nNOPE\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		key := bytes.Repeat([]byte{7}, 32)
		var out bytes.Buffer
		sc := newMTLSServerConn(&scriptConn{in: bytes.NewReader(in), out: &out}, key, "alice", 64)
		delivered := 0
		for range 1000 {
			m, err := sc.ReadMessage()
			if errors.Is(err, ErrMessageTooLong) {
				continue
			}
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if len(m) > 64 || bytes.IndexByte(m, '\n') >= 0 {
				t.Fatalf("delivered %q: over the limit or with a newline", m)
			}
			delivered++
		}
		if delivered > 0 && !bytes.Contains(out.Bytes(), []byte("260 OK\n")) {
			t.Fatalf("delivered %d messages without a 260 OK for a PASS", delivered)
		}
		for _, line := range bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			if _, _, ok := parseReply(line); !ok {
				t.Fatalf("server wrote %q, which is not a reply", line)
			}
		}
	})
}

// FuzzMTLSClientLines feeds arbitrary server bytes to the client side:
// ReadMessage and WriteLines must not panic, and a delivery is returned
// without error only if its signature checks.
func FuzzMTLSClientLines(f *testing.F) {
	seedMTLS(f, "wire")
	seedMTLS(f, "reply")
	f.Add([]byte("260 OK alice\n270 SIG 00\n221 BYE\n"))
	f.Add([]byte("280 zz x\n280 \n550 no\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		key := bytes.Repeat([]byte{7}, 32)
		cc := newMTLSClientConn(&scriptConn{in: bytes.NewReader(in), out: io.Discard}, key, 64)
		cc.hello()
		cc.WriteLines([]byte("hello\n"))
		for range 1000 {
			seq := cc.recvSeq
			m, err := cc.ReadMessage()
			if err == nil {
				// Only the token holder advances recvSeq, and this
				// goroutine is the only reader: the line just read was
				// signed with seq, unless WriteLines had queued it.
				if len(cc.queue) == 0 && cc.recvSeq == seq+1 {
					want := SignDelivery(key, seq, m)
					if !bytes.Contains(in, []byte(hexString(want))) && !bytes.Contains(bytes.ToLower(in), []byte(hexString(want))) {
						t.Fatalf("accepted %q without its signature in the input", m)
					}
				}
				continue
			}
			var se *SignatureError
			if errors.As(err, &se) || errors.Is(err, ErrMessageTooLong) {
				continue
			}
			break
		}
	})
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 2*len(b))
	for i, c := range b {
		s[2*i], s[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(s)
}
