package room

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parley-edu/parley/schemes"
)

var errNameTaken = errors.New("room: name taken")

// badPadding is what an aes-cbc room started with --padding-oracle says
// about a record with bad padding. INSECURE on purpose: that the room says
// it, and keeps the connection open, is the padding oracle of the lab. The
// scheme only returns ErrBadPadding when that flag is set.
const badPadding = "bad padding: record rejected"

// A member is one joined connection. Its read loop (the goroutine that runs
// Room.run) owns scratch and the token bucket; its write loop owns spare.
type member struct {
	room *Room
	conn schemes.Conn

	// name is written only by the member's own read loop (join, /nick),
	// under room.mu. That goroutine reads it directly; others use nameNow.
	name string

	mu      sync.Mutex
	out     []byte      // lines waiting for the write loop; guarded by mu
	closing bool        // no more lines are queued; guarded by mu
	flush   bool        // write loop flushes out, then closes; guarded by mu
	reason  CloseReason // first reason given; guarded by mu

	wake       chan struct{} // capacity 1: "out has data or closing changed"
	writerDone chan struct{}
	spare      []byte

	addr    string    // the remote host, for the per-address login limit
	joined  time.Time // when Room.join added the member
	err     error     // the protocol error that ended the read loop, if any; owned by it
	before  []*member // who was in the room when this member joined; set by Room.join
	scratch bytes.Buffer
	bucket  tokenBucket
	warned  bool // told "slow down" once
}

func newMember(r *Room, c schemes.Conn) *member {
	m := &member{
		room:       r,
		conn:       c,
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
	if r.cfg.Rate > 0 {
		m.bucket = newTokenBucket(r.cfg.Rate, r.cfg.Burst)
	}
	return m
}

func (m *member) nameLocked() string        { return m.name }
func (m *member) setNameLocked(name string) { m.name = name }

func (m *member) nameNow() string {
	m.room.mu.Lock()
	defer m.room.mu.Unlock()
	return m.name
}

func (m *member) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// enqueue appends line to the member's outbound queue. A member whose queue
// would exceed the room's bound is closed as too slow.
func (m *member) enqueue(line []byte) {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return
	}
	if len(m.out)+len(line) > m.room.cfg.MaxQueue {
		m.mu.Unlock()
		m.kill(ReasonTooSlow)
		return
	}
	wasEmpty := len(m.out) == 0
	m.out = append(m.out, line...)
	m.mu.Unlock()
	if wasEmpty {
		m.signal()
	}
}

// prepend puts lines in front of what is queued. It is for the welcome,
// before the write loop starts.
func (m *member) prepend(lines []byte) {
	m.mu.Lock()
	if !m.closing {
		m.out = append(lines, m.out...)
	}
	m.mu.Unlock()
	m.signal()
}

// finish queues last, if any, as the final line, stops queueing, lets the
// write loop flush what is queued, and then closes the connection. Queueing
// last and closing the queue happen under one lock, so no broadcast can
// slip in after a goodbye.
func (m *member) finish(reason CloseReason, last []byte) {
	m.mu.Lock()
	if !m.closing {
		m.out = append(m.out, last...)
		m.closing, m.flush, m.reason = true, true, reason
	}
	m.mu.Unlock()
	m.signal()
}

// kill closes the connection at once, dropping what is queued.
func (m *member) kill(reason CloseReason) {
	m.mu.Lock()
	first := !m.closing || m.flush
	if !m.closing {
		m.reason = reason
	}
	m.closing, m.flush = true, false
	m.mu.Unlock()
	if first {
		m.conn.Close()
	}
	m.signal()
}

func (m *member) closeReason() CloseReason {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reason
}

// writeLoop sends queued lines, one write per wake-up, until the member is
// closed.
func (m *member) writeLoop() {
	defer close(m.writerDone)
	for range m.wake {
		m.mu.Lock()
		buf := m.out
		m.out = m.spare[:0]
		closing, flush := m.closing, m.flush
		m.mu.Unlock()

		if len(buf) > 0 && (!closing || flush) {
			m.conn.SetWriteDeadline(time.Now().Add(m.room.cfg.WriteTimeout))
			if err := m.conn.WriteLines(buf); err != nil {
				reason := ReasonDisconnected
				if errors.Is(err, os.ErrDeadlineExceeded) {
					reason = ReasonTooSlow
				}
				m.kill(reason)
				return
			}
		}
		m.mu.Lock()
		idle := len(m.out) == 0
		more := closing && m.flush && len(m.out) > 0
		m.mu.Unlock()
		// Under load, reuse the buffer (one allocation per burst, not per
		// line); once the queue is idle, let it go: thousands of idle
		// members must not each hold the memory of their busiest moment.
		if idle && cap(buf) > 512 || cap(buf) > 64<<10 {
			m.spare = nil
		} else {
			m.spare = buf[:0]
		}
		if closing {
			if more {
				m.signal()
				continue
			}
			m.conn.Close()
			return
		}
	}
}

// readName reads name lines until one is valid and free. It returns the
// name the member joined under.
func (m *member) readName() (string, error) {
	identity := m.conn.Peer().Identity
	for {
		line, err := m.conn.ReadMessage()
		if err != nil {
			if errors.Is(err, schemes.ErrMessageTooLong) {
				m.conn.WriteLines(errorLine("that name is far too long; a name has 1-32 characters"))
				continue
			}
			if errors.Is(err, schemes.ErrBadPadding) {
				m.conn.WriteLines(errorLine(badPadding))
				continue
			}
			return "", err
		}
		name := strings.TrimSpace(string(line))
		if identity != "" {
			// mtls: the certificate decides the name.
			if !strings.EqualFold(name, identity) {
				m.conn.WriteLines(noticeLine(fmt.Sprintf("your certificate names you %s; joining as %s", identity, identity)))
			}
			name = identity
		}
		if msg := checkName(name); msg != "" {
			m.conn.WriteLines(errorLine(msg + "; try another name"))
			continue
		}
		if m.room.cfg.Accounts != nil {
			// One login attempt per connection: a failure closes it.
			if m.room.lookup(name) != nil {
				m.conn.WriteLines(errorLine(fmt.Sprintf("%s is already in the room", name)))
				return "", errNameTaken
			}
			if err := m.login(name); err != nil {
				return "", err
			}
		}
		switch err := m.room.join(m, name); {
		case errors.Is(err, errNameTaken):
			if identity != "" {
				m.conn.WriteLines(errorLine(fmt.Sprintf("%s is already in the room with this certificate's name", name)))
				return "", err
			}
			m.conn.WriteLines(errorLine(fmt.Sprintf("the name %s is taken; try another name", name)))
			continue
		case err != nil:
			m.conn.WriteLines(noticeLine("server shutting down"))
			return "", err
		}
		return name, nil
	}
}

// checkName returns why name is not acceptable, or "".
func checkName(name string) string {
	if name == "" {
		return "a name cannot be empty"
	}
	if len(name) > 32 {
		return fmt.Sprintf("a name has at most 32 characters, not %d", utf8.RuneCountInString(name))
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			return fmt.Sprintf("a name may only use letters, digits, _ - and ., not %q", c)
		}
	}
	return ""
}

// readLoop reads the member's lines until it quits or its connection ends,
// and returns why it left.
func (m *member) readLoop() CloseReason {
	for {
		line, err := m.conn.ReadMessage()
		if err != nil {
			if errors.Is(err, schemes.ErrMessageTooLong) {
				m.enqueue(errorLine(fmt.Sprintf("line too long (limit %d bytes); dropped", m.room.cfg.MaxLine)))
				continue
			}
			if errors.Is(err, schemes.ErrBadPadding) {
				m.enqueue(errorLine(badPadding))
				continue
			}
			if r := m.closeReason(); r != 0 {
				return r
			}
			if isDisconnect(err) {
				m.kill(ReasonDisconnected)
				return ReasonDisconnected
			}
			// Like a TLS alert: say why before closing, over the direction
			// that still works (a tampered record breaks only the other).
			m.err = err
			m.finish(ReasonProtocolError, errorLine("closing your connection: "+strings.TrimPrefix(err.Error(), "schemes: ")))
			return ReasonProtocolError
		}
		m.pace()
		if quit := m.handle(line); quit {
			m.finish(ReasonQuit, noticeLine("bye, "+m.name))
			return ReasonQuit
		}
	}
}

// isDisconnect tells an ordinary end of connection from a protocol failure.
func isDisconnect(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne *net.OpError
	return errors.As(err, &ne)
}

// pace takes a token for one line, waiting when the bucket is empty: a
// flooding member is read more slowly, and TCP pushes back on it.
func (m *member) pace() {
	if m.room.cfg.Rate <= 0 {
		return
	}
	wait := m.bucket.take(time.Now())
	if wait <= 0 {
		return
	}
	if !m.warned {
		m.warned = true
		m.enqueue(errorLine("slow down: you are sending faster than the room's rate limit; your lines are being delayed"))
	}
	t := time.NewTimer(wait)
	select {
	case <-t.C:
	case <-m.room.done:
		t.Stop()
	}
}

// handle processes one line from the member and reports whether it quits.
func (m *member) handle(line []byte) (quit bool) {
	if len(line) > m.room.cfg.MaxLine {
		m.enqueue(errorLine(fmt.Sprintf("line too long (limit %d bytes); dropped", m.room.cfg.MaxLine)))
		return false
	}
	if !utf8.Valid(line) {
		m.enqueue(errorLine("line is not valid UTF-8; dropped"))
		return false
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return false
	}
	if line[0] == '/' || line[0] == '.' {
		if quit, ok := m.command(string(line)); ok {
			return quit
		}
	}
	m.scratch.Reset()
	m.scratch.WriteString(m.name)
	m.scratch.WriteString(": ")
	AppendSanitized(&m.scratch, line)
	m.scratch.WriteByte('\n')
	if m.room.cfg.History != nil {
		m.room.histGate.RLock()
		m.record(time.Now(), line)
		m.room.broadcast(m, m.scratch.Bytes())
		m.room.histGate.RUnlock()
		return false
	}
	m.room.broadcast(m, m.scratch.Bytes())
	return false
}

// command runs a command line. ok is false when line is ordinary chat that
// merely starts with a dot.
func (m *member) command(line string) (quit, ok bool) {
	cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	arg = strings.TrimSpace(arg)
	r := m.room
	switch strings.ToLower(cmd) {
	case "/quit", ".quit", ".exit":
		return true, true
	case "/list", ".list":
		names := r.Members()
		m.enqueue(noticeLine(fmt.Sprintf("%d in %s: %s", len(names), r.cfg.Name, strings.Join(names, ", "))))
	case "/help":
		for _, h := range helpText {
			m.enqueue(noticeLine(h))
		}
	case "/whoami":
		m.enqueue(noticeLine(m.whoami()))
	case "/nick":
		m.nick(arg)
	case "/msg":
		m.private(arg)
	case "/history":
		m.historyCommand(arg)
	default:
		if cmd[0] == '.' {
			return false, false
		}
		m.enqueue(errorLine(fmt.Sprintf("unknown command %s; type /help for the list", sanitizeString(cmd))))
	}
	return false, true
}

var helpText = []string{
	"commands:",
	"  /list (or .list)       who is in the room",
	"  /msg NAME TEXT         a private message to NAME",
	"  /nick NEW              change your name",
	"  /whoami                your name, the scheme and your verified identity",
	"  /history [N]           the last N messages (20), in rooms that keep history",
	"  /quit (.exit, .quit)   leave the room",
	"  /help                  this list",
}

func (m *member) whoami() string {
	p := m.conn.Peer()
	s := fmt.Sprintf("you are %s in %s, scheme %s", m.name, m.room.cfg.Name, m.room.props.Name)
	if p.Detail != "" {
		s += " (" + p.Detail + ")"
	}
	switch {
	case p.Identity != "" && m.room.cfg.Accounts != nil:
		return s + "; identity verified by client certificate (" + p.Identity + ") and by password"
	case p.Identity != "":
		return s + "; identity verified by client certificate: " + p.Identity
	case m.room.cfg.Accounts != nil:
		return s + "; identity verified by password (your account " + m.name + ")"
	}
	return s + "; identity not verified: names in this room are self-asserted"
}

func (m *member) nick(name string) {
	if m.conn.Peer().Identity != "" {
		m.enqueue(errorLine("your name is bound to your client certificate; /nick is not available on " + m.room.props.Name))
		return
	}
	if m.room.cfg.Accounts != nil {
		m.enqueue(errorLine("your name is your account's; /nick is not available in a room with logins"))
		return
	}
	if msg := checkName(name); msg != "" {
		m.enqueue(errorLine(msg))
		return
	}
	old, ok := m.room.rename(m, name)
	if !ok {
		m.enqueue(errorLine(fmt.Sprintf("the name %s is taken", name)))
		return
	}
	if old == name {
		return
	}
	line := noticeLine(fmt.Sprintf("%s is now known as %s", old, name))
	m.enqueue(line)
	m.room.broadcast(m, line)
}

func (m *member) private(arg string) {
	to, text, _ := strings.Cut(arg, " ")
	text = strings.TrimSpace(text)
	if to == "" || text == "" {
		m.enqueue(errorLine("usage: /msg NAME TEXT"))
		return
	}
	target := m.room.lookup(to)
	if target == nil {
		m.enqueue(errorLine(fmt.Sprintf("nobody called %s is here; /list shows who is", sanitizeString(to))))
		return
	}
	var b bytes.Buffer
	b.WriteString(m.name)
	b.WriteString(" (private): ")
	AppendSanitized(&b, []byte(text))
	b.WriteByte('\n')
	target.enqueue(b.Bytes())
	b.Reset()
	b.WriteString("* (to " + target.nameNow() + "): ")
	AppendSanitized(&b, []byte(text))
	b.WriteByte('\n')
	m.enqueue(b.Bytes())
}

// AppendSanitized writes s to b with terminal control characters made
// visible (ESC becomes "^[", C1 controls "<U+009B>"), and bytes that are not
// UTF-8 replaced by U+FFFD, so that no peer can drive a terminal with
// escape sequences. The room applies it to every line it relays; parley
// join applies it again to every line it prints.
func AppendSanitized(b *bytes.Buffer, s []byte) {
	if clean(s) {
		b.Write(s)
		return
	}
	for _, r := range string(s) {
		switch {
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20:
			b.WriteByte('^')
			b.WriteByte(byte(r) + '@')
		case r == 0x7f:
			b.WriteString("^?")
		case r >= 0x80 && r < 0xa0:
			fmt.Fprintf(b, "<U+%04X>", r)
		default:
			b.WriteRune(r) // an invalid byte arrives here as U+FFFD
		}
	}
}

// clean reports whether s is UTF-8 without control characters, without
// allocating.
func clean(s []byte) bool {
	ascii := true
	for i, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
		if c >= 0x80 {
			ascii = false
			// C1 controls U+0080-U+009F are encoded as 0xC2 0x80-0x9F.
			if c == 0xc2 && i+1 < len(s) && s[i+1] < 0xa0 {
				return false
			}
		}
	}
	return ascii || utf8.Valid(s)
}

func sanitizeString(s string) string {
	var b bytes.Buffer
	AppendSanitized(&b, []byte(s))
	return b.String()
}

// tokenBucket is a token bucket of capacity burst refilled at rate tokens
// per second. It is owned by one goroutine.
type tokenBucket struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, burst int) tokenBucket {
	return tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// take removes one token and returns how long to wait before the line it
// pays for may be processed.
func (tb *tokenBucket) take(now time.Time) time.Duration {
	if !tb.last.IsZero() {
		tb.tokens = min(tb.burst, tb.tokens+now.Sub(tb.last).Seconds()*tb.rate)
	}
	tb.last = now
	tb.tokens--
	if tb.tokens >= 0 {
		return 0
	}
	return time.Duration(-tb.tokens / tb.rate * float64(time.Second))
}
