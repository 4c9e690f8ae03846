package capture

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-edu/parley/certs"
	"github.com/parley-edu/parley/schemes"
)

// recordingConn keeps every Write of the server side as it was made, and
// every byte the server read.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	read   []byte
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, append([]byte(nil), b...))
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.read = append(c.read, b[:n]...)
	c.mu.Unlock()
	return n, err
}

func (c *recordingConn) lastWrite() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes[len(c.writes)-1]
}

func (c *recordingConn) readSoFar() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.read...)
}

// wireSchemes returns server and client configurations of every scheme,
// with a lab PKI for tls and mtls.
func wireSchemes(t *testing.T) map[string][2]schemes.Config {
	t.Helper()
	dir := t.TempDir()
	if _, err := certs.Init(dir, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.IssueServer(dir, nil, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.IssueClient(dir, "alice", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	pool, err := certs.CAPool(dir)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := certs.ReadSigningSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	pair := func(name string) []tls.Certificate {
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{c}
	}
	sigkey, err := certs.ReadSigKey(filepath.Join(dir, "alice.sigkey"))
	if err != nil {
		t.Fatal(err)
	}
	psk := bytes.Repeat([]byte{7}, 32)
	tlsServer := schemes.Config{Certificates: pair("server"), RootCAs: pool, SigningSecret: secret}
	tlsClient := schemes.Config{RootCAs: pool, ServerName: "localhost"}
	tls12Server, tls12Client := tlsServer, tlsClient
	tls12Server.TLSVersion, tls12Client.TLSVersion = tls.VersionTLS12, tls.VersionTLS12
	mtlsClient := tlsClient
	mtlsClient.Certificates, mtlsClient.SigKey = pair("alice"), sigkey
	return map[string][2]schemes.Config{
		"plain":        {{}, {}},
		"xor":          {{XORKey: 0x2a, XORKeySet: true}, {}},
		"aes-cbc":      {{PSK: psk}, {PSK: psk}},
		"aes-cbc-hmac": {{PSK: psk}, {PSK: psk}},
		"tls":          {tlsServer, tlsClient},
		"tls 1.2":      {tls12Server, tls12Client},
		"mtls":         {tlsServer, mtlsClient},
	}
}

// connectWire runs the scheme's server and client over loopback TCP, the
// client through a WireConn.
func connectWire(t *testing.T, name string, cfgs [2]schemes.Config) (server schemes.Conn, rec *recordingConn, client schemes.Conn, wc *WireConn) {
	t.Helper()
	scheme, _, _ := strings.Cut(name, " ")
	ss, err := schemes.New(scheme, cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	cs, err := schemes.New(scheme, cfgs[1])
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		conn schemes.Conn
		rec  *recordingConn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		rec := &recordingConn{Conn: c}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		conn, err := ss.Server(rec)
		if err != nil {
			c.Close()
		}
		done <- result{conn, rec, err}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	wc = NewWireConn(nc, scheme)
	client, err = cs.Client(wc)
	r := <-done
	if err != nil || r.err != nil {
		nc.Close()
		if r.conn != nil {
			r.conn.Close()
		}
		t.Fatalf("handshake: client %v, server %v", err, r.err)
	}
	t.Cleanup(func() { client.Close(); r.conn.Close() })
	return r.conn, r.rec, client, wc
}

// checkParts fails unless the parts of u cover its bytes in order, without
// gaps or overlaps.
func checkParts(t *testing.T, u WireUnit) {
	t.Helper()
	off := 0
	for _, p := range u.Parts {
		if p.Off != off || p.Len < 0 {
			t.Fatalf("%s: part %q at %d+%d, want it at %d; parts %+v", u.Kind, p.Name, p.Off, p.Len, off, u.Parts)
		}
		off += p.Len
	}
	if off != u.Size {
		t.Fatalf("%s: parts cover %d bytes, want %d; parts %+v", u.Kind, off, u.Size, u.Parts)
	}
}

func partNames(u WireUnit) string {
	var names []string
	for _, p := range u.Parts {
		names = append(names, p.Name)
	}
	return strings.Join(names, " ")
}

// TestWireConnUnits runs every scheme through a WireConn and checks that the
// unit recorded for each message read is exactly the bytes the server wrote
// for it, and that the units of a message sent are exactly the bytes the
// server read, labelled as the scheme frames them.
func TestWireConnUnits(t *testing.T) {
	long := strings.Repeat("0123456789", 600) // longer than WireHead + WireTail
	sendWant := map[string]struct {
		parts   string
		reveals string
	}{
		"plain":        {"text newline", `the line as it is: "hello"`},
		"xor":          {"length body", `"hello" (key 0x2a, from the key byte)`},
		"aes-cbc":      {"length IV ciphertext", "a message of 0-15 bytes, and when; not its text, and no tag stops her flipping its bits"},
		"aes-cbc-hmac": {"length IV ciphertext tag", "a message of 0-15 bytes, and when; not its text"},
		"tls":          {"header ciphertext tag", "6 bytes of plaintext, so its length, and when; not its text"},
		"tls 1.2":      {"header nonce ciphertext tag", "6 bytes of plaintext, so its length, and when; not its text"},
		// DATA, the line and "." in one record, then PASS in another.
		"mtls": {"header ciphertext tag", "13 bytes of plaintext, so its length, and when; not its text"},
	}
	for name, cfgs := range wireSchemes(t) {
		t.Run(name, func(t *testing.T) {
			server, rec, client, wc := connectWire(t, name, cfgs)
			// All the writes are made before the first read, so that the
			// client's first network read gets several units at once.
			lines := []string{"* parley room lobby", "bob: hi", long}
			var writes [][]byte
			for _, line := range lines {
				if err := server.WriteLines([]byte(line + "\n")); err != nil {
					t.Fatal(err)
				}
				writes = append(writes, rec.lastWrite())
			}
			for i, line := range lines {
				msg, err := client.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				if string(msg) != line {
					t.Fatalf("got message %.40q, want %.40q", msg, line)
				}
				u, ok := wc.LastRead()
				if !ok {
					t.Fatal("no unit read")
				}
				want := writes[i]
				if u.Dir != DirServer || u.Size != len(want) {
					t.Fatalf("got a %d-byte unit from %s, want the server's %d-byte write", u.Size, u.Dir, len(want))
				}
				if !bytes.HasPrefix(want, u.Head) || !bytes.HasSuffix(want, u.Tail) || len(u.Head) != min(len(want), WireHead) || len(u.Tail) != min(len(want)-len(u.Head), WireTail) {
					t.Fatalf("kept head %d and tail %d bytes that are not the write's", len(u.Head), len(u.Tail))
				}
				if len(want) <= WireHead+WireTail && !bytes.Equal(u.Bytes(), want) {
					t.Fatalf("got unit\n%s\nwant the server's write\n%s", hex.Dump(u.Bytes()), hex.Dump(want))
				}
				checkParts(t, u)
			}

			got := make(chan error, 1)
			go func() {
				msg, err := server.ReadMessage()
				if err == nil && string(msg) != "hello" {
					err = &schemes.ProtocolError{Line: string(msg), Want: "hello"}
				}
				got <- err
			}()
			units, dropped, err := wc.CaptureWrites(func() error { return client.WriteLines([]byte("hello\n")) })
			if err != nil {
				t.Fatal(err)
			}
			if err := <-got; err != nil {
				t.Fatal(err)
			}
			var sent []byte
			for _, u := range units {
				checkParts(t, u)
				if u.Dir != DirClient {
					t.Errorf("got a unit from %s, want %s", u.Dir, DirClient)
				}
				sent = append(sent, u.Bytes()...)
			}
			wantUnits := 1
			if name == "mtls" {
				wantUnits = 2
			}
			if len(units) != wantUnits || dropped != 0 {
				t.Fatalf("got %d units (%d dropped), want %d", len(units), dropped, wantUnits)
			}
			if read := rec.readSoFar(); !bytes.HasSuffix(read, sent) {
				t.Fatalf("the units sent\n%s\nare not the last bytes the server read\n%s", hex.Dump(sent), hex.Dump(read))
			}
			w := sendWant[name]
			if got := partNames(units[0]); got != w.parts {
				t.Errorf("got parts %q, want %q", got, w.parts)
			}
			if units[0].Reveals != w.reveals {
				t.Errorf("got reveals %q, want %q", units[0].Reveals, w.reveals)
			}
		})
	}
}

// vectorFile reads a schemes/testdata vector file: "name = value" with hex
// or quoted values, indented lines continuing a value, # comments.
func vectorFile(t *testing.T, name string) map[string][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "schemes", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vals := map[string]string{}
	var key string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, " "):
			vals[key] += strings.TrimSpace(line)
		default:
			k, v, _ := strings.Cut(line, "=")
			key = strings.TrimSpace(k)
			vals[key] = strings.TrimSpace(v)
		}
	}
	out := map[string][]byte{}
	for k, v := range vals {
		if strings.HasPrefix(v, `"`) {
			s, err := strconv.Unquote(v)
			if err != nil {
				t.Fatalf("%s: %s: %v", name, k, err)
			}
			out[k] = []byte(s)
			continue
		}
		b, err := hex.DecodeString(v)
		if err != nil {
			t.Fatalf("%s: %s: %v", name, k, err)
		}
		out[k] = b
	}
	return out
}

// chunkConn is a net.Conn whose Read returns data in the given chunk
// sizes and whose Write discards.
type chunkConn struct {
	net.Conn
	data   []byte
	chunks []int
}

func (c *chunkConn) Read(b []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.chunks) > 0 {
		n = max(1, min(n, c.chunks[0]))
		c.chunks = c.chunks[1:]
	}
	n = copy(b, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func (c *chunkConn) Write(b []byte) (int, error) { return len(b), nil }

// TestWireVectors labels the PROTOCOL.md test vectors.
func TestWireVectors(t *testing.T) {
	t.Run("xor", func(t *testing.T) {
		v := vectorFile(t, "xor.txt")
		wc := NewWireConn(&chunkConn{data: append(v["wire_key"], v["record"]...)}, "xor")
		cs, _ := schemes.New("xor", schemes.Config{})
		c, err := cs.Client(wc)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := wc.LastRead()
		if key.Kind != "key byte" || key.Parts[0].Note != "key = 0x34 - 10 = 0x2a" {
			t.Errorf("got the key byte as %q %+v", key.Kind, key.Parts)
		}
		if _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		u, _ := wc.LastRead()
		if !bytes.Equal(u.Bytes(), v["record"]) {
			t.Errorf("got record %x, want %x", u.Bytes(), v["record"])
		}
		if got, want := u.Parts[0].Note, "25 bytes follow"; got != want {
			t.Errorf("got length note %q, want %q", got, want)
		}
		if got, want := u.Reveals, `"* parley room lobby (xor)" (key 0x2a, from the key byte)`; got != want {
			t.Errorf("got reveals %q, want %q", got, want)
		}
	})
	for _, scheme := range []string{"aes-cbc", "aes-cbc-hmac"} {
		t.Run(scheme, func(t *testing.T) {
			v := vectorFile(t, scheme+".txt")
			wc := NewWireConn(&chunkConn{}, scheme)
			units, _, err := wc.CaptureWrites(func() error {
				for _, k := range []string{"client_hello", "confirm_record", "record"} {
					if _, err := wc.Write(v[k]); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(units) != 3 {
				t.Fatalf("got %d units, want hello, confirmation and record", len(units))
			}
			hello, confirm, rec := units[0], units[1], units[2]
			if hello.Kind != "hello" || partNames(hello) != "magic version scheme id nonce" || hello.Parts[2].Note != scheme {
				t.Errorf("got hello %q %+v", hello.Kind, hello.Parts)
			}
			if confirm.Kind != "key confirmation record" || !bytes.Equal(confirm.Bytes(), v["confirm_record"]) {
				t.Errorf("got %q %x, want the key confirmation record", confirm.Kind, confirm.Bytes())
			}
			if got := rec.PartBytes(rec.Parts[1], 16); !bytes.Equal(got, v["iv"]) {
				t.Errorf("got IV %x, want %x", got, v["iv"])
			}
			if got, want := rec.Reveals, "a message of 0-15 bytes, and when; not its text"; !strings.HasPrefix(got, want) {
				t.Errorf("got reveals %q, want it to start %q", got, want)
			}
			if scheme == "aes-cbc-hmac" {
				tag := rec.Parts[3]
				if got, want := rec.PartBytes(tag, 32), v["record"][len(v["record"])-32:]; !bytes.Equal(got, want) {
					t.Errorf("got tag %x, want %x", got, want)
				}
				if got, want := tag.Note, "HMAC-SHA256 over seq 1, length, IV, ciphertext"; got != want {
					t.Errorf("got tag note %q, want %q", got, want)
				}
			}
		})
	}
}

// TestWireConnLostFraming checks that bytes which stop following the
// framing are passed on unchanged and recorded as chunks.
func TestWireConnLostFraming(t *testing.T) {
	data := []byte("\x17\x03\x03\x00\x02hi" + "GET / HTTP/1.1\r\n")
	wc := NewWireConn(&chunkConn{data: data}, "tls")
	got, err := io.ReadAll(wc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %q, want %q", got, data)
	}
	u, _ := wc.LastRead()
	if u.Kind != "bytes" || string(u.Bytes()) != "GET / HTTP/1.1\r\n" {
		t.Errorf("got last unit %q %q, want the chunk after the record", u.Kind, u.Bytes())
	}
}

// FuzzWireConn feeds arbitrary bytes, in arbitrary chunks, through the
// read and write sides of every scheme's framing: WireConn must pass every
// byte on unchanged, never panic, and keep its units within bounds.
func FuzzWireConn(f *testing.F) {
	f.Add(uint8(1), []byte("\x34\x00\x19\x00\x0a\x5a\x4b\x58"), []byte{1, 2, 3})
	f.Add(uint8(3), []byte("PRLY\x01\x03abcdefghijklmnop\x00\x00\x00\x40"), []byte{22, 4, 1})
	f.Add(uint8(4), []byte("\x16\x03\x01\x00\x04\x02\x00\x00\x00\x17\x03\x03\x00\x01x"), []byte{7})
	f.Add(uint8(0), []byte("a\r\nb\nc"), []byte{2, 2})
	names := []string{"plain", "xor", "aes-cbc", "aes-cbc-hmac", "tls", "mtls", "unknown"}
	f.Fuzz(func(t *testing.T, scheme uint8, data, chunks []byte) {
		name := names[int(scheme)%len(names)]
		sizes := make([]int, len(chunks))
		for i, c := range chunks {
			sizes[i] = int(c)
		}
		wc := NewWireConn(&chunkConn{data: data, chunks: sizes}, name)
		var got []byte
		buf := make([]byte, 7)
		for {
			n, err := wc.Read(buf[:1+len(got)%len(buf)])
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: read %x, want %x", name, got, data)
		}
		if u, ok := wc.LastRead(); ok && (len(u.Head) > WireHead || len(u.Tail) > WireTail || u.Size > len(data)) {
			t.Fatalf("%s: unit of %d bytes keeps %d+%d", name, u.Size, len(u.Head), len(u.Tail))
		}
		units, _, _ := wc.CaptureWrites(func() error {
			for b := data; len(b) > 0; {
				n := 1
				if len(sizes) > 0 {
					n = max(1, min(len(b), sizes[len(b)%len(sizes)]))
				}
				wc.Write(b[:n])
				b = b[n:]
			}
			return nil
		})
		total := 0
		for _, u := range units {
			total += u.Size
			for _, p := range u.Parts {
				u.PartBytes(p, 32)
			}
		}
		if total > len(data) || len(units) > MaxWriteUnits {
			t.Fatalf("%s: %d units of %d bytes from %d bytes written", name, len(units), total, len(data))
		}
	})
}
