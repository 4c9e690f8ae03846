package schemes

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-edu/parley/certs"
	"go.uber.org/goleak"
)

// mtlsPair runs an mtls handshake between the room server and a client
// with certificate name, and fails the test if it does not succeed.
func mtlsPair(t *testing.T, p *testPKI, scfg, ccfg Config) (server, client Conn) {
	t.Helper()
	s, c := handshake(t, newScheme(t, "mtls", scfg).Server, newScheme(t, "mtls", ccfg).Client)
	if s.err != nil || c.err != nil {
		t.Fatalf("handshake: server: %v, client: %v", s.err, c.err)
	}
	return s.conn, c.conn
}

func TestMTLSRoundTrip(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := newTestPKI(t)
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			scfg, ccfg := p.serverConfig(t, "server"), p.clientConfig(t, "alice")
			ccfg.TLSVersion = version
			server, client := mtlsPair(t, p, scfg, ccfg)
			if got := server.Peer().Identity; got != "alice" {
				t.Errorf("server Peer().Identity: got %q, want alice", got)
			}
			if got := client.Peer().Detail; !strings.Contains(got, "signed in as alice") || !strings.HasPrefix(got, tls.VersionName(version)) {
				t.Errorf("client Peer().Detail: got %q, want %s and \"signed in as alice\"", got, tls.VersionName(version))
			}

			// The client reads while it writes, as the join client does:
			// deliveries and replies share the stream.
			sent := []string{"lobby", "hello, room", "", ".", ".hidden dot", "..two", "DATA", "QUIT"}
			var got []string
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range sent {
					m, err := readLine(t, server)
					if err != nil {
						t.Errorf("server read: %v", err)
						return
					}
					got = append(got, m)
					if err := server.WriteLines([]byte("echo: " + m + "\n* notice\n")); err != nil {
						t.Errorf("server write: %v", err)
						return
					}
				}
			}()
			var echoes []string
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 2 * len(sent) {
					m, err := readLine(t, client)
					if err != nil {
						t.Errorf("client read: %v", err)
						return
					}
					echoes = append(echoes, m)
				}
			}()
			for _, m := range sent {
				if err := client.WriteLines([]byte(m + "\n")); err != nil {
					t.Fatalf("client WriteLines(%q): %v", m, err)
				}
			}
			wg.Wait()
			if strings.Join(got, "|") != strings.Join(sent, "|") {
				t.Errorf("server got %q, want %q", got, sent)
			}
			var want []string
			for _, m := range sent {
				want = append(want, "echo: "+m, "* notice")
			}
			if strings.Join(echoes, "|") != strings.Join(want, "|") {
				t.Errorf("client got %q, want %q", echoes, want)
			}
			client.Close() // sends QUIT
			if _, err := readLine(t, server); err != io.EOF {
				t.Errorf("server read after the client quit: got %v, want io.EOF", err)
			}
		})
	}
}

// TestMTLSClientCertificateErrors checks that the server refuses each bad
// client certificate with its own reason and that the client is told.
func TestMTLSClientCertificateErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := newTestPKI(t)
	for _, tc := range []struct {
		cert           string
		server, client CertReason
		words          string
	}{
		{"", ReasonNoClientCert, ReasonNoClientCert, "sent no certificate"},
		{"no-client-auth", ReasonNoClientAuth, ReasonNoClientAuth, "lacks the client-authentication usage"},
		{"expired", ReasonExpired, ReasonExpired, "expired on 20"},
		{"self-signed", ReasonSelfSigned, ReasonSelfSigned, "self-signed"},
		{"rogue", ReasonUnknownAuthority, ReasonUnknownAuthority, "unknown authority"},
	} {
		for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			t.Run(fmt.Sprintf("%s/%s", tc.cert, tls.VersionName(version)), func(t *testing.T) {
				ccfg := p.clientConfig(t, tc.cert)
				ccfg.SigKey = p.sigkey(t, "alice")
				ccfg.TLSVersion = version
				server, client := handshake(t, newScheme(t, "mtls", p.serverConfig(t, "server")).Server, newScheme(t, "mtls", ccfg).Client)
				var se, ce *CertificateError
				if !errors.As(server.err, &se) {
					t.Fatalf("server: got %v, want a *CertificateError", server.err)
				}
				if se.Reason != tc.server || se.Remote || se.Of != "client" {
					t.Errorf("server: got reason %v remote %v of %q, want %v, false, client", se.Reason, se.Remote, se.Of, tc.server)
				}
				if !strings.Contains(se.Error(), tc.words) {
					t.Errorf("server error %q: want it to contain %q", se.Error(), tc.words)
				}
				if !errors.As(client.err, &ce) {
					t.Fatalf("client: got %v, want a *CertificateError", client.err)
				}
				if ce.Reason != tc.client || !ce.Remote {
					t.Errorf("client: got reason %v remote %v, want %v, true (%v)", ce.Reason, ce.Remote, tc.client, ce)
				}
			})
		}
	}
}

// TestMTLSFail checks that a client whose signing key does not match the
// room's answers FAIL, is told the message was not delivered, and that the
// server never hands the message on.
func TestMTLSFail(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := newTestPKI(t)
	ccfg := p.clientConfig(t, "alice")
	ccfg.SigKey = p.sigkey(t, "bob") // the wrong key
	server, client := mtlsPair(t, p, p.serverConfig(t, "server"), ccfg)

	read := make(chan string, 4)
	go func() {
		defer close(read)
		for {
			m, err := server.ReadMessage()
			if err != nil {
				read <- "error: " + err.Error()
				return
			}
			read <- "message: " + string(m)
		}
	}()
	for _, m := range []string{"first secret", "second secret"} {
		err := client.WriteLines([]byte(m + "\n"))
		var se *SignatureError
		if !errors.As(err, &se) || !se.Outgoing || se.Line != m || !errors.Is(err, ErrBadSignature) {
			t.Fatalf("WriteLines(%q): got %v, want an outgoing *SignatureError for it", m, err)
		}
	}
	client.Close()
	if got := <-read; got != "error: EOF" {
		t.Errorf("server: got %q, want only EOF: a FAILed message must not be delivered", got)
	}
}

// rawMTLSServer completes the mtls handshake as the server and returns the
// TLS connection, so that a test can write arbitrary lines to a client.
func rawMTLSServer(t *testing.T, p *testPKI, ccfg Config) (*mtlsServerConn, Conn) {
	t.Helper()
	var sc *mtlsServerConn
	s := newScheme(t, "mtls", p.serverConfig(t, "server"))
	server, client := handshake(t, func(c net.Conn) (Conn, error) {
		conn, err := s.Server(c)
		if err == nil {
			sc = conn.(*mtlsServerConn)
		}
		return conn, err
	}, newScheme(t, "mtls", ccfg).Client)
	if server.err != nil || client.err != nil {
		t.Fatalf("handshake: server: %v, client: %v", server.err, client.err)
	}
	return sc, client.conn
}

// TestMTLSBadDelivery checks that a 280 line whose signature does not check
// (forged, replayed, or signed for another user) is flagged without
// closing the Conn, and that the lines around it still arrive.
func TestMTLSBadDelivery(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := newTestPKI(t)
	sc, client := rawMTLSServer(t, p, p.clientConfig(t, "alice"))
	raw := func(seq uint64, key []byte, line string) string {
		return fmt.Sprintf("280 %x %s\n", SignDelivery(key, seq, []byte(line)), line)
	}
	alice, bob := UserKey(p.secret, "alice"), UserKey(p.secret, "bob")
	altered := strings.Replace(raw(4, alice, "bob: hi"), "bob: hi", "bob: hI", 1)
	wire := raw(0, alice, "* welcome") +
		raw(1, alice, "bob: hi") +
		raw(1, alice, "bob: hi") + // replayed: seq 2 expected
		raw(3, bob, "mallory: for bob") + // signed with another user's key
		altered + // right seq and key, altered line
		raw(5, alice, "* bye")
	if _, err := io.WriteString(sc.conn, wire); err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		line string
		bad  bool
	}{
		{"* welcome", false}, {"bob: hi", false}, {"bob: hi", true}, {"mallory: for bob", true}, {"bob: hI", true}, {"* bye", false},
	} {
		got, err := readLine(t, client)
		var se *SignatureError
		switch {
		case want.bad && (!errors.As(err, &se) || se.Line != want.line || se.Outgoing || !errors.Is(err, ErrBadSignature)):
			t.Errorf("line %d: got %q, %v, want a *SignatureError for %q", i, got, err, want.line)
		case !want.bad && (err != nil || got != want.line):
			t.Errorf("line %d: got %q, %v, want %q", i, got, err, want.line)
		}
	}
}

// TestMTLSServerReplies drives the server by hand, line by line, and checks
// each reply and that only PASSed messages come out of ReadMessage.
func TestMTLSServerReplies(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := newTestPKI(t)
	key := UserKey(p.secret, "alice")
	sig := func(seq uint64, m string) string {
		return "270 SIG " + hex.EncodeToString(SignMessage(key, seq, []byte(m)))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			got = append(got, "accept: "+err.Error())
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		cfg := p.serverConfig(t, "server")
		cfg.MaxMessage = 16
		conn, err := newScheme(t, "mtls", cfg).Server(c)
		if err != nil {
			got = append(got, "handshake: "+err.Error())
			return
		}
		for {
			m, err := conn.ReadMessage()
			switch {
			case errors.Is(err, ErrMessageTooLong):
				got = append(got, "<too long>")
			case err != nil:
				got = append(got, "<"+err.Error()+">")
				return
			default:
				got = append(got, string(m))
			}
		}
	}()
	raw, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: p.pool, ServerName: "localhost", Certificates: []tls.Certificate{p.pair(t, "alice")}})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(raw)
	for i, step := range []struct{ send, want string }{
		{"NOOP\n", "503 send HELLO first"},
		{"hello\r\n", "260 OK alice"},
		{"PASS\n", "503 no message is waiting for PASS or FAIL"},
		{"DATA\nhi\n.\n", sig(0, "hi")},
		{"PASS\n", "260 OK"},
		{"DATA\n" + strings.Repeat("x", 17) + "\n.\n", "552 message too long (limit 16 bytes); not delivered"},
		{"DATA\n..x\n\n.\n", sig(1, ".x\n")},
		{"FAIL\n", "550 message not delivered: the signature did not check"},
		{"DATA\nline\n.\n", sig(2, "line")},
		{"NOPE\n", "503 expected PASS or FAIL; message not delivered"},
		{"DATA\r\na\r\nb\r\n.\r\n", sig(3, "a\nb")},
		{"pass\n", "260 OK"},
		{"FOO\n", "500 unknown command"},
		{"QUIT\n", "221 BYE"},
	} {
		if _, err := io.WriteString(raw, step.send); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadString('\n')
		if err != nil || line != step.want+"\n" {
			t.Fatalf("step %d: sent %q: got %q, %v, want %q", i, step.send, line, err, step.want)
		}
	}
	<-done
	if want := []string{"hi", "<too long>", "a", "b", "<EOF>"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("server messages: got %q, want %q", got, want)
	}
}

// mtlsVector is one line of testdata/mtls_vectors.txt.
type mtlsVector struct {
	kind string
	hex  map[string][]byte
	name string
	seq  uint64
}

func readMTLSVectors(t testing.TB) []mtlsVector {
	t.Helper()
	data, err := os.ReadFile("testdata/mtls_vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	var vs []mtlsVector
	for i, line := range strings.Split(string(data), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		v := mtlsVector{kind: f[0], hex: map[string][]byte{}}
		for _, kv := range f[1:] {
			k, val, _ := strings.Cut(kv, "=")
			switch k {
			case "name":
				v.name = val
			case "seq":
				v.seq, err = strconv.ParseUint(val, 10, 64)
			default:
				v.hex[k], err = hex.DecodeString(val)
			}
			if err != nil {
				t.Fatalf("mtls_vectors.txt line %d: %s: %v", i+1, k, err)
			}
		}
		vs = append(vs, v)
	}
	return vs
}

// TestMTLSVectors checks the vectors against the HMAC functions, the
// client's DATA writer, the server's receipt writer and 280 writer, and the
// client's 280 parser.
func TestMTLSVectors(t *testing.T) {
	vs := readMTLSVectors(t)
	if len(vs) < 8 {
		t.Fatalf("got %d vectors, want at least 8", len(vs))
	}
	for i, v := range vs {
		t.Run(fmt.Sprintf("%d-%s", i, v.kind), func(t *testing.T) {
			key := v.hex["key"]
			switch v.kind {
			case "userkey":
				if want := append([]byte(UserKeyContext), v.name...); !bytes.Equal(v.hex["input"], want) {
					t.Errorf("input: got %x, want %x", v.hex["input"], want)
				}
				if got := UserKey(v.hex["secret"], v.name); !bytes.Equal(got, key) {
					t.Errorf("UserKey: got %x, want %x", got, key)
				}
				if got := certs.UserKey(v.hex["secret"], v.name); !bytes.Equal(got, key) {
					t.Errorf("certs.UserKey: got %x, want %x", got, key)
				}
			case "sig":
				msg := v.hex["message"]
				if got := SignMessage(key, v.seq, msg); !bytes.Equal(got, v.hex["mac"]) {
					t.Errorf("SignMessage: got %x, want %x", got, v.hex["mac"])
				}
				checkInput(t, SigContext, v.seq, msg, v.hex["input"])
				// The client writes the DATA block; the server un-stuffs
				// it, signs it and answers with the reply line.
				var wire bytes.Buffer
				sc := newMTLSServerConn(&scriptConn{in: bytes.NewReader(append(append([]byte{}, v.hex["data"]...), "PASS\n"...)), out: &wire}, key, "alice", DefaultMaxMessage)
				sc.recvSeq = v.seq
				m, err := sc.ReadMessage()
				if err != nil || !bytes.Equal(m, msg) {
					t.Errorf("server ReadMessage: got %q, %v, want %q", m, err, msg)
				}
				if want := string(v.hex["reply"]) + "260 OK\n"; wire.String() != want {
					t.Errorf("server wrote %q, want %q", wire.String(), want)
				}
				cc := newMTLSClientConn(&scriptConn{in: bytes.NewReader(append(append([]byte{}, v.hex["reply"]...), "260 OK\n"...)), out: &wire}, key, DefaultMaxMessage)
				cc.sendSeq = v.seq
				wire.Reset()
				if err := cc.WriteLines(append(append([]byte{}, msg...), '\n')); err != nil {
					t.Errorf("client WriteLines: %v", err)
				}
				if want := string(v.hex["data"]) + "PASS\n"; wire.String() != want {
					t.Errorf("client wrote %q, want %q", wire.String(), want)
				}
			case "deliver":
				line := v.hex["line"]
				if got := SignDelivery(key, v.seq, line); !bytes.Equal(got, v.hex["mac"]) {
					t.Errorf("SignDelivery: got %x, want %x", got, v.hex["mac"])
				}
				checkInput(t, DeliverContext, v.seq, line, v.hex["input"])
				var wire bytes.Buffer
				sc := newMTLSServerConn(&scriptConn{in: strings.NewReader(""), out: &wire}, key, "alice", DefaultMaxMessage)
				sc.sendSeq = v.seq
				if err := sc.WriteLines(append(append([]byte{}, line...), '\n')); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(wire.Bytes(), v.hex["wire"]) {
					t.Errorf("server wrote %q, want %q", wire.Bytes(), v.hex["wire"])
				}
				cc := newMTLSClientConn(&scriptConn{in: bytes.NewReader(v.hex["wire"]), out: io.Discard}, key, DefaultMaxMessage)
				cc.recvSeq = v.seq
				if got, err := cc.ReadMessage(); err != nil || !bytes.Equal(got, line) {
					t.Errorf("client ReadMessage: got %q, %v, want %q", got, err, line)
				}
			default:
				t.Fatalf("unknown mtlsVector kind %q", v.kind)
			}
		})
	}
}

func checkInput(t *testing.T, context string, seq uint64, msg, input []byte) {
	t.Helper()
	want := append([]byte(context), 0, 0, 0, 0, 0, 0, 0, 0)
	for i := range 8 {
		want[len(context)+i] = byte(seq >> (56 - 8*i))
	}
	want = append(want, msg...)
	if !bytes.Equal(input, want) {
		t.Errorf("HMAC input: got %x, want %x", input, want)
	}
}

// scriptConn is a net.Conn that reads a script and records what is
// written: enough to run one side of the signature protocol without TLS.
type scriptConn struct {
	in  io.Reader
	out io.Writer
}

func (c *scriptConn) Read(b []byte) (int, error)       { return c.in.Read(b) }
func (c *scriptConn) Write(b []byte) (int, error)      { return c.out.Write(b) }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// TestMTLSVectorsInProtocol checks that PROTOCOL.md shows every key and
// signature of testdata/mtls_vectors.txt.
func TestMTLSVectorsInProtocol(t *testing.T) {
	doc, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(string(doc)), "")
	for _, v := range readMTLSVectors(t) {
		for _, k := range []string{"key", "mac"} {
			if b, ok := v.hex[k]; ok && !strings.Contains(flat, hex.EncodeToString(b)) {
				t.Errorf("PROTOCOL.md does not show the %s vector's %s %x", v.kind, k, b)
			}
		}
	}
}
