package tui

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/schemes"
)

// fakeRoom serves one plain connection the way a room answers: a
// greeting, a welcome for the name, "* you are" for /whoami, a reply for
// chat, and a goodbye for /quit.
func fakeRoom(t *testing.T, wg *sync.WaitGroup) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c, "* parley room lobby (scheme plain)\n* choose a name: 1-32 letters, digits, _ - or .\n")
		r := bufio.NewScanner(c)
		for r.Scan() {
			line := r.Text()
			var reply string
			switch {
			case line == "alice":
				reply = "* welcome, alice. members: alice. type /help for commands"
			case strings.EqualFold(line, "/whoami"):
				reply = "* you are alice in lobby, scheme plain"
			case line == "/quit":
				io.WriteString(c, "* bye, alice\n")
				return
			default:
				reply = "bob: re " + line
			}
			io.WriteString(c, reply+"\n")
		}
	}()
	return ln.Addr().String()
}

// TestSession runs the session's reader and writer against a room: the
// wire units come with the lines, the /whoami answers are matched to the
// probe or the user, and both goroutines end.
func TestSession(t *testing.T) {
	var wg sync.WaitGroup
	addr := fakeRoom(t, &wg)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	wc := capture.NewWireConn(nc, "plain")
	sch, _ := schemes.New("plain", schemes.Config{})
	conn, err := sch.Client(wc)
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(conn, wc)
	msgs := make(chan tea.Msg, 64)
	wg.Add(2)
	go func() { defer wg.Done(); s.readLoop(func(m tea.Msg) { msgs <- m }) }()
	go func() { defer wg.Done(); s.writeLoop(func(m tea.Msg) { msgs <- m }) }()
	for _, o := range []outgoing{{"alice", outName}, {"/whoami", outProbe}, {"/WHOAMI", outCommand}, {"hello", outChat}, {"/quit", outQuit}} {
		if !s.send(o) {
			t.Fatalf("send %q refused", o.line)
		}
	}

	var lines []lineMsg
	var sent []sentMsg
	collect := func(m tea.Msg) bool {
		switch m := m.(type) {
		case lineMsg:
			lines = append(lines, m)
		case sentMsg:
			sent = append(sent, m)
		case closedMsg:
			return true
		}
		return false
	}
	timeout := time.After(20 * time.Second)
	for done := false; !done; {
		select {
		case m := <-msgs:
			done = collect(m)
		case <-timeout:
			t.Fatal("the connection did not end")
		}
	}
	s.stop()
	conn.Close()
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the session's goroutines did not end")
	}
	// The writer may report /quit after the reader reported the end.
	for len(msgs) > 0 {
		collect(<-msgs)
	}

	wantLines := []string{
		"* parley room lobby (scheme plain)", "* choose a name: 1-32 letters, digits, _ - or .",
		"* welcome, alice. members: alice. type /help for commands",
		"* you are alice in lobby, scheme plain", "* you are alice in lobby, scheme plain",
		"bob: re hello", "* bye, alice",
	}
	if len(lines) != len(wantLines) {
		t.Fatalf("got %d lines, want %d: %+v", len(lines), len(wantLines), lines)
	}
	for i, l := range lines {
		if l.text != wantLines[i] || string(l.wire.Bytes()) != wantLines[i]+"\n" {
			t.Errorf("line %d: got %q carried by %q, want %q", i, l.text, l.wire.Bytes(), wantLines[i])
		}
	}
	if a := lines[3].whoami; a == nil || !a.probe || a.rtt <= 0 {
		t.Errorf("the probe's answer: got %+v, want a probe with a round trip", a)
	}
	if a := lines[4].whoami; a == nil || a.probe {
		t.Errorf("the user's /whoami answer: got %+v, want the user's", a)
	}
	if len(sent) != 5 {
		t.Fatalf("got %d sentMsgs, want 5", len(sent))
	}
	for _, m := range sent {
		want := ""
		if m.out.shown() {
			want = m.out.line + "\n"
		}
		var got string
		for _, u := range m.wire {
			got += string(u.Bytes())
		}
		if m.err != nil || got != want {
			t.Errorf("%q: got wire %q, err %v; want %q", m.out.line, got, m.err, want)
		}
	}
}
