package schemes

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-edu/parley/certs"
	"go.uber.org/goleak"
)

// testPKI is a lab CA in a temporary folder with a server certificate,
// client certificates for alice and bob, and one certificate of each bad
// kind, named after the kind ("rogue" for rogue-ca).
type testPKI struct {
	dir    string
	pool   *x509.CertPool
	secret []byte
}

func badName(k certs.BadKind) string {
	if k == certs.BadRogueCA {
		return "rogue"
	}
	return string(k)
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	if _, err := certs.Init(dir, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.IssueServer(dir, nil, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"alice", "bob"} {
		if _, err := certs.IssueClient(dir, n, certs.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range certs.BadKinds {
		if _, err := certs.Bad(dir, k, badName(k), nil, certs.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	pool, err := certs.CAPool(dir)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := certs.ReadSigningSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{dir: dir, pool: pool, secret: secret}
}

func (p *testPKI) pair(t testing.TB, name string) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (p *testPKI) sigkey(t testing.TB, name string) []byte {
	t.Helper()
	k, err := certs.ReadSigKey(filepath.Join(p.dir, name+".sigkey"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (p *testPKI) path(name string) string { return filepath.Join(p.dir, name) }

// serverConfig is a tls/mtls server configuration with the certificate
// name (usually "server").
func (p *testPKI) serverConfig(t testing.TB, name string) Config {
	return Config{Certificates: []tls.Certificate{p.pair(t, name)}, RootCAs: p.pool, SigningSecret: p.secret}
}

// clientConfig is a client configuration for localhost, with the client
// certificate and signing key of name when name is not empty.
func (p *testPKI) clientConfig(t testing.TB, name string) Config {
	cfg := Config{RootCAs: p.pool, ServerName: "localhost"}
	if name != "" {
		cfg.Certificates = []tls.Certificate{p.pair(t, name)}
		cfg.SigKey = p.sigkey(t, "alice")
		if _, err := os.Stat(p.path(name + ".sigkey")); err == nil {
			cfg.SigKey = p.sigkey(t, name)
		}
	}
	return cfg
}

type side struct {
	conn Conn
	err  error
}

// handshake runs serverFn and clientFn against each other over loopback
// TCP, each bounded by a deadline, and closes everything at the end of the
// test.
func handshake(t testing.TB, serverFn, clientFn func(net.Conn) (Conn, error)) (server, client side) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			server.err = err
			return
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		server.conn, server.err = serverFn(c)
		if server.err != nil {
			c.Close()
			return
		}
		c.SetDeadline(time.Time{})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	client.conn, client.err = clientFn(c)
	if client.err != nil {
		c.Close()
	} else {
		c.SetDeadline(time.Time{})
	}
	wg.Wait()
	t.Cleanup(func() {
		if server.conn != nil {
			server.conn.Close()
		}
		if client.conn != nil {
			client.conn.Close()
		}
	})
	return server, client
}

func newScheme(t testing.TB, name string, cfg Config) Scheme {
	t.Helper()
	s, err := New(name, cfg)
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	return s
}

func readLine(t testing.TB, c Conn) (string, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	m, err := c.ReadMessage()
	return string(m), err
}

func TestTLSRoundTrip(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := newTestPKI(t)
	for _, tc := range []struct {
		name    string
		version uint16
		detail  string
	}{
		{"default is 1.3", 0, "TLS 1.3, TLS_"},
		{"1.2 on request", tls.VersionTLS12, "TLS 1.2, TLS_ECDHE_ECDSA_"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var keylog bytes.Buffer
			scfg := p.serverConfig(t, "server")
			scfg.TLSVersion = tc.version
			ccfg := p.clientConfig(t, "")
			ccfg.TLSVersion = tc.version
			ccfg.KeyLog = &keylog
			server, client := handshake(t, newScheme(t, "tls", scfg).Server, newScheme(t, "tls", ccfg).Client)
			if server.err != nil || client.err != nil {
				t.Fatalf("handshake: server: %v, client: %v", server.err, client.err)
			}
			for _, c := range []Conn{server.conn, client.conn} {
				if d := c.Peer().Detail; !strings.HasPrefix(d, tc.detail) {
					t.Errorf("Peer().Detail: got %q, want prefix %q", d, tc.detail)
				}
			}
			if got := client.conn.Peer().Identity; got != "localhost" {
				t.Errorf("client Peer().Identity: got %q, want localhost", got)
			}
			if got := server.conn.Peer().Identity; got != "" {
				t.Errorf("server Peer().Identity: got %q, want empty (tls does not authenticate clients)", got)
			}
			if err := server.conn.WriteLines([]byte("* welcome\nbob: hi\n")); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"* welcome", "bob: hi"} {
				if got, err := readLine(t, client.conn); err != nil || got != want {
					t.Errorf("client read: got %q, %v, want %q", got, err, want)
				}
			}
			if err := client.conn.WriteLines([]byte("alice\n")); err != nil {
				t.Fatal(err)
			}
			if got, err := readLine(t, server.conn); err != nil || got != "alice" {
				t.Errorf("server read: got %q, %v, want alice", got, err)
			}
			label := "CLIENT_HANDSHAKE_TRAFFIC_SECRET "
			if tc.version == tls.VersionTLS12 {
				label = "CLIENT_RANDOM "
			}
			if !strings.Contains(keylog.String(), label) {
				t.Errorf("key log: got %q, want a %q line", keylog.String(), label)
			}
			client.conn.Close()
			server.conn.Close()
		})
	}
}

func TestTLSConfigErrors(t *testing.T) {
	p := newTestPKI(t)
	if _, err := New("tls", Config{TLSVersion: tls.VersionTLS11}); err == nil {
		t.Error("New with TLS 1.1: got nil error, want an error")
	}
	for _, tc := range []struct {
		name   string
		scheme string
		cfg    Config
		server bool
	}{
		{"server without certificate", "tls", Config{}, true},
		{"mtls server without CA", "mtls", Config{Certificates: []tls.Certificate{p.pair(t, "server")}, SigningSecret: p.secret}, true},
		{"mtls server without signing secret", "mtls", Config{Certificates: []tls.Certificate{p.pair(t, "server")}, RootCAs: p.pool}, true},
		{"client without server name", "tls", Config{RootCAs: p.pool}, false},
		{"client without CA", "tls", Config{ServerName: "localhost"}, false},
		{"mtls client without signing key", "mtls", Config{RootCAs: p.pool, ServerName: "localhost"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			s := newScheme(t, tc.scheme, tc.cfg)
			var err error
			if tc.server {
				_, err = s.Server(a)
			} else {
				_, err = s.Client(a)
			}
			if err == nil {
				t.Error("got nil error, want one naming the missing field")
			} else if !strings.Contains(err.Error(), "Config.") {
				t.Errorf("got %q, want it to name the Config field", err)
			}
		})
	}
}

func TestTLSInsecureSkipVerify(t *testing.T) {
	p := newTestPKI(t)
	cfg := Config{InsecureSkipVerify: true}
	server, client := handshake(t, newScheme(t, "tls", p.serverConfig(t, "self-signed")).Server, newScheme(t, "tls", cfg).Client)
	if server.err != nil || client.err != nil {
		t.Fatalf("handshake: server: %v, client: %v", server.err, client.err)
	}
	if id := client.conn.Peer().Identity; id != "" {
		t.Errorf("Peer().Identity: got %q, want empty: nothing was verified", id)
	}
	if d := client.conn.Peer().Detail; !strings.Contains(d, "NOT verified") {
		t.Errorf("Peer().Detail: got %q, want it to say the server was NOT verified", d)
	}
}

// TestTLSServerCertificateErrors checks that each bad server certificate
// is refused by the client with its own reason, explained in words, and
// that the server learns it from the client's alert.
func TestTLSServerCertificateErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := newTestPKI(t)
	for _, tc := range []struct {
		cert   string
		reason CertReason
		words  []string
		server CertReason
	}{
		{"expired", ReasonExpired, []string{"expired on 20"}, ReasonExpired},
		{"wrong-host", ReasonWrongHost, []string{"is for " + certs.WrongHost + ", not localhost"}, ReasonOther},
		{"self-signed", ReasonSelfSigned, []string{"self-signed", "man-in-the-middle"}, ReasonSelfSigned},
		{"rogue", ReasonUnknownAuthority, []string{"unknown authority", "ROGUE", "man-in-the-middle"}, ReasonOther},
	} {
		t.Run(tc.cert, func(t *testing.T) {
			server, client := handshake(t, newScheme(t, "tls", p.serverConfig(t, tc.cert)).Server, newScheme(t, "tls", p.clientConfig(t, "")).Client)
			var ce *CertificateError
			if !errors.As(client.err, &ce) {
				t.Fatalf("client: got %v, want a *CertificateError", client.err)
			}
			if ce.Reason != tc.reason || ce.Remote || ce.Of != "server" {
				t.Errorf("client: got reason %v remote %v of %q, want %v, false, server", ce.Reason, ce.Remote, ce.Of, tc.reason)
			}
			for _, w := range tc.words {
				if !strings.Contains(ce.Error(), w) {
					t.Errorf("client error %q: want it to contain %q", ce.Error(), w)
				}
			}
			var se *CertificateError
			if !errors.As(server.err, &se) {
				t.Fatalf("server: got %v, want a *CertificateError", server.err)
			}
			if !se.Remote || se.Reason != tc.server {
				t.Errorf("server: got reason %v remote %v, want %v, true", se.Reason, se.Remote, tc.server)
			}
		})
	}
}

// TestTLSMismatch checks that a peer that does not speak TLS is reported as
// a *MismatchError on either side.
func TestTLSMismatch(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := newTestPKI(t)
	srv := newScheme(t, "tls", p.serverConfig(t, "server"))
	cli := newScheme(t, "tls", p.clientConfig(t, ""))
	writeAndWait := func(b []byte) func(net.Conn) (Conn, error) {
		return func(c net.Conn) (Conn, error) {
			c.Write(b)
			io.Copy(io.Discard, c)
			return nil, nil
		}
	}
	for _, tc := range []struct {
		name     string
		server   func(net.Conn) (Conn, error)
		client   func(net.Conn) (Conn, error)
		onServer bool
		got      string
	}{
		{"plain client", srv.Server, writeAndWait([]byte("alice\nhello everyone\n")), true, "plain"},
		{"garbage client", srv.Server, writeAndWait([]byte{0x00, 0xff, 0x13, 0x37, 0x80, 0x01, 0x02}), true, ""},
		{"aes client", srv.Server, writeAndWait([]byte("PRLY\x01\x03nonce-nonce-nonce")), true, "aes-cbc-hmac"},
		{"plain server", writeAndWait([]byte("* welcome to lobby (scheme plain)\n")), cli.Client, false, "plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, client := handshake(t, tc.server, tc.client)
			err := client.err
			if tc.onServer {
				err = server.err
			}
			var me *MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("got %v, want a *MismatchError", err)
			}
			if me.Want != "tls" || me.Got != tc.got {
				t.Errorf("got Want %q Got %q, want tls, %q", me.Want, me.Got, tc.got)
			}
			if !errors.Is(err, ErrNotParley) {
				t.Errorf("got %v, want it to wrap ErrNotParley", err)
			}
		})
	}
}

// TestTLSHandshakeDeadline checks that Server returns when the caller's
// deadline passes, whether the client never starts the handshake, stops in
// the middle of it, or (mtls) never says HELLO.
func TestTLSHandshakeDeadline(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := newTestPKI(t)
	alice := p.pair(t, "alice")
	for _, tc := range []struct {
		name   string
		scheme string
		client func(c net.Conn)
	}{
		{"silent client", "tls", func(c net.Conn) {}},
		{"half a ClientHello", "tls", func(c net.Conn) { c.Write([]byte{0x16, 0x03, 0x01, 0x01, 0x00, 0x01}) }},
		{"mtls without HELLO", "mtls", func(c net.Conn) {
			tc := tls.Client(c, &tls.Config{RootCAs: p.pool, ServerName: "localhost", Certificates: []tls.Certificate{alice}})
			tc.Handshake()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			done := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					done <- err
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(200 * time.Millisecond))
				_, err = newScheme(t, tc.scheme, p.serverConfig(t, "server")).Server(c)
				done <- err
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tc.client(c)
			select {
			case err := <-done:
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Errorf("got %v, want a timeout", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Server did not return after its deadline passed")
			}
		})
	}
}

// TestTLSStandardClient checks that a plain crypto/tls client, which knows
// nothing of parley, is a working client of a tls server.
func TestTLSStandardClient(t *testing.T) {
	p := newTestPKI(t)
	server, client := handshake(t, newScheme(t, "tls", p.serverConfig(t, "server")).Server, func(c net.Conn) (Conn, error) {
		tc := tls.Client(c, &tls.Config{RootCAs: p.pool, ServerName: "127.0.0.1"})
		if err := tc.Handshake(); err != nil {
			return nil, err
		}
		return newLineConn(tc, DefaultMaxMessage, Peer{}), nil
	})
	if server.err != nil || client.err != nil {
		t.Fatalf("handshake: server: %v, client: %v", server.err, client.err)
	}
	server.conn.WriteLines([]byte("* welcome\n"))
	if got, err := readLine(t, client.conn); got != "* welcome" || err != nil {
		t.Errorf("got %q, %v, want \"* welcome\"", got, err)
	}
	client.conn.WriteLines([]byte("alice\r\n"))
	if got, err := readLine(t, server.conn); got != "alice" || err != nil {
		t.Errorf("got %q, %v, want alice", got, err)
	}
}

func TestCertReasonString(t *testing.T) {
	for r := ReasonOther; r <= ReasonNoClientCert; r++ {
		if s := r.String(); s == "" || strings.HasPrefix(s, "CertReason(") {
			t.Errorf("CertReason(%d).String() = %q, want a name", int(r), s)
		}
	}
}
