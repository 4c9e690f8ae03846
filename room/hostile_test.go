package room

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink safe for the room's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHostileConnectionsDoNotDisturbMembers throws 1,000 hostile
// connections at a room in about a second — random bytes, resets in the
// middle of a line, half-open connections that never speak — while two
// members chat. The members lose nothing, and each incident is one log
// line, never a stack trace.
func TestHostileConnectionsDoNotDisturbMembers(t *testing.T) {
	var logs syncBuffer
	_, addr := startRoom(t, Config{
		HandshakeTimeout: 300 * time.Millisecond,
		Logger:           slog.New(slog.NewTextHandler(&logs, nil)),
	})
	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob")
	alice.until("* bob joined")

	const hostile = 1000
	var wg sync.WaitGroup
	start := time.Now()
	for i := range hostile {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Errorf("hostile dial %d: %v", i, err)
				return
			}
			defer c.Close()
			switch i % 3 {
			case 0: // random bytes, then hang up
				junk := make([]byte, 512)
				rand.Read(junk)
				c.Write(junk)
			case 1: // a reset in the middle of a name line
				c.Write([]byte("mallo"))
				c.(*net.TCPConn).SetLinger(0)
			case 2: // half-open: says nothing until the deadline closes it
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				var buf [4096]byte
				for {
					if _, err := c.Read(buf[:]); err != nil {
						return
					}
				}
			}
		}()
		if i%100 == 99 {
			// About 1,000 connects per second.
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * time.Millisecond)))
		}
	}
	// Meanwhile the members chat, and every line arrives in order.
	for i := range 50 {
		alice.send("steady " + string(rune('A'+i%26)))
	}
	// (Random bytes may happen to hold a valid name line, and such a
	// connection joins and leaves like any member: skip notices.)
	for i := range 50 {
		if got, want := bob.until("alice: "), "alice: steady "+string(rune('A'+i%26)); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	wg.Wait()
	alice.send("after the storm")
	if got := bob.until("alice: "); got != "alice: after the storm" {
		t.Errorf("got %q", got)
	}
	if s := logs.String(); strings.Contains(s, "goroutine ") || strings.Contains(s, "panic") {
		t.Errorf("logs contain a stack trace or panic:\n%s", s)
	}
}
