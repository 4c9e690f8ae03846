package capture

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-edu/parley/room"
	"github.com/parley-edu/parley/schemes"
)

// The scripted conversation every golden capture records.
const (
	aliceLine = "hello bob, the password is swordfish"
	bobLine   = "hi alice! héllo wörld"
)

// startRoom runs a room with scheme sc on 127.0.0.1:0 until the test ends.
func startRoom(t *testing.T, sc schemes.Scheme) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := room.New(room.Config{Scheme: sc})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); r.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

// startTap runs a tap in front of upstream until stop is called; stop
// returns once Serve has returned.
func startTap(t *testing.T, upstream, keyLog string) (*Tap, func()) {
	t.Helper()
	tap, err := NewTap(TapConfig{Listen: "127.0.0.1:0", Upstream: upstream, KeyLogPath: keyLog})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- tap.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("tap.Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("tap.Serve did not return after cancel")
			}
		})
	}
	t.Cleanup(func() { stop(); tap.Recorder().Close() })
	return tap, stop
}

// member is one scripted room member.
type member struct {
	t    *testing.T
	conn schemes.Conn
}

func join(t *testing.T, addr string, sc schemes.Scheme, name string) *member {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sconn, err := sc.Client(c)
	if err != nil {
		c.Close()
		t.Fatalf("%s: handshake: %v", name, err)
	}
	m := &member{t: t, conn: sconn}
	m.waitFor("* choose a name")
	m.say(name)
	m.waitFor("* welcome, " + name)
	return m
}

func (m *member) say(line string) {
	m.t.Helper()
	if err := m.conn.WriteLines([]byte(line + "\n")); err != nil {
		m.t.Fatalf("write %q: %v", line, err)
	}
}

// waitFor reads messages until one starts with prefix.
func (m *member) waitFor(prefix string) {
	m.t.Helper()
	for {
		msg, err := m.conn.ReadMessage()
		if err != nil {
			m.t.Fatalf("waiting for %q: %v", prefix, err)
		}
		if strings.HasPrefix(string(msg), prefix) {
			return
		}
	}
}

// waitClosed reads until the server closes the connection.
func (m *member) waitClosed() {
	m.t.Helper()
	for {
		if _, err := m.conn.ReadMessage(); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
				m.t.Fatalf("waiting for close: %v", err)
			}
			m.conn.Close()
			return
		}
	}
}

// converse runs the scripted conversation through addr: alice and bob
// join, talk, and bob quits, then alice.
func converse(t *testing.T, addr string, sc schemes.Scheme) {
	t.Helper()
	alice := join(t, addr, sc, "alice")
	bob := join(t, addr, sc, "bob")
	alice.waitFor("* bob joined")
	alice.say(aliceLine)
	bob.waitFor("alice: " + aliceLine)
	bob.say(bobLine)
	alice.waitFor("bob: " + bobLine)
	bob.say("/quit")
	bob.waitClosed()
	alice.waitFor("* bob left")
	alice.say("/quit")
	alice.waitClosed()
}

// selfSigned returns a TLS certificate for localhost made for the test.
func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"parley test"}},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startTLSEcho runs a TLS 1.3 line server made with crypto/tls: it greets,
// then answers every line with "echo: line" until the client sends /quit.
// Secrets go to keyLog in NSS format.
func startTLSEcho(t *testing.T, cert tls.Certificate, keyLog io.Writer) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, KeyLogWriter: keyLog})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "* tls echo room\n")
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if sc.Text() == "/quit" {
						io.WriteString(c, "* bye\n")
						return
					}
					io.WriteString(c, "echo: "+sc.Text()+"\n")
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// converseTLS talks to a TLS echo server through addr.
func converseTLS(t *testing.T, addr string) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", NextProtos: []string{"parley"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	expect := func(want string) {
		t.Helper()
		line, err := br.ReadString('\n')
		if err != nil || line != want+"\n" {
			t.Fatalf("got %q, %v; want %q", line, err, want)
		}
	}
	expect("* tls echo room")
	io.WriteString(c, aliceLine+"\n")
	expect("echo: " + aliceLine)
	io.WriteString(c, "/quit\n")
	expect("* bye")
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("got %v after bye, want EOF", err)
	}
}
