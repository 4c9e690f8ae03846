package room

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// memHistory is an in-memory History for the room's tests; the real one
// (room/store) has its own tests of sealing and persistence.
type memHistory struct {
	mu   sync.Mutex
	msgs []Message

	beforeLast func() // if set, runs at the start of Last
}

func (h *memHistory) Append(sender string, t time.Time, text string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, Message{ID: int64(len(h.msgs) + 1), Sender: sender, Time: t, Text: text})
	return nil
}

func (h *memHistory) Last(_ context.Context, n int) ([]Message, error) {
	if h.beforeLast != nil {
		h.beforeLast()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Message(nil), h.msgs[max(0, len(h.msgs)-n):]...), nil
}

func (h *memHistory) texts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var s []string
	for _, m := range h.msgs {
		s = append(s, m.Sender+": "+m.Text)
	}
	return s
}

// historyAfterWelcome joins as name and returns the history lines that
// follow the welcome.
func historyAfterWelcome(t *testing.T, addr, name string) (*client, []string) {
	t.Helper()
	c := dial(t, addr)
	c.until("* choose a name")
	c.send(name)
	c.until("* welcome, " + name)
	return c, readHistory(c)
}

// readHistory reads one /history answer, header to end.
func readHistory(c *client) []string {
	c.t.Helper()
	head := c.line()
	if !strings.HasPrefix(head, "* history: ") {
		c.t.Fatalf("want a history header, got %q", head)
	}
	if head == "* history: nothing has been said here yet" {
		return nil
	}
	var lines []string
	for {
		l := c.line()
		if l == "* history: end" {
			return lines
		}
		lines = append(lines, l)
	}
}

// stripTime removes the timestamp of a history line.
func stripTime(l string) string {
	if rest, ok := strings.CutPrefix(l, "* history ["); ok {
		if _, after, ok := strings.Cut(rest, "] "); ok {
			return after
		}
	}
	return l
}

func TestHistoryReplayAndCommand(t *testing.T) {
	h := &memHistory{}
	_, addr := startRoom(t, Config{History: h, HistoryReplay: 3})

	alice, first := historyAfterWelcome(t, addr, "alice")
	if len(first) != 0 {
		t.Fatalf("first member's history: %q", first)
	}
	for i := 1; i <= 5; i++ {
		alice.send(fmt.Sprint("message ", i))
	}
	alice.send("/msg alice private words") // not history
	alice.until("* (to alice)")
	alice.send("\x1b[31mred")

	bob, replay := historyAfterWelcome(t, addr, "bob")
	var got []string
	for _, l := range replay {
		got = append(got, stripTime(l))
	}
	want := []string{"alice: message 4", "alice: message 5", "alice: ^[[31mred"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("replay on join:\n got %q\nwant %q", got, want)
	}
	if !strings.HasPrefix(replay[0], "* history [") {
		t.Errorf("history line format: %q", replay[0])
	}

	bob.send("/history 100")
	all := readHistory(bob)
	if len(all) != 6 || stripTime(all[0]) != "alice: message 1" {
		t.Errorf("/history 100: %q", all)
	}
	bob.send("/history zero")
	if got := bob.line(); !strings.HasPrefix(got, "! usage: /history") {
		t.Errorf("/history zero: %q", got)
	}
	if texts := h.texts(); len(texts) != 6 || strings.Contains(strings.Join(texts, "|"), "private") {
		t.Errorf("stored: %q", texts)
	}
}

func TestHistoryTamperedLineIsReportedNotShown(t *testing.T) {
	h := &memHistory{}
	h.Append("alice", time.Now(), "hello")
	h.msgs = append(h.msgs, Message{ID: 2, Sender: "mallory", Time: time.Now(), Err: errors.New("tampered")})
	_, addr := startRoom(t, Config{History: h})
	_, replay := historyAfterWelcome(t, addr, "bob")
	if len(replay) != 2 || stripTime(replay[0]) != "alice: hello" ||
		!strings.HasPrefix(replay[1], "! history: message 2 from mallory") || !strings.Contains(replay[1], "integrity check") {
		t.Errorf("replay: %q", replay)
	}
}

func TestNoHistoryRoom(t *testing.T) {
	_, addr := startRoom(t, Config{})
	c := join(t, addr, "alice")
	c.send("/history")
	if got := c.line(); got != "! this room keeps no history" {
		t.Errorf("/history without history: %q", got)
	}
}

// A member who joins while others chat gets every line from the first one
// replayed exactly once: either in the replay or live. (The replay holds at
// most its limit of lines, so lines before it may be missing.)
func TestHistoryJoinWhileChatting(t *testing.T) {
	h := &memHistory{}
	_, addr := startRoom(t, Config{History: h, HistoryReplay: 1000, Rate: -1})
	alice := join(t, addr, "alice")
	stop := make(chan struct{})
	sent := make(chan int)
	go func() {
		i := 0
		for ; ; i++ {
			select {
			case <-stop:
				sent <- i
				return
			default:
			}
			fmt.Fprintf(alice.conn, "line %d\n", i)
		}
	}()
	waitFor(t, "alice's first lines stored", func() bool { return len(h.texts()) >= 50 })
	// Bob's replay is read only after alice has said more since he joined:
	// those lines reach him live and must not be replayed as well.
	h.beforeLast = func() {
		joined := len(h.texts())
		waitFor(t, "alice's lines after bob joined", func() bool { return len(h.texts()) >= joined+20 })
	}
	bob, replay := historyAfterWelcome(t, addr, "bob")
	close(stop)
	n := <-sent
	seen := make([]int, n)
	first := n
	count := func(l string) {
		var i int
		if _, err := fmt.Sscanf(l, "alice: line %d", &i); err != nil || i >= n {
			t.Fatalf("unexpected line %q", l)
		}
		seen[i]++
		first = min(first, i)
	}
	for _, l := range replay {
		count(stripTime(l))
	}
	for seen[n-1] == 0 {
		if l := bob.line(); strings.HasPrefix(l, "alice: ") {
			count(l)
		}
	}
	for i := first; i < n; i++ {
		if seen[i] != 1 {
			t.Errorf("line %d seen %d times", i, seen[i])
		}
	}
}
