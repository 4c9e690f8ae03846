package store

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-edu/parley/room"
	"github.com/parley-edu/parley/schemes"
)

// A room of 100 members chatting at once stores every line, in each
// member's order, in a sealed history: nothing the room accepted is lost.
func TestRoomOf100ChattingLosesNothing(t *testing.T) {
	const members, lines = 100, 20
	db := openNew(t)
	key := make([]byte, KeySize)
	h := openHistory(t, db, "lobby", key)
	plain, err := schemes.New("plain", schemes.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := room.New(room.Config{Scheme: plain, History: h.ForRoom(), Rate: -1, HistoryReplay: -1})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- r.Serve(l) }()

	var wg sync.WaitGroup
	errs := make(chan error, members)
	for i := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- chat(l.Addr().String(), fmt.Sprintf("m%03d", i), lines)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-served

	msgs := last(t, h, members*lines+10)
	if len(msgs) != members*lines {
		t.Fatalf("%d messages stored, want %d", len(msgs), members*lines)
	}
	next := map[string]int{}
	for _, m := range msgs {
		if m.Err != nil {
			t.Fatalf("message %d: %v", m.ID, m.Err)
		}
		if want := fmt.Sprintf("line %d of %s", next[m.Sender], m.Sender); m.Text != want {
			t.Fatalf("message %d is %q, want %q", m.ID, m.Text, want)
		}
		next[m.Sender]++
	}
}

// chat joins addr as name, says n lines, quits and waits for the goodbye.
func chat(addr, name string, n int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	var b strings.Builder
	b.WriteString(name + "\n")
	for i := range n {
		fmt.Fprintf(&b, "line %d of %s\n", i, name)
	}
	b.WriteString("/quit\n")
	if _, err := c.Write([]byte(b.String())); err != nil {
		return err
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("%s: no goodbye: %w", name, err)
		}
		if line == "* bye, "+name+"\n" {
			return nil
		}
	}
}
