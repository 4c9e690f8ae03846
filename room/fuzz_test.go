package room

import (
	"bufio"
	"context"
	"errors"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parley-edu/parley/schemes"
)

// pipeListener is a net.Listener whose connections are in-memory pipes, so
// that a fuzz iteration runs a whole room without touching the network.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial returns the client end of a new connection to the room.
func (l *pipeListener) dial() (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		server.Close()
		client.Close()
		return nil, net.ErrClosed
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// relayedLine matches what the room may send a member: a notice, an error,
// or a chat or private line from a valid name.
var relayedLine = regexp.MustCompile(`^(\* |! |[A-Za-z0-9_.-]{1,32}(: | \(private\): ))`)

// checkDelivered returns why line, as a member received it, breaks the
// room's promises, or "": valid UTF-8, no terminal control characters (C0,
// DEL, C1), and one of the protocol's line forms.
func checkDelivered(line string) string {
	if !utf8.ValidString(line) {
		return "not valid UTF-8"
	}
	for _, r := range line {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return "holds a control character"
		}
	}
	if !relayedLine.MatchString(line) {
		return "is not a notice, an error or a chat line"
	}
	return ""
}

// FuzzRoomLines sends arbitrary bytes from one connection (eve) into a room,
// from the first byte on: names, chat, commands, invalid UTF-8, control
// characters, over-long lines. A watching member (obs) and eve herself must
// only ever receive valid, sanitised protocol lines, the room must not
// panic, and it must shut down with every goroutine ended.
func FuzzRoomLines(f *testing.F) {
	for _, seed := range []string{
		"eve\nhello",
		"eve\n\x1b]0;pwned\x07title",
		"eve\n/list\n.list\n/whoami\n/help",
		"eve\n/nick mallory\n/nick obs\n/nick \x1b[2J\n/nick " + strings.Repeat("n", 40),
		"eve\n/msg obs hi \x1b[31mred\n/msg nobody\x07 x\n/msg\n/msg obs",
		"eve\n/unknown\x9b\n/\n.\n.exit",
		"eve\n\xff\xfe\xfd\ntext \u0085 \u009b next\n\t tab",
		"obs\nOBS\n\xc3\n" + strings.Repeat("x", 300) + "\neve\n" + strings.Repeat("y", 300),
		"eve\r\n/quit\r\nafter quit",
		"\n\n  \n.list",
		"eve\n" + strings.Repeat("spam\n", 50),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxLine = 256
		sch, err := schemes.New("plain", schemes.Config{MaxMessage: maxLine})
		if err != nil {
			t.Fatal(err)
		}
		r, err := New(Config{Scheme: sch, MaxLine: maxLine, Rate: -1})
		if err != nil {
			t.Fatal(err)
		}
		l := newPipeListener()
		served := make(chan error, 1)
		go func() { served <- r.Serve(l) }()
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := r.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			if err := <-served; !errors.Is(err, ErrClosed) {
				t.Errorf("Serve returned %v, want ErrClosed", err)
			}
		}()

		obs := fuzzJoin(t, l, "obs")
		defer obs.Close()

		eve, err := l.dial()
		if err != nil {
			t.Fatal(err)
		}
		defer eve.Close()
		eve.SetDeadline(time.Now().Add(10 * time.Second))
		// Eve's own lines are checked as she reads them; she must read,
		// or the room's writes to her (a synchronous pipe) would stall.
		eveDone := make(chan []string, 1)
		go func() {
			var bad []string
			sc := bufio.NewScanner(eve)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				if why := checkDelivered(sc.Text()); why != "" {
					bad = append(bad, why+": "+sc.Text())
				}
			}
			eveDone <- bad
		}()
		// After the fuzz bytes: a name in case eve has none yet (or chat
		// if she has), then /quit, so that obs sees exactly one leave.
		eve.Write(append(append([]byte{}, data...), "\nzz9fallback\n/quit\n"...))

		obs.SetReadDeadline(time.Now().Add(10 * time.Second))
		sc := bufio.NewScanner(obs)
		sc.Buffer(nil, 1<<20)
		left := false
		for !left && sc.Scan() {
			line := sc.Text()
			if why := checkDelivered(line); why != "" {
				t.Errorf("obs received a line that %s: %q", why, line)
			}
			left = strings.HasPrefix(line, "* ") && strings.Contains(line, " left (")
		}
		if !left {
			t.Fatalf("obs never saw eve leave: %v", sc.Err())
		}
		eve.Close()
		for _, b := range <-eveDone {
			t.Errorf("eve received a line that %s", b)
		}
	})
}

// fuzzJoin joins the room on l as name and returns the connection after
// the welcome.
func fuzzJoin(t *testing.T, l *pipeListener, name string) net.Conn {
	t.Helper()
	c, err := l.dial()
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// The room writes the greeting before it reads the name, and net.Pipe
	// is synchronous: read the greeting first.
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("joining %s: %v", name, err)
		}
		if strings.HasPrefix(line, "* choose a name") {
			break
		}
	}
	if _, err := c.Write([]byte(name + "\n")); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("joining %s: %v", name, err)
		}
		if strings.HasPrefix(line, "* welcome, ") {
			break
		}
	}
	c.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		t.Fatalf("joining %s: %d unexpected bytes after the welcome", name, br.Buffered())
	}
	return c
}

// TestCheckDelivered pins the fuzz invariant itself.
func TestCheckDelivered(t *testing.T) {
	tests := []struct {
		line string
		ok   bool
	}{
		{"* eve joined (2 members)", true},
		{"! unknown command /x; type /help for the list", true},
		{"eve: hello ^[]0;x^G", true},
		{"eve (private): hi", true},
		{"eve: \x1b[2J", false},
		{"eve: \u009b", false},
		{"eve: \xff", false},
		{"forged line", false},
		{"a b: spaces are not in names", false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			if got := checkDelivered(tt.line) == ""; got != tt.ok {
				t.Errorf("checkDelivered(%q) ok: got %v, want %v", tt.line, got, tt.ok)
			}
		})
	}
}
