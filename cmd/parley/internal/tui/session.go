package tui

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/schemes"
)

// outKind says what an outgoing line is, which decides whether the wire
// pane shows it and how the room's answer is read.
type outKind int

const (
	outName     outKind = iota // the name we join under
	outPassword                // never shown, never kept in history
	outChat                    // a line for the room
	outCommand                 // a /command other than /quit
	outQuit                    // /quit, as we leave
	outProbe                   // the /whoami that measures the round trip
)

// outgoing is one line for the room, without its newline.
type outgoing struct {
	line string
	kind outKind
}

// shown reports whether the wire pane shows the bytes of o.
func (o outgoing) shown() bool { return o.kind != outPassword && o.kind != outProbe }

// whoami reports whether o asks the room /whoami, whose answer is a line
// starting "* you are ".
func (o outgoing) whoami() bool {
	cmd, _, _ := strings.Cut(strings.TrimSpace(o.line), " ")
	return strings.EqualFold(cmd, "/whoami")
}

// A link carries lines to the room. send queues o and returns at once;
// it reports false when too many lines are waiting. What became of o
// comes back to the program as a sentMsg.
type link interface {
	send(o outgoing) bool
}

// Messages from the session to the program.
type (
	// lineMsg is a line from the room, as it arrived (not yet sanitised).
	lineMsg struct {
		text    string
		at      time.Time
		wire    capture.WireUnit // the unit that carried it
		hasWire bool
		// whoami is set on the answer to a /whoami.
		whoami *whoamiAnswer
	}
	// localMsg is a line from parley itself about the connection.
	localMsg struct {
		text string
		at   time.Time
	}
	// sentMsg reports one outgoing line after it was written.
	sentMsg struct {
		out     outgoing
		at      time.Time
		wire    []capture.WireUnit // for shown lines: the units written
		dropped int                // units written past those kept
		err     error
	}
	// closedMsg reports that the connection ended; err is why.
	closedMsg struct{ err error }
)

// whoamiAnswer is what the answer to a /whoami measured.
type whoamiAnswer struct {
	probe bool          // the /whoami was ours, not the user's
	rtt   time.Duration // from writing /whoami until its answer arrived
}

// maxQueued bounds the lines waiting for the connection.
const maxQueued = 256

// session owns the reading and writing of one connection for the program.
// readLoop and writeLoop each run in their own goroutine, owned by Run:
// readLoop ends when the connection does, writeLoop when stop is called.
type session struct {
	conn schemes.Conn
	wire *capture.WireConn

	mu       sync.Mutex // guards the fields below
	queue    []outgoing
	stopped  bool
	pending  []pendingWhoami // /whoami lines written, oldest first
	whoamiID int
	wake     chan struct{} // holds a value when queue or stopped changed
}

type pendingWhoami struct {
	id    int
	probe bool
	at    time.Time
}

func newSession(conn schemes.Conn, wire *capture.WireConn) *session {
	return &session{conn: conn, wire: wire, wake: make(chan struct{}, 1)}
}

func (s *session) send(o outgoing) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) >= maxQueued {
		return false
	}
	s.queue = append(s.queue, o)
	s.signal()
	return true
}

// stop makes writeLoop return once the line it is writing, if any, is
// written.
func (s *session) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	s.signal()
}

func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next returns the next line to write, waiting for one, and false once
// stopped.
func (s *session) next() (outgoing, bool) {
	for {
		s.mu.Lock()
		switch {
		case s.stopped:
			s.mu.Unlock()
			return outgoing{}, false
		case len(s.queue) > 0:
			o := s.queue[0]
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return o, true
		}
		s.mu.Unlock()
		<-s.wake
	}
}

// writeLoop writes queued lines in order and posts a sentMsg for each.
func (s *session) writeLoop(post func(tea.Msg)) {
	for {
		o, ok := s.next()
		if !ok {
			return
		}
		id := -1
		at := time.Now()
		if o.whoami() {
			id = s.expectWhoami(o.kind == outProbe, at)
		}
		line := []byte(o.line + "\n")
		msg := sentMsg{out: o, at: at}
		if o.shown() {
			msg.wire, msg.dropped, msg.err = s.wire.CaptureWrites(func() error { return s.conn.WriteLines(line) })
		} else {
			msg.err = s.conn.WriteLines(line)
		}
		if msg.err != nil && id >= 0 {
			s.forgetWhoami(id) // the room never got it, so it will not answer
		}
		post(msg)
	}
}

func (s *session) expectWhoami(probe bool, at time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.whoamiID++
	s.pending = append(s.pending, pendingWhoami{id: s.whoamiID, probe: probe, at: at})
	return s.whoamiID
}

func (s *session) forgetWhoami(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.pending {
		if p.id == id {
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			return
		}
	}
}

// answerWhoami matches an answer to the oldest /whoami written: the room
// answers one member's commands in order.
func (s *session) answerWhoami(at time.Time) *whoamiAnswer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return nil
	}
	p := s.pending[0]
	s.pending = s.pending[1:]
	return &whoamiAnswer{probe: p.probe, rtt: at.Sub(p.at)}
}

// readLoop posts every line from the room until the connection ends, and
// then a closedMsg.
func (s *session) readLoop(post func(tea.Msg)) {
	for {
		line, err := s.conn.ReadMessage()
		at := time.Now()
		var se *schemes.SignatureError
		switch {
		case errors.Is(err, schemes.ErrMessageTooLong):
			post(localMsg{text: "! (parley: a line from the server was too long and was skipped)", at: at})
			continue
		case errors.As(err, &se):
			post(localMsg{text: "! WARNING: the next line failed its signature check; it may have been forged or altered in transit:", at: at})
			post(localMsg{text: "! [UNVERIFIED] " + se.Line, at: at})
			continue
		case err != nil:
			post(closedMsg{err: err})
			return
		}
		msg := lineMsg{text: string(line), at: at}
		msg.wire, msg.hasWire = s.wire.LastRead()
		if strings.HasPrefix(msg.text, "* you are ") {
			msg.whoami = s.answerWhoami(at)
		}
		post(msg)
	}
}

// sendError says why a line was not delivered when the connection stays
// usable, and "" when err is fatal.
func sendError(err error) string {
	var se *schemes.SignatureError
	var re *schemes.ReplyError
	switch {
	case errors.As(err, &se):
		return "! WARNING: the room's receipt did not match our signature; the message was not delivered: " + se.Line
	case errors.As(err, &re):
		return fmt.Sprintf("! the room refused the message: %d %s", re.Code, re.Text)
	case errors.Is(err, schemes.ErrMessageTooLong):
		return "! that line is too long for the room; not sent"
	}
	return ""
}
