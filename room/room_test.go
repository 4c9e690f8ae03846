package room

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parley-edu/parley/schemes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startRoom serves a plain room on a loopback port and shuts it down when
// the test ends.
func startRoom(t testing.TB, cfg Config) (*Room, string) {
	t.Helper()
	if cfg.Scheme == nil {
		s, err := schemes.New("plain", schemes.Config{MaxMessage: cfg.MaxLine})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Scheme = s
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- r.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != ErrClosed {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
	})
	return r, l.Addr().String()
}

type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s+"\n"); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) line() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (partial %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// until reads lines until one starts with prefix.
func (c *client) until(prefix string) string {
	c.t.Helper()
	for {
		if l := c.line(); strings.HasPrefix(l, prefix) {
			return l
		}
	}
}

// expectEOF reads until the server closes the connection.
func (c *client) expectEOF() []string {
	c.t.Helper()
	var lines []string
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		s, err := c.r.ReadString('\n')
		if err != nil {
			if err != io.EOF {
				c.t.Fatalf("want EOF, got %v after %q", err, lines)
			}
			return lines
		}
		lines = append(lines, strings.TrimSuffix(s, "\n"))
	}
}

func join(t testing.TB, addr, name string) *client {
	t.Helper()
	c := dial(t, addr)
	c.until("* choose a name")
	c.send(name)
	c.until("* welcome, " + name)
	return c
}

func TestGreetingNamesRoomAndScheme(t *testing.T) {
	_, addr := startRoom(t, Config{Name: "physics"})
	c := dial(t, addr)
	if got, want := c.line(), "* parley room physics (scheme plain)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := c.line(); !strings.HasPrefix(got, "* WARNING: plain is INSECURE") {
		t.Errorf("got %q, want the insecure warning", got)
	}
	if got := c.line(); !strings.HasPrefix(got, "* choose a name") {
		t.Errorf("got %q, want the name request", got)
	}
}

func TestChatGoesToOthersInOrder(t *testing.T) {
	_, addr := startRoom(t, Config{})
	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob")
	carol := join(t, addr, "carol")
	alice.until("* carol joined")
	bob.until("* carol joined")
	for i := range 100 {
		alice.send(fmt.Sprintf("line %d", i))
	}
	for _, c := range []*client{bob, carol} {
		for i := range 100 {
			if got, want := c.line(), fmt.Sprintf("alice: line %d", i); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
	}
	// The sender gets no copy: the next thing alice sees is her /list.
	alice.send("/list")
	if got, want := alice.line(), "* 3 in lobby: alice, bob, carol"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNames(t *testing.T) {
	_, addr := startRoom(t, Config{})
	join(t, addr, "Alice")
	tests := []struct {
		name, send, want string
	}{
		{"empty", "", "! a name cannot be empty"},
		{"too long", strings.Repeat("x", 33), "! a name has at most 32 characters"},
		{"bad characters", "al ice", "! a name may only use letters"},
		{"escape", "\x1b[2J", "! a name may only use letters"},
		{"taken, other case", "aLiCe", "! the name aLiCe is taken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr)
			c.until("* choose a name")
			c.send(tt.send)
			if got := c.line(); !strings.HasPrefix(got, tt.want) {
				t.Fatalf("got %q, want prefix %q", got, tt.want)
			}
			// Another chance on the same connection.
			c.send("ok_name-1.x")
			c.until("* welcome, ok_name-1.x")
			c.send("/quit")
			c.expectEOF()
		})
	}
}

func TestSameNameRaceHasOneWinner(t *testing.T) {
	_, addr := startRoom(t, Config{})
	const n = 10
	var wg sync.WaitGroup
	results := make(chan string, n)
	for range n {
		c := dial(t, addr)
		c.until("* choose a name")
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.WriteString(c.conn, "twin\n")
			c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				s, err := c.r.ReadString('\n')
				if err != nil {
					results <- "error: " + err.Error()
					return
				}
				if strings.HasPrefix(s, "* welcome") || strings.HasPrefix(s, "! ") {
					results <- s
					return
				}
			}
		}()
	}
	wg.Wait()
	close(results)
	won := 0
	for r := range results {
		switch {
		case strings.HasPrefix(r, "* welcome, twin"):
			won++
		case strings.HasPrefix(r, "! the name twin is taken"):
		default:
			t.Errorf("unexpected answer %q", r)
		}
	}
	if won != 1 {
		t.Errorf("got %d winners, want 1", won)
	}
}

func TestBadLinesAreDroppedAndConnectionStays(t *testing.T) {
	_, addr := startRoom(t, Config{MaxLine: 1024})
	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob")
	alice.until("* bob joined")

	alice.send(strings.Repeat("a", 5000))
	if got := alice.line(); !strings.HasPrefix(got, "! line too long (limit 1024 bytes)") {
		t.Errorf("got %q, want the too-long error", got)
	}
	alice.send("bad \xff\xfe utf8")
	if got := alice.line(); got != "! line is not valid UTF-8; dropped" {
		t.Errorf("got %q, want the UTF-8 error", got)
	}
	alice.send("/frobnicate now")
	if got := alice.line(); !strings.HasPrefix(got, "! unknown command /frobnicate") {
		t.Errorf("got %q, want unknown command", got)
	}
	alice.send("colour \x1b[31mred\x1b[0m and bell \x07 and C1 \u009b")
	want := "alice: colour ^[[31mred^[[0m and bell ^G and C1 <U+009B>"
	if got := bob.line(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	alice.send("still here")
	if got := bob.line(); got != "alice: still here" {
		t.Errorf("got %q, want alice's next line", got)
	}
}

func TestCommands(t *testing.T) {
	_, addr := startRoom(t, Config{Name: "lab"})
	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob")
	alice.until("* bob joined")

	alice.send(".list")
	if got, want := alice.line(), "* 2 in lab: alice, bob"; got != want {
		t.Errorf(".list: got %q, want %q", got, want)
	}
	alice.send("/whoami")
	if got := alice.line(); !strings.Contains(got, "you are alice in lab, scheme plain") || !strings.Contains(got, "self-asserted") {
		t.Errorf("/whoami: got %q", got)
	}
	alice.send("/msg BOB psst")
	if got, want := bob.line(), "alice (private): psst"; got != want {
		t.Errorf("/msg: got %q, want %q", got, want)
	}
	if got, want := alice.line(), "* (to bob): psst"; got != want {
		t.Errorf("/msg echo: got %q, want %q", got, want)
	}
	alice.send("/msg nobody hi")
	if got := alice.line(); !strings.HasPrefix(got, "! nobody called nobody") {
		t.Errorf("/msg unknown: got %q", got)
	}
	alice.send("/nick bob")
	if got := alice.line(); got != "! the name bob is taken" {
		t.Errorf("/nick taken: got %q", got)
	}
	alice.send("/nick alicia")
	if got, want := bob.line(), "* alice is now known as alicia"; got != want {
		t.Errorf("/nick: got %q, want %q", got, want)
	}
	alice.send("/help")
	if got := alice.until("* commands:"); got != "* commands:" {
		t.Errorf("/help: got %q", got)
	}
	alice.send(".dotted chat is chat")
	if got, want := bob.line(), "alicia: .dotted chat is chat"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	alice.send(".exit")
	if lines := alice.expectEOF(); len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "* bye, alicia") {
		t.Errorf(".exit: got %q, want a goodbye", lines)
	}
	if got, want := bob.line(), "* alicia left (quit)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSilentClientIsDropped(t *testing.T) {
	_, addr := startRoom(t, Config{HandshakeTimeout: 200 * time.Millisecond})
	c := dial(t, addr)
	c.until("* choose a name")
	// Send nothing: the name deadline closes the connection.
	c.expectEOF()
}

func TestDisconnectMidLine(t *testing.T) {
	_, addr := startRoom(t, Config{})
	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob")
	alice.until("* bob joined")
	io.WriteString(bob.conn, "half a li")
	bob.conn.Close()
	if got, want := alice.line(), "* bob left (disconnected)"; got != want {
		t.Errorf("got %q, want %q (the half line must not be delivered)", got, want)
	}
}

func TestFloodIsPacedNotDropped(t *testing.T) {
	_, addr := startRoom(t, Config{Rate: 200, Burst: 10})
	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob")
	alice.until("* bob joined")
	const n = 60
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "flood %d\n", i)
	}
	io.WriteString(alice.conn, b.String())
	for i := range n {
		if got, want := bob.line(), fmt.Sprintf("alice: flood %d", i); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if got := alice.line(); !strings.HasPrefix(got, "! slow down") {
		t.Errorf("got %q, want one slow-down notice", got)
	}
	alice.send("/list")
	if got := alice.line(); !strings.HasPrefix(got, "* 2 in lobby") {
		t.Errorf("got %q, want the /list answer and no second slow-down notice", got)
	}
}

func TestRoomFull(t *testing.T) {
	_, addr := startRoom(t, Config{MaxMembers: 2})
	join(t, addr, "a")
	join(t, addr, "b")
	c := dial(t, addr)
	if got := c.line(); !strings.HasPrefix(got, "! room is full (2 members)") {
		t.Errorf("got %q, want room full", got)
	}
	c.expectEOF()
}

func TestSlowReaderIsClosedOthersUnaffected(t *testing.T) {
	_, addr := startRoom(t, Config{MaxQueue: 64 << 10, MaxLine: 1024, WriteTimeout: time.Second, Rate: -1})
	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob")
	join(t, addr, "stuck") // never reads again
	alice.until("* stuck joined")
	bob.until("* stuck joined")
	// stuck never reads again. alice sends, in lockstep with bob who keeps
	// reading, far more than stuck's queue and socket buffers hold.
	line := strings.Repeat("z", 1000)
	for i := 0; ; i++ {
		if i == 20000 {
			t.Fatal("stuck was never closed as too slow")
		}
		alice.send(line)
		got := bob.line()
		if got == "* stuck left (too slow)" {
			break
		}
		if got != "alice: "+line {
			t.Fatalf("bob got %q", got)
		}
	}
	alice.send("after")
	if got := bob.until("alice: after"); got != "alice: after" {
		t.Errorf("got %q", got)
	}
}

func TestShutdownTellsMembers(t *testing.T) {
	r, addr := startRoom(t, Config{})
	alice := join(t, addr, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	lines := alice.expectEOF()
	if len(lines) == 0 || lines[len(lines)-1] != "* server shutting down" {
		t.Errorf("got %q, want the shutdown notice last", lines)
	}
	// Idempotent.
	if err := r.Shutdown(ctx); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
}

// TestGoodbyeIsLast: a member that quits while others leave and chat gets
// its goodbye as the very last line; nothing is queued after it.
func TestGoodbyeIsLast(t *testing.T) {
	_, addr := startRoom(t, Config{Rate: -1})
	for round := range 30 {
		a := join(t, addr, fmt.Sprintf("a%d", round))
		b := join(t, addr, fmt.Sprintf("b%d", round))
		a.until(fmt.Sprintf("* b%d joined", round))
		var wg sync.WaitGroup
		for _, c := range []*client{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.WriteString(c.conn, "chatter\n/quit\n")
			}()
		}
		wg.Wait()
		for _, c := range []*client{a, b} {
			lines := c.expectEOF()
			if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "* bye, ") {
				t.Fatalf("round %d: got %q, want the goodbye last", round, lines)
			}
		}
	}
}
