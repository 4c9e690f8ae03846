package attack

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/parley-edu/parley/capture"
)

// A Relay is Mallory: a TCP relay between members and a room that reads,
// rewrites, flips, replays, drops and injects what the scheme lets her, and
// reports every step as an Event.
//
// NewRelay listens; Serve relays until its context is done or Close is
// called. A Relay is safe for concurrent use: Close may be called from any
// goroutine. Serve owns one goroutine per member connection, and each of
// those owns the two goroutines that pump its directions; all have ended
// when Serve returns.
type Relay struct {
	cfg   Config
	ln    net.Listener
	certs []tls.Certificate // Mallory's own, for tls and mtls
	notes []string
	log   *slog.Logger

	evmu sync.Mutex // serialises calls of cfg.OnEvent

	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup // one per member connection
	nextID atomic.Int64
}

// NewRelay checks cfg, makes Mallory's certificate for tls and mtls when
// cfg has none, and listens on cfg.Listen. Actions that make no sense for
// the scheme are not errors: Notes says why each is left out.
func NewRelay(cfg Config) (*Relay, error) {
	notes, err := cfg.Check()
	if err != nil {
		return nil, err
	}
	switch cfg.Scheme {
	case "aes-cbc", "aes-cbc-hmac":
		cfg.Replace = nil
	case "mtls":
		cfg.Replace, cfg.Flip, cfg.Replay, cfg.Drop, cfg.Inject = nil, nil, 0, 0, ""
	}
	if _, _, err := net.SplitHostPort(cfg.Upstream); err != nil {
		return nil, fmt.Errorf("attack: bad upstream address %q: %w", cfg.Upstream, err)
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	r := &Relay{cfg: cfg, notes: notes, log: cfg.Logger, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Scheme == "tls" || cfg.Scheme == "mtls" {
		r.certs = cfg.Certificates
		if len(r.certs) == 0 {
			c, err := NewMalloryCertificate(nil)
			if err != nil {
				return nil, err
			}
			r.certs = []tls.Certificate{c}
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("attack: failed to listen on %s: %w", cfg.Listen, err)
	}
	r.ln = ln
	return r, nil
}

// Addr returns the address members connect to.
func (r *Relay) Addr() net.Addr { return r.ln.Addr() }

// Notes returns one sentence for every action that NewRelay left out
// because it makes no sense for the scheme.
func (r *Relay) Notes() []string { return r.notes }

// Certificate returns the certificate Mallory presents to tls and mtls
// members, or nil for the other schemes.
func (r *Relay) Certificate() *tls.Certificate {
	if len(r.certs) == 0 {
		return nil
	}
	return &r.certs[0]
}

// Serve accepts and relays member connections until ctx is done or Close
// is called, then closes every connection and returns once all have ended.
// It returns nil after such a stop and the accept error otherwise. A
// failure of one connection (the room being down, a scheme mismatch, a
// refused certificate) is reported as an Event; the relay keeps serving.
func (r *Relay) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()
	var err error
	for {
		c, aerr := r.ln.Accept()
		if aerr != nil {
			if !r.isClosed() {
				err = fmt.Errorf("attack: failed to accept on %s: %w", r.ln.Addr(), aerr)
			}
			break
		}
		if !r.track(c) {
			c.Close()
			break
		}
		id := int(r.nextID.Add(1))
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.untrack(c)
			r.handle(ctx, id, c)
		}()
	}
	r.Close()
	r.wg.Wait()
	return err
}

// Close stops the relay: it closes the listener and every connection. It
// is idempotent.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	return r.ln.Close()
}

func (r *Relay) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *Relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Relay) untrack(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
}

// emit delivers e to the callback, one event at a time.
func (r *Relay) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	r.log.Debug("attack: event", "event", e.String())
	if r.cfg.OnEvent == nil {
		return
	}
	r.evmu.Lock()
	defer r.evmu.Unlock()
	r.cfg.OnEvent(e)
}

// handle relays one member connection: dial the room, open the scheme's
// conversation on both legs, then pump both directions until one ends.
func (r *Relay) handle(ctx context.Context, id int, c net.Conn) {
	defer c.Close()
	s := &session{r: r, id: id, scheme: r.cfg.Scheme}
	d := net.Dialer{Timeout: r.cfg.HandshakeTimeout}
	up, err := d.DialContext(ctx, "tcp", r.cfg.Upstream)
	if err != nil {
		if r.cfg.Recorder != nil {
			if raddr, rerr := net.ResolveTCPAddr("tcp", r.cfg.Upstream); rerr == nil {
				r.cfg.Recorder.Refused(c.LocalAddr(), raddr)
			}
		}
		if !r.isClosed() {
			r.emit(Event{Kind: KindError, Conn: id, Detail: upstreamDown(r.cfg.Upstream, err) + "; closed the member's connection and still listening"})
		}
		return
	}
	if !r.track(up) {
		up.Close()
		return
	}
	defer r.untrack(up)
	s.client = &recConn{Conn: c, us: capture.Server}
	s.up = &recConn{Conn: up, us: capture.Client}
	if rec := r.cfg.Recorder; rec != nil {
		s.client.rc = rec.Open(c.RemoteAddr(), c.LocalAddr())
		s.up.rc = rec.Open(up.LocalAddr(), up.RemoteAddr())
	}
	defer s.client.Close()
	defer s.up.Close()
	r.emit(Event{Kind: KindConnect, Conn: id, Detail: fmt.Sprintf("a member connected from %s; relaying to the room at %s (%s)", c.RemoteAddr(), up.RemoteAddr(), r.cfg.Scheme)})
	s.run()
}

// upstreamDown explains a failed dial of the room in one sentence.
func upstreamDown(addr string, err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("the room at %s is down (connection refused)", addr)
	case isTimeout(err):
		return fmt.Sprintf("the room at %s does not answer (%v)", addr, err)
	}
	return fmt.Sprintf("cannot reach the room at %s: %v", addr, err)
}
