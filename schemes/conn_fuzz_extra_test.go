package schemes

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// recordingConn keeps what is written through it.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(b)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// clientTranscript runs a real client of cli against srv over a pipe, sends
// a name and a line, and returns every byte the client sent.
func clientTranscript(t testing.TB, srv, cli Scheme) []byte {
	t.Helper()
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	cc.SetDeadline(time.Now().Add(10 * time.Second))
	done := make(chan error, 1)
	go func() {
		s, err := srv.Server(sc)
		if err == nil {
			for range 2 {
				if _, err = s.ReadMessage(); err != nil {
					break
				}
			}
		}
		done <- err
	}()
	rc := &recordingConn{Conn: cc}
	c, err := cli.Client(rc)
	if err != nil {
		t.Fatalf("%s client: %v", cli.Name(), err)
	}
	if err := c.WriteLines([]byte("alice\nhello, room\n")); err != nil {
		t.Fatalf("%s client: %v", cli.Name(), err)
	}
	if err := <-done; err != nil {
		t.Fatalf("%s server: %v", srv.Name(), err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return bytes.Clone(rc.out.Bytes())
}

// FuzzServerConn feeds arbitrary bytes, as a client would send them, to the
// server side of every scheme: its hello or TLS handshake (crypto/tls's
// ClientHello parser, the mtls signature protocol after it), then its
// records or lines, until the Conn fails. Nothing may panic or hang, an
// over-long message is the only error after which reading goes on, and
// every message returned respects the limit. Seeds are real clients'
// transcripts, which for the record schemes and TLS fail after the hello
// (the server's nonce differs) and so exercise the error paths too.
func FuzzServerConn(f *testing.F) {
	pki := newTestPKI(f)
	psk := bytes.Repeat([]byte{0x42}, PSKLen)
	const limit = 512
	type pair struct{ srv, cli Scheme }
	pairs := []pair{
		{mustNew(f, "plain", Config{MaxMessage: limit}), mustNew(f, "plain", Config{})},
		{mustNew(f, "xor", Config{MaxMessage: limit, XORKey: 0x5a, XORKeySet: true}), mustNew(f, "xor", Config{})},
		{mustNew(f, "aes-cbc", Config{MaxMessage: limit, PSK: psk}), mustNew(f, "aes-cbc", Config{PSK: psk})},
		{mustNew(f, "aes-cbc-hmac", Config{MaxMessage: limit, PSK: psk}), mustNew(f, "aes-cbc-hmac", Config{PSK: psk})},
		{mustNew(f, "tls", Config{MaxMessage: limit, Certificates: []tls.Certificate{pki.pair(f, "server")}}),
			mustNew(f, "tls", Config{RootCAs: pki.pool, ServerName: "localhost"})},
		{mustNew(f, "mtls", Config{MaxMessage: limit, Certificates: []tls.Certificate{pki.pair(f, "server")}, RootCAs: pki.pool, SigningSecret: pki.secret}),
			mustNew(f, "mtls", Config{RootCAs: pki.pool, ServerName: "localhost", Certificates: []tls.Certificate{pki.pair(f, "alice")}, SigKey: pki.sigkey(f, "alice")})},
	}
	for i, p := range pairs {
		f.Add(uint8(i), clientTranscript(f, p.srv, p.cli))
	}
	f.Add(uint8(1), []byte{0xff, 0xff, 1, 2, 3})
	f.Add(uint8(3), []byte("PRLY"))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		srv := pairs[int(which)%len(pairs)].srv
		var wg sync.WaitGroup
		defer wg.Wait() // after sc.Close, which ends the client's write
		sc, cc := net.Pipe()
		defer sc.Close()
		deadline := time.Now().Add(5 * time.Second)
		sc.SetDeadline(deadline)
		cc.SetDeadline(deadline)
		wg.Add(2)
		go func() {
			defer wg.Done()
			cc.Write(data)
			cc.Close()
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			for {
				if _, err := cc.Read(buf); err != nil {
					return
				}
			}
		}()
		c, err := srv.Server(sc)
		if err != nil {
			return
		}
		defer c.Close()
		for range 1000 {
			msg, err := c.ReadMessage()
			if errors.Is(err, ErrMessageTooLong) {
				continue
			}
			if err != nil {
				if isTimeout(err) {
					t.Fatalf("%s: the server hung on %d bytes of input: %v", srv.Name(), len(data), err)
				}
				return
			}
			if len(msg) > limit {
				t.Fatalf("%s: got a %d-byte message, over the %d-byte limit", srv.Name(), len(msg), limit)
			}
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
