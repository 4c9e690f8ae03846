package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-edu/parley/room"
	"github.com/parley-edu/parley/schemes"
)

// JoinError reports that the room refused a name or the join went wrong
// after the handshake.
type JoinError struct {
	Name string
	Line string // the room's "! ..." line, or what was read instead
}

func (e *JoinError) Error() string {
	return fmt.Sprintf("scenario: the room refused %s: %s", e.Name, e.Line)
}

// A Client is one joined connection without a reader: the caller owns Conn
// and reads and writes it as it likes (the bench does). Raw counts the bytes
// that crossed the network below the scheme.
type Client struct {
	Name string
	Conn schemes.Conn
	Raw  *CountingConn
	// Handshake is the time from dialling to the end of the scheme's
	// handshake (TCP connect included).
	Handshake time.Duration
	// Greeting holds the room's lines before the welcome, the welcome
	// included.
	Greeting []string

	password string // sent when the room asks for one
}

// Connect dials the scenario's address and runs the scheme's client
// handshake as name (mtls presents name's certificate), without joining
// the room. The caller owns and must close the returned Conn.
func (s *Scenario) Connect(name string) (schemes.Conn, *CountingConn, time.Duration, error) {
	sch, err := s.ClientScheme(name)
	if err != nil {
		return nil, nil, 0, err
	}
	start := time.Now()
	nc, err := net.DialTimeout("tcp", s.Addr(), s.opts.Timeout)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("scenario: failed to connect to %s: %w", s.Addr(), err)
	}
	raw := &CountingConn{Conn: nc}
	raw.SetDeadline(time.Now().Add(s.opts.Timeout))
	c, err := sch.Client(raw)
	took := time.Since(start)
	if err != nil {
		nc.Close()
		return nil, nil, 0, fmt.Errorf("scenario: %s handshake as %s failed: %w", s.opts.Scheme, name, err)
	}
	raw.SetDeadline(time.Time{})
	return c, raw, took, nil
}

// JoinClient connects as name and joins the room: it reads the greeting,
// sends the name and waits for the welcome. A refused name returns a
// *JoinError.
func (s *Scenario) JoinClient(name string) (*Client, error) {
	c, raw, took, err := s.Connect(name)
	if err != nil {
		return nil, err
	}
	cl := &Client{Name: name, Conn: c, Raw: raw, Handshake: took, password: s.opts.Passwords[name]}
	if err := cl.join(s.opts.Timeout); err != nil {
		c.Close()
		return nil, err
	}
	return cl, nil
}

func (cl *Client) join(timeout time.Duration) error {
	cl.Conn.SetReadDeadline(time.Now().Add(timeout))
	defer cl.Conn.SetReadDeadline(time.Time{})
	sent := false
	for {
		line, err := cl.Conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("scenario: joining as %s: %w", cl.Name, err)
		}
		text := string(line)
		cl.Greeting = append(cl.Greeting, text)
		switch {
		case strings.HasPrefix(text, "* choose a name") && !sent:
			cl.Conn.SetWriteDeadline(time.Now().Add(timeout))
			err := cl.Conn.WriteLines([]byte(cl.Name + "\n"))
			cl.Conn.SetWriteDeadline(time.Time{})
			if err != nil {
				return fmt.Errorf("scenario: joining as %s: %w", cl.Name, err)
			}
			sent = true
		case strings.HasPrefix(text, room.PasswordPrompt) && sent:
			cl.Conn.SetWriteDeadline(time.Now().Add(timeout))
			err := cl.Conn.WriteLines([]byte(cl.password + "\n"))
			cl.Conn.SetWriteDeadline(time.Time{})
			if err != nil {
				return fmt.Errorf("scenario: logging in as %s: %w", cl.Name, err)
			}
		case strings.HasPrefix(text, "* welcome, "):
			return nil
		case strings.HasPrefix(text, "! "):
			return &JoinError{Name: cl.Name, Line: text}
		}
	}
}

// A Bot is a scripted member of the room. Its reader goroutine collects
// every line the room sends until the connection ends; Close ends it and
// waits for it. A Bot's methods are safe for concurrent use.
type Bot struct {
	Name string
	// Handshake is the time from dialling to the end of the scheme's
	// handshake.
	Handshake time.Duration
	// Greeting holds the room's lines up to the welcome.
	Greeting []string
	Peer     schemes.Peer

	conn    schemes.Conn
	raw     *CountingConn
	timeout time.Duration

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced when lines or err change
	err     error         // why the reader stopped: io.EOF for an orderly end
	done    chan struct{} // closed when the reader ends
	closed  atomic.Bool
}

// Join connects a bot named name (mtls: with its own certificate and
// signing key) and joins the room. Close of the scenario closes the bot.
func (s *Scenario) Join(name string) (*Bot, error) {
	cl, err := s.JoinClient(name)
	if err != nil {
		return nil, err
	}
	b := &Bot{
		Name: name, Handshake: cl.Handshake, Greeting: cl.Greeting, Peer: cl.Conn.Peer(),
		conn: cl.Conn, raw: cl.Raw, timeout: s.opts.Timeout,
		changed: make(chan struct{}), done: make(chan struct{}),
	}
	if err := s.addBot(b); err != nil {
		cl.Conn.Close()
		return nil, err
	}
	go b.read()
	return b, nil
}

func (b *Bot) read() {
	defer close(b.done)
	for {
		line, err := b.conn.ReadMessage()
		var se *schemes.SignatureError
		switch {
		case err == nil:
			b.update(string(line), nil)
		case errors.Is(err, schemes.ErrMessageTooLong), errors.As(err, &se):
			// Not fatal: note it as a line the bot saw, marked.
			b.update("!! "+err.Error(), nil)
		default:
			if b.closed.Load() || errors.Is(err, net.ErrClosed) {
				err = io.EOF
			}
			b.update("", err)
			return
		}
	}
}

func (b *Bot) update(line string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.err = err
	} else {
		b.lines = append(b.lines, line)
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

// Say sends one chat line (or command) to the room.
func (b *Bot) Say(text string) error {
	if strings.ContainsAny(text, "\r\n") {
		return fmt.Errorf("scenario: %s: a line must not contain a line break", b.Name)
	}
	return b.Send([]byte(text + "\n"))
}

// Send sends raw room lines, each terminated by '\n', in one write where
// the scheme allows.
func (b *Bot) Send(lines []byte) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.conn.SetWriteDeadline(time.Now().Add(b.timeout))
	defer b.conn.SetWriteDeadline(time.Time{})
	if err := b.conn.WriteLines(lines); err != nil {
		return fmt.Errorf("scenario: %s failed to send: %w", b.Name, err)
	}
	return nil
}

// Lines returns every line the bot received after its welcome.
func (b *Bot) Lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lines...)
}

// WaitFor waits until a line received after the welcome satisfies match,
// and returns it. It fails when ctx ends, after the bot's timeout, or when
// the connection ends first.
func (b *Bot) WaitFor(ctx context.Context, what string, match func(line string) bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	seen := 0
	for {
		b.mu.Lock()
		lines, err, changed := b.lines, b.err, b.changed
		b.mu.Unlock()
		for _, l := range lines[seen:] {
			if match(l) {
				return l, nil
			}
		}
		seen = len(lines)
		if err != nil {
			return "", fmt.Errorf("scenario: %s waiting for %s: the connection ended: %w", b.Name, what, err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return "", fmt.Errorf("scenario: %s waiting for %s: %w", b.Name, what, ctx.Err())
		}
	}
}

// WaitLine waits until the bot has received exactly line.
func (b *Bot) WaitLine(ctx context.Context, line string) error {
	_, err := b.WaitFor(ctx, fmt.Sprintf("%q", line), func(l string) bool { return l == line })
	return err
}

// BytesSent and BytesReceived count what crossed the network below the
// scheme on the bot's connection, handshake included.
func (b *Bot) BytesSent() int64     { return b.raw.Written() }
func (b *Bot) BytesReceived() int64 { return b.raw.ReadBytes() }

// Quit sends /quit and waits for the room to close the connection, so that
// the capture shows an orderly end; then it closes the bot.
func (b *Bot) Quit(ctx context.Context) error {
	err := b.Say("/quit")
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, b.timeout)
		select {
		case <-b.done:
		case <-ctx.Done():
			err = fmt.Errorf("scenario: %s: the room did not close the connection after /quit: %w", b.Name, ctx.Err())
		}
		cancel()
	}
	b.Close()
	return err
}

// Close closes the bot's connection and waits for its reader to end. It is
// idempotent.
func (b *Bot) Close() error {
	var err error
	if !b.closed.Swap(true) {
		err = b.conn.Close()
	}
	<-b.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Err returns why the bot's connection ended (io.EOF for an orderly end),
// or nil while it is open.
func (b *Bot) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// A CountingConn counts the bytes read and written through a net.Conn. It
// is safe for concurrent use, as net.Conn is.
type CountingConn struct {
	net.Conn
	read, written atomic.Int64
}

func (c *CountingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *CountingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// ReadBytes and Written report the bytes read and written so far.
func (c *CountingConn) ReadBytes() int64 { return c.read.Load() }
func (c *CountingConn) Written() int64   { return c.written.Load() }
