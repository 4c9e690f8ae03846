package schemes

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fuzz targets for every parser of untrusted bytes in the record schemes
// and the plain line reader, seeded from the test vectors.

func FuzzParseHello(f *testing.F) {
	for _, file := range []string{"aes-cbc-hmac.txt", "aes-cbc.txt"} {
		v := readVector(f, file)
		f.Add(v.hex(f, "client_hello"))
		f.Add(v.hex(f, "server_hello"))
		f.Add(append(v.hex(f, "client_hello"), v.hex(f, "confirm_record")...))
	}
	f.Add([]byte("alice\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00})
	f.Add(readVector(f, "xor.txt").hex(f, "record"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHello(data)
		isHello := len(data) >= HelloLen && bytes.HasPrefix(data, []byte(HelloMagic))
		if (err == nil) != isHello {
			t.Fatalf("ParseHello(%x): got error %v, want error: %v", data, err, !isHello)
		}
		if err == nil {
			if got := AppendHello(nil, h); !bytes.Equal(got, data[:HelloLen]) {
				t.Fatalf("AppendHello(ParseHello(%x)) = %x", data, got)
			}
		}
		r := bytes.NewReader(data)
		rh, rerr := readHello(r, "aes-cbc-hmac")
		// A hello is read to its last byte and no further; bytes that are
		// not a hello are read only as far as needed to name them.
		consumed := len(data) - r.Len()
		if isHello && consumed != HelloLen || consumed > max(HelloLen, diagnoseLen) {
			t.Fatalf("readHello consumed %d of %d bytes", consumed, len(data))
		}
		if isHello && (rerr != nil || rh != h) {
			t.Fatalf("readHello(%x): got %+v, %v, want %+v", data, rh, rerr, h)
		}
		GuessScheme(data)
	})
}

// nopConn is a net.Conn whose Close and Write do nothing.
type nopConn struct{ net.Conn }

func (nopConn) Close() error                { return nil }
func (nopConn) Write(b []byte) (int, error) { return len(b), nil }

func FuzzOpenRecord(f *testing.F) {
	for _, file := range []string{"aes-cbc-hmac.txt", "aes-cbc.txt"} {
		v := readVector(f, file)
		mac := file == "aes-cbc-hmac.txt"
		for _, r := range []struct {
			name string
			seq  uint64
		}{{"confirm_record", 0}, {"record", 1}} {
			rec := v.hex(f, r.name)
			f.Add(rec[RecordHeaderLen:], r.seq, mac)
			f.Add(flip(rec, RecordHeaderLen)[RecordHeaderLen:], r.seq, mac)
			f.Add(rec, r.seq, mac) // a stream: length field included
		}
	}
	v := readVector(f, "aes-cbc-hmac.txt")
	c2s := DirectionKeys{Enc: v.hex(f, "c2s_enc"), MAC: v.hex(f, "c2s_mac")}
	f.Fuzz(func(t *testing.T, body []byte, seq uint64, mac bool) {
		in := bytes.Clone(body)
		msg, err := OpenRecord(c2s, seq, body, mac)
		if !bytes.Equal(in, body) {
			t.Fatal("OpenRecord modified its input")
		}
		switch {
		case err == nil:
			// Only an authentic record opens; sealing its message again
			// under its IV must give it back byte for byte.
			if len(body) < RecordIVLen {
				t.Fatalf("opened a %d-byte record", len(body))
			}
			again := sealRecordIV(nil, c2s, seq, msg, mac, body[:RecordIVLen])
			if !bytes.Equal(again[RecordHeaderLen:], body) {
				t.Fatalf("reseal of %q: got %x, want %x", msg, again[RecordHeaderLen:], body)
			}
		case mac && err != ErrBadRecordMAC:
			t.Fatalf("aes-cbc-hmac: got %v, want exactly ErrBadRecordMAC", err)
		case !mac && err != ErrBadRecord && err != ErrBadPadding:
			t.Fatalf("aes-cbc: got %v, want ErrBadRecord or ErrBadPadding", err)
		}

		// The same bytes as a stream into a Conn's reader: no panic, no
		// message over the limit, and every failure sticky.
		o, _ := newOpener(c2s, mac)
		rc := &recordConn{Conn: nopConn{}, mac: mac, max: 64, scheme: "fuzz",
			in: inHalf{opener: *o, r: bytes.NewReader(body), maxBody: maxRecordBody(64, mac)}}
		rc.in.seq = seq
		for {
			m, err := rc.ReadMessage()
			if err != nil {
				if errors.Is(err, ErrMessageTooLong) {
					continue
				}
				if _, again := rc.ReadMessage(); again != err {
					t.Fatalf("got %v then %v, want a sticky error", err, again)
				}
				break
			}
			if len(m) > 64 {
				t.Fatalf("got a %d-byte message over the limit of 64", len(m))
			}
		}
	})
}

func FuzzXORRecords(f *testing.F) {
	v := readVector(f, "xor.txt")
	f.Add(v.hex(f, "record"), v.hex(f, "key")[0], []byte(v.str(f, "message")+"\nsecond\n"))
	f.Add([]byte{0xff, 0xff, 1, 2, 3}, byte(0), []byte("\n\n"))
	f.Fuzz(func(t *testing.T, stream []byte, key byte, lines []byte) {
		// Arbitrary bytes: no panic, nothing over the limit, sticky errors.
		x := &xorConn{r: bytes.NewReader(stream), key: key, max: 32}
		for {
			m, err := x.ReadMessage()
			if err != nil {
				if errors.Is(err, ErrMessageTooLong) {
					continue
				}
				if _, again := x.ReadMessage(); again != err {
					t.Fatalf("got %v then %v, want a sticky error", err, again)
				}
				break
			}
			if len(m) > 32 {
				t.Fatalf("got a %d-byte message over the limit of 32", len(m))
			}
		}

		// Messages written are the messages read.
		if !bytes.HasSuffix(lines, []byte("\n")) {
			lines = append(lines, '\n')
		}
		var buf bytes.Buffer
		w := &xorConn{Conn: writerConn{w: &buf}, key: key, max: XORMaxMessage}
		if err := w.WriteLines(lines); err != nil {
			if errors.Is(err, ErrMessageTooLong) {
				return
			}
			t.Fatal(err)
		}
		r := &xorConn{r: &buf, key: key, max: XORMaxMessage}
		for i, want := range strings.Split(string(lines[:len(lines)-1]), "\n") {
			got, err := r.ReadMessage()
			if err != nil || string(got) != want {
				t.Fatalf("message %d: got %q, %v, want %q", i, got, err, want)
			}
		}
		if _, err := r.ReadMessage(); err != io.EOF {
			t.Fatalf("after the last message: got %v, want io.EOF", err)
		}
	})
}

func FuzzParsePSK(f *testing.F) {
	v := readVector(f, "psk.txt")
	f.Add([]byte(v.str(f, "psk_file")))
	f.Add(v.hex(f, "psk"))
	f.Add([]byte(""))
	f.Add([]byte("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"))
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := ParsePSK(data)
		if err != nil {
			if !errors.Is(err, ErrBadPSK) {
				t.Fatalf("got %v, want it to wrap ErrBadPSK", err)
			}
			return
		}
		if len(key) != PSKLen {
			t.Fatalf("got a %d-byte key", len(key))
		}
		again, err := ParsePSK([]byte(base64.StdEncoding.EncodeToString(key)))
		if err != nil || !bytes.Equal(again, key) {
			t.Fatalf("round trip: got %x, %v, want %x", again, err, key)
		}
	})
}

// chunkReader returns at most n bytes per Read, to exercise buffer edges.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}

// FuzzLineReader checks the plain line reader against a model: split on
// LF, strip one CR, report lines over the limit as ErrMessageTooLong,
// drop a final line without LF.
func FuzzLineReader(f *testing.F) {
	v := readVector(f, "xor.txt")
	f.Add([]byte(v.str(f, "message")+"\r\nalice\n"), uint16(16), uint8(3))
	f.Add([]byte("short\n"+strings.Repeat("x", 40)+"\nnext\npartial"), uint16(10), uint8(7))
	f.Add([]byte("\n\r\n\r\r\n"), uint16(1), uint8(1))
	if data, err := os.ReadFile(filepath.Join("testdata", "psk.txt")); err == nil {
		f.Add(data, uint16(40), uint8(255))
	}
	f.Fuzz(func(t *testing.T, data []byte, maxSeed uint16, chunk uint8) {
		limit := int(maxSeed)%300 + 1
		lr := newLineReader(&chunkReader{b: data, n: int(chunk)%64 + 1}, limit)
		parts := bytes.Split(data, []byte("\n"))
		for i, want := range parts[:len(parts)-1] {
			want = bytes.TrimSuffix(want, []byte("\r"))
			got, err := lr.readLine()
			if len(want) > limit {
				if !errors.Is(err, ErrMessageTooLong) {
					t.Fatalf("line %d (%d bytes, limit %d): got %q, %v, want ErrMessageTooLong", i, len(want), limit, got, err)
				}
				continue
			}
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("line %d: got %q, %v, want %q", i, got, err, want)
			}
		}
		_, err := lr.readLine()
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("at the end: got %v, want EOF", err)
		}
		if cap(lr.buf) > max(initialLineBuffer, limit+2) {
			t.Fatalf("buffer grew to %d bytes for a limit of %d", cap(lr.buf), limit)
		}
	})
}
