package attack

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parley-edu/parley/certs"
	"github.com/parley-edu/parley/room"
	"github.com/parley-edu/parley/schemes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lab is a room, Mallory's relay in front of it, and the events she
// reported.
type lab struct {
	t        *testing.T
	roomAddr string
	relay    *Relay
	cli      schemes.Scheme // the members' scheme

	mu     sync.Mutex
	events []Event
}

// keys holds what a scheme's two sides need.
type keys struct{ server, client schemes.Config }

// labKeys makes the keys and certificates of scheme in a temporary folder.
func labKeys(t *testing.T, scheme string) keys {
	t.Helper()
	var k keys
	switch scheme {
	case "aes-cbc", "aes-cbc-hmac":
		psk := make([]byte, schemes.PSKLen)
		rand.Read(psk)
		k.server.PSK, k.client.PSK = psk, psk
	case "tls", "mtls":
		dir := t.TempDir()
		if _, err := certs.Init(dir, certs.Options{}); err != nil {
			t.Fatal(err)
		}
		if _, err := certs.IssueServer(dir, nil, certs.Options{}); err != nil {
			t.Fatal(err)
		}
		srv, err := tls.LoadX509KeyPair(filepath.Join(dir, certs.ServerCertFile), filepath.Join(dir, certs.ServerKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		pool, err := certs.CAPool(dir)
		if err != nil {
			t.Fatal(err)
		}
		k.server.Certificates, k.server.RootCAs = []tls.Certificate{srv}, pool
		k.client.RootCAs, k.client.ServerName = pool, "127.0.0.1"
		if scheme == "mtls" {
			if _, err := certs.IssueClient(dir, "alice", certs.Options{}); err != nil {
				t.Fatal(err)
			}
			cc, err := tls.LoadX509KeyPair(filepath.Join(dir, "alice.crt"), filepath.Join(dir, "alice.key"))
			if err != nil {
				t.Fatal(err)
			}
			secret, err := certs.ReadSigningSecret(dir)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := certs.ReadSigKey(filepath.Join(dir, "alice.sigkey"))
			if err != nil {
				t.Fatal(err)
			}
			k.server.SigningSecret = secret
			k.client.Certificates, k.client.SigKey = []tls.Certificate{cc}, sig
		}
	}
	return k
}

// startRoom serves a room of scheme on a free loopback port until the test
// ends.
func startRoom(t *testing.T, scheme string, cfg schemes.Config) string {
	t.Helper()
	sch, err := schemes.New(scheme, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := room.New(room.Config{Scheme: sch, Rate: -1})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); r.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
		l.Close()
		<-done
	})
	return l.Addr().String()
}

// newLab starts a room of scheme and a relay in front of it configured by
// cfg (Scheme, Listen and Upstream are filled in).
func newLab(t *testing.T, scheme string, cfg Config, k keys) *lab {
	t.Helper()
	l := &lab{t: t, roomAddr: startRoom(t, scheme, k.server)}
	l.startRelay(scheme, l.roomAddr, cfg)
	cli, err := schemes.New(scheme, k.client)
	if err != nil {
		t.Fatal(err)
	}
	l.cli = cli
	return l
}

func (l *lab) startRelay(scheme, upstream string, cfg Config) {
	t := l.t
	t.Helper()
	cfg.Scheme, cfg.Listen, cfg.Upstream = scheme, "127.0.0.1:0", upstream
	cfg.HandshakeTimeout = 5 * time.Second
	cfg.OnEvent = func(e Event) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.events = append(l.events, e)
	}
	r, err := NewRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.relay = r
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: got %v, want nil", err)
		}
	})
}

// waitEvent waits for an event whose String contains each of want.
func (l *lab) waitEvent(want ...string) Event {
	l.t.Helper()
	var found Event
	waitFor(l.t, fmt.Sprintf("an event with %q; events:\n%s", want, l.dump()), func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, e := range l.events {
			if containsAll(e.String(), want) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

func (l *lab) hasEvent(want ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if containsAll(e.String(), want) {
			return true
		}
	}
	return false
}

func (l *lab) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.events {
		b.WriteString(e.String() + "\n")
	}
	return b.String()
}

func containsAll(s string, want []string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// member is one room member: what it received, and how its connection
// ended.
type member struct {
	t    *testing.T
	conn schemes.Conn

	mu    sync.Mutex
	lines []string
	err   error
	done  chan struct{}
}

// dial connects to addr and runs the scheme's handshake, returning the
// handshake error if any.
func dial(t *testing.T, addr string, sch schemes.Scheme) (*member, error) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := sch.Client(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	m := &member{t: t, conn: c, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			line, err := c.ReadMessage()
			m.mu.Lock()
			if err != nil {
				m.err = err
				m.mu.Unlock()
				return
			}
			m.lines = append(m.lines, string(line))
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-m.done })
	return m, nil
}

// join connects and joins as name.
func join(t *testing.T, addr string, sch schemes.Scheme, name string) *member {
	t.Helper()
	m, err := dial(t, addr, sch)
	if err != nil {
		t.Fatalf("joining %s as %s: %v", addr, name, err)
	}
	m.waitLine("* choose a name")
	m.say(name)
	m.waitLine("* welcome, " + name)
	return m
}

func (m *member) say(text string) {
	m.t.Helper()
	if err := m.conn.WriteLines([]byte(text + "\n")); err != nil {
		m.t.Fatalf("say %q: %v", text, err)
	}
}

func (m *member) has(prefix string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, l := range m.lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func (m *member) waitLine(prefix string) {
	m.t.Helper()
	waitFor(m.t, fmt.Sprintf("a line %q; got %q", prefix, m.snapshot()), func() bool { return m.has(prefix) > 0 })
}

func (m *member) snapshot() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string{}, m.lines...)
}

// waitClosed waits until the member's connection ends and returns why.
func (m *member) waitClosed() error {
	m.t.Helper()
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		m.t.Fatalf("connection still open; got %q", m.snapshot())
	}
	return m.err
}

func TestPlainReadAndReplace(t *testing.T) {
	l := newLab(t, "plain", Config{Replace: []Replacement{{Old: "at 5", New: "at 9"}}}, keys{})
	bob := join(t, l.roomAddr, l.cli, "bob")
	alice := join(t, l.relay.Addr().String(), l.cli, "alice")
	alice.say("meet at 5")
	bob.waitLine("alice: meet at 9")
	bob.say("ok, at 5")
	alice.waitLine("bob: ok, at 9")
	l.waitEvent(`READ alice→room: "meet at 5"`)
	l.waitEvent(`REWROTE alice→room: "meet at 5" → "meet at 9"`)
	l.waitEvent(`READ room→alice: "bob: ok, at 5"`)
	if n := bob.has("alice: meet at 5"); n != 0 {
		t.Errorf("bob got the original line %d times, want 0", n)
	}
}

func TestXOR(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		say   []string
		want  map[string]int // lines bob gets, and how often
		event []string
	}{
		{"key from the handshake", Config{Replace: []Replacement{{Old: "5", New: "9"}}}, []string{"pay 5"},
			map[string]int{"alice: pay 9": 1, "alice: pay 5": 0}, []string{"KEY", "read from the room's first byte"}},
		{"brute force", Config{XORBruteForce: true}, []string{"pay 5"},
			map[string]int{"alice: pay 5": 1}, []string{"KEY", "trying all 256 keys"}},
		{"replay", Config{Replay: 2}, []string{"pay 5"},
			map[string]int{"alice: pay 5": 2, "alice: done": 1}, []string{"REPLAYED alice→room record 2"}},
		{"drop", Config{Drop: 2}, []string{"pay 5"},
			map[string]int{"alice: pay 5": 0, "alice: done": 1}, []string{"DROPPED alice→room record 2", `"pay 5"`}},
		{"inject", Config{Inject: "mallory was here"}, nil,
			map[string]int{"alice: mallory was here": 1, "alice: done": 1}, []string{"INJECTED Mallory→room", "as if from client 1"}},
		{"flip", Config{Flip: &Flip{Offset: 0, Mask: 0x20, Record: 2}}, []string{"Pay 5"},
			map[string]int{"alice: pay 5": 1}, []string{"FLIPPED alice→room record 2", `"Pay 5" → "pay 5"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, "xor", tt.cfg, keys{})
			bob := join(t, l.roomAddr, l.cli, "bob")
			alice := join(t, l.relay.Addr().String(), l.cli, "alice")
			for _, s := range tt.say {
				alice.say(s)
			}
			alice.say("done")
			bob.waitLine("alice: done")
			for line, n := range tt.want {
				if got := bob.has(line); got != n {
					t.Errorf("bob got %q %d times, want %d; bob got %q", line, got, n, bob.snapshot())
				}
			}
			l.waitEvent(tt.event...)
		})
	}
}

func TestAESCBCFlipIV(t *testing.T) {
	// Flipping bit 5 of the IV's first byte flips the case of the first
	// letter the room decrypts, and nothing else.
	l := newLab(t, "aes-cbc", Config{Flip: &Flip{Offset: 0, Mask: 0x20, Record: 2}}, labKeys(t, "aes-cbc"))
	bob := join(t, l.roomAddr, l.cli, "bob")
	alice := join(t, l.relay.Addr().String(), l.cli, "alice")
	alice.say("Pay bob 5")
	alice.say("done")
	bob.waitLine("alice: done")
	if got := bob.has("alice: pay bob 5"); got != 1 {
		t.Errorf(`bob got "alice: pay bob 5" %d times, want 1; bob got %q`, got, bob.snapshot())
	}
	l.waitEvent("FLIPPED client 1→room record 2", "flipped byte 0 of the IV: plaintext byte 0 XOR 0x20")
	l.waitEvent("OPAQUE client 1→room record 1", "Mallory cannot read it")
	if l.hasEvent("READ client 1") {
		t.Errorf("Mallory read an aes-cbc record; events:\n%s", l.dump())
	}
}

func TestAESCBCReplayUndetected(t *testing.T) {
	l := newLab(t, "aes-cbc", Config{Replay: 2}, labKeys(t, "aes-cbc"))
	bob := join(t, l.roomAddr, l.cli, "bob")
	alice := join(t, l.relay.Addr().String(), l.cli, "alice")
	alice.say("pay bob 5")
	alice.say("done")
	bob.waitLine("alice: done")
	if got := bob.has("alice: pay bob 5"); got != 2 {
		t.Errorf(`bob got "alice: pay bob 5" %d times, want 2 (aes-cbc does not check sequence numbers)`, got)
	}
}

func TestAESCBCHMACDetectsTampering(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		event string
		lines int // how many of alice's lines reach bob
	}{
		{"flip IV", Config{Flip: &Flip{Offset: 0, Mask: 0x20}}, "Mallory flipped record 2", 0},
		{"flip tag", Config{Flip: &Flip{Offset: 40, Mask: 1}}, "Mallory flipped record 2", 0},
		// The original arrives; its copy fails.
		{"replay", Config{Replay: 2}, "Mallory replayed record 2", 1},
		{"drop", Config{Drop: 2}, "Mallory dropped record 2", 0},
		{"inject", Config{Inject: "mallory was here"}, "Mallory injected", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, "aes-cbc-hmac", tt.cfg, labKeys(t, "aes-cbc-hmac"))
			bob := join(t, l.roomAddr, l.cli, "bob")
			m, err := dial(t, l.relay.Addr().String(), l.cli)
			if err != nil {
				t.Fatal(err)
			}
			m.waitLine("* choose a name")
			m.say("alice")
			if tt.cfg.Inject == "" {
				m.waitLine("* welcome, alice")
				m.say("pay bob 5")
				m.say("pay bob 6")
			}
			err = m.waitClosed()
			if err == nil {
				t.Fatalf("alice's connection ended without an error, want one")
			}
			bob.waitLine("* ")
			waitFor(t, fmt.Sprintf("bob to see alice leave; bob got %q; events:\n%s", bob.snapshot(), l.dump()), func() bool { return bob.has("* alice left (protocol error)") > 0 })
			if got := bob.has("alice: pay"); got != tt.lines {
				t.Errorf("bob got %d of alice's lines, want %d; bob got %q", got, tt.lines, bob.snapshot())
			}
			l.waitEvent("DETECTED by the room: bad record MAC", tt.event)
		})
	}
}

func TestAESCBCHMACReplaceRunsInShowMode(t *testing.T) {
	l := newLab(t, "aes-cbc-hmac", Config{Replace: []Replacement{{Old: "5", New: "9"}}}, labKeys(t, "aes-cbc-hmac"))
	if n := l.relay.Notes(); len(n) != 1 || !strings.Contains(n[0], "cannot read") {
		t.Errorf("Notes: got %q, want one saying Mallory cannot read", n)
	}
	bob := join(t, l.roomAddr, l.cli, "bob")
	alice := join(t, l.relay.Addr().String(), l.cli, "alice")
	alice.say("pay bob 5")
	bob.waitLine("alice: pay bob 5")
	l.waitEvent("HELLO client 1→room", "worthless without the pre-shared key")
}

func TestTLS(t *testing.T) {
	k := labKeys(t, "tls")
	l := newLab(t, "tls", Config{Replace: []Replacement{{Old: "5", New: "9"}}}, k)
	bob := join(t, l.roomAddr, l.cli, "bob")

	t.Run("verifying member refuses", func(t *testing.T) {
		_, err := dial(t, l.relay.Addr().String(), l.cli)
		ce, ok := errors.AsType[*schemes.CertificateError](err)
		if !ok || ce.Reason != schemes.ReasonUnknownAuthority {
			t.Fatalf("handshake through Mallory: got %v, want an unknown-authority certificate error", err)
		}
		l.waitEvent("BLOCKED", "client 1 rejected our certificate (unknown authority)", MalloryCA)
	})
	t.Run("member that skips verification", func(t *testing.T) {
		cfg := k.client
		cfg.InsecureSkipVerify = true
		insecure, err := schemes.New("tls", cfg)
		if err != nil {
			t.Fatal(err)
		}
		alice := join(t, l.relay.Addr().String(), insecure, "alice")
		alice.say("pay bob 5")
		bob.waitLine("alice: pay bob 9")
		l.waitEvent("INTERCEPTED", "without checking it")
		l.waitEvent(`READ alice→room: "pay bob 5"`)
	})
}

func TestMTLSBlocked(t *testing.T) {
	k := labKeys(t, "mtls")
	l := newLab(t, "mtls", Config{Inject: "hi"}, k)
	if len(l.relay.Notes()) != 1 {
		t.Errorf("Notes: got %q, want one", l.relay.Notes())
	}
	t.Run("verifying member", func(t *testing.T) {
		_, err := dial(t, l.relay.Addr().String(), l.cli)
		if ce, ok := errors.AsType[*schemes.CertificateError](err); !ok || ce.Reason != schemes.ReasonUnknownAuthority {
			t.Fatalf("handshake through Mallory: got %v, want an unknown-authority certificate error", err)
		}
		l.waitEvent("BLOCKED", "rejected our certificate (unknown authority)")
	})
	t.Run("member that skips verification", func(t *testing.T) {
		cfg := k.client
		cfg.InsecureSkipVerify = true
		insecure, err := schemes.New("mtls", cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dial(t, l.relay.Addr().String(), insecure); err == nil {
			t.Fatal("mtls through Mallory: handshake succeeded, want a failure")
		}
		l.waitEvent("INTERCEPTED", "CN=alice")
		l.waitEvent("BLOCKED", "the room rejected our client certificate (unknown authority)")
	})
}

func TestUpstreamDownThenUp(t *testing.T) {
	// Take a free port, then free it: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	l := &lab{t: t}
	l.startRelay("plain", addr, Config{})
	c, err := net.Dial("tcp", l.relay.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("read from the relay with the room down: got data, want the connection closed")
	}
	l.waitEvent("ERROR", "is down (connection refused)", "still listening")

	// The room comes up on that port: the next member gets through.
	rl, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	sch, _ := schemes.New("plain", schemes.Config{})
	r, err := room.New(room.Config{Scheme: sch})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); r.Serve(rl) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
		<-done
	}()
	alice := join(t, l.relay.Addr().String(), sch, "alice")
	alice.say("/quit")
	alice.waitLine("* bye, alice")
	alice.waitClosed()
	l.waitEvent("CLOSED room→alice", "closed the connection")
}

func TestSchemeMismatch(t *testing.T) {
	tests := []struct {
		relay, room string
		want        string
	}{
		{"plain", "xor", "the room speaks xor, not plain"},
		{"xor", "plain", "the room speaks plain, not xor"},
		{"aes-cbc-hmac", "aes-cbc", "the room speaks aes-cbc, not aes-cbc-hmac"},
		{"aes-cbc-hmac", "plain", "the room speaks plain, not aes-cbc-hmac"},
		{"tls", "plain", "the room speaks plain, not tls"},
		{"tls", "mtls", "the room speaks mtls, not tls"},
	}
	for _, tt := range tests {
		t.Run(tt.relay+" to "+tt.room, func(t *testing.T) {
			k := labKeys(t, tt.room)
			rk := labKeys(t, tt.relay)
			l := &lab{t: t, roomAddr: startRoom(t, tt.room, k.server)}
			l.startRelay(tt.relay, l.roomAddr, Config{})
			cfg := rk.client
			cfg.InsecureSkipVerify = true
			cli, err := schemes.New(tt.relay, cfg)
			if err != nil {
				t.Fatal(err)
			}
			nc, err := net.Dial("tcp", l.relay.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			if c, err := cli.Client(nc); err == nil {
				c.ReadMessage()
			}
			l.waitEvent("MISMATCH", tt.want)
		})
	}
}

func mustScheme(t *testing.T, name string, cfg schemes.Config) schemes.Scheme {
	t.Helper()
	s, err := schemes.New(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
