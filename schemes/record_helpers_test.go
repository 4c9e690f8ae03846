package schemes

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testPSK is a fixed pre-shared key for tests that do not need a vector.
var testPSK = bytes.Repeat([]byte{0x42}, PSKLen)

func mustNew(t testing.TB, name string, cfg Config) Scheme {
	t.Helper()
	s, err := New(name, cfg)
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	return s
}

// handshakeResult is one side of a handshake run in tests.
type handshakeResult struct {
	conn Conn
	err  error
}

// runPair runs srv.Server and cli.Client against each other over a real
// loopback TCP connection and returns both results. The handshake is
// bounded by a deadline, so a hang is an error rather than a stuck test;
// both sides' connections are closed at the end of the test.
func runPair(t *testing.T, srv, cli Scheme) (server, client handshakeResult) {
	t.Helper()
	return runPairFuncs(t, srv.Server, cli.Client)
}

func runPairFuncs(t *testing.T, serverFn, clientFn func(net.Conn) (Conn, error)) (server, client handshakeResult) {
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
		t.Cleanup(func() { server.conn.Close() })
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	client.conn, client.err = clientFn(c)
	if client.err != nil {
		// Closing lets a server that waits for more bytes finish.
		c.Close()
	} else {
		c.SetDeadline(time.Time{})
		if client.conn != nil {
			t.Cleanup(func() { client.conn.Close() })
		}
	}
	wg.Wait()
	return server, client
}

// rawClient is a test client that runs the aes handshake by hand with the
// exported helpers and then writes whatever bytes a test wants, so tests
// can tamper with records on the way to a real server Conn.
type rawClient struct {
	c        net.Conn
	c2s, s2c DirectionKeys
	mac      bool
	server   Conn
}

// dialRaw starts a server Conn of srv and a raw client for it that speaks
// scheme name with psk.
func dialRaw(t *testing.T, srv Scheme, name string, psk []byte) *rawClient {
	t.Helper()
	mac := name == "aes-cbc-hmac"
	rc := &rawClient{mac: mac}
	server, client := runPairFuncs(t, srv.Server, func(c net.Conn) (Conn, error) {
		rc.c = c
		id, _ := SchemeID(name)
		h := Hello{Version: HelloVersion, SchemeID: id}
		rand.Read(h.Nonce[:])
		if _, err := c.Write(AppendHello(nil, h)); err != nil {
			return nil, err
		}
		var sh [HelloLen]byte
		if _, err := io.ReadFull(c, sh[:]); err != nil {
			return nil, err
		}
		hs, err := ParseHello(sh[:])
		if err != nil {
			return nil, err
		}
		rc.c2s, rc.s2c = DeriveSessionKeys(psk, h.Nonce, hs.Nonce)
		body, err := readRawRecord(c)
		if err != nil {
			return nil, err
		}
		if msg, err := OpenRecord(rc.s2c, 0, body, mac); err != nil || string(msg) != confirmMessage {
			return nil, errors.New("raw client: bad server key confirmation")
		}
		_, err = c.Write(SealRecord(nil, rc.c2s, 0, []byte(confirmMessage), mac))
		return nil, err
	})
	if server.err != nil || client.err != nil {
		t.Fatalf("raw handshake: server: %v, client: %v", server.err, client.err)
	}
	t.Cleanup(func() { rc.c.Close() })
	rc.c.SetDeadline(time.Time{})
	rc.server = server.conn
	return rc
}

func readRawRecord(r io.Reader) ([]byte, error) {
	var hdr [RecordHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(hdr[0])<<24 | int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return body, err
}

// seal returns the wire record of msg as client-to-server record seq.
func (rc *rawClient) seal(seq uint64, msg string) []byte {
	return SealRecord(nil, rc.c2s, seq, []byte(msg), rc.mac)
}

func (rc *rawClient) send(t *testing.T, b ...[]byte) {
	t.Helper()
	if _, err := rc.c.Write(bytes.Join(b, nil)); err != nil {
		t.Fatalf("raw client write: %v", err)
	}
}

// readMessage reads one message from c with a deadline and returns a copy.
func readMessage(t *testing.T, c Conn) (string, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	m, err := c.ReadMessage()
	return string(m), err
}

// waitClosed reports whether the peer closed c, by reading until EOF.
func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	// A reset is a close too: the server closed with our bytes unread.
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("waiting for the server to close: got %v, want EOF", err)
	}
}
