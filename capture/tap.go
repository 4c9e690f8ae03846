package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// TapConfig configures a Tap.
type TapConfig struct {
	// Listen is the address clients connect to, such as "127.0.0.1:7001"
	// (port 0 picks a free one; see Tap.Addr).
	Listen string
	// Upstream is the room's address; every client connection is relayed
	// to it.
	Upstream string
	// KeyLogPath names the room's TLS key log (NSS format). The tap reads it
	// as it grows and embeds the keys in the capture file.
	KeyLogPath string
	// Logger receives per-connection events and errors; nil discards them.
	Logger *slog.Logger
}

// Timing of a Tap's relays.
const (
	tapDialTimeout   = 10 * time.Second
	tapHalfCloseWait = 2 * time.Second // how long a half-closed relay waits for the other side to finish
	tapKeyLogPoll    = 200 * time.Millisecond
)

// A Tap is a TCP relay between clients and a room that records both
// directions of every connection through a Recorder. It needs no
// privileges and works on every OS.
//
// NewTap listens; Serve relays until its context is done or Close is
// called; WriteFile writes what was recorded. A Tap is safe for concurrent
// use: WriteFile may be called while Serve runs, and Close from any
// goroutine.
type Tap struct {
	cfg    TapConfig
	ln     net.Listener
	rec    *Recorder
	log    *slog.Logger
	follow *keyLogFollower

	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup // one per relay goroutine
}

// NewTap listens on cfg.Listen. The upstream is dialled per connection,
// so it need not be up yet.
func NewTap(cfg TapConfig) (*Tap, error) {
	if cfg.Upstream == "" {
		return nil, errors.New("capture: tap needs an upstream address")
	}
	if _, _, err := net.SplitHostPort(cfg.Upstream); err != nil {
		return nil, fmt.Errorf("capture: bad upstream address %q: %w", cfg.Upstream, err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("capture: tap failed to listen on %s: %w", cfg.Listen, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tap{cfg: cfg, ln: ln, rec: NewRecorder(), log: log, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	if cfg.KeyLogPath != "" {
		t.follow = &keyLogFollower{path: cfg.KeyLogPath, kl: t.rec.keys}
	}
	return t, nil
}

// Addr returns the address the tap listens on.
func (t *Tap) Addr() net.Addr { return t.ln.Addr() }

// Recorder returns the tap's recorder.
func (t *Tap) Recorder() *Recorder { return t.rec }

// Serve accepts and relays connections until ctx is done or Close is
// called, then closes every relay and returns once all have ended. It
// returns nil after such a stop and the accept error otherwise. A failure of
// one connection (such as the upstream being down) is logged and closes
// that client's connection; the tap keeps serving.
func (t *Tap) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		var tick <-chan time.Time
		if t.follow != nil {
			tk := time.NewTicker(tapKeyLogPoll)
			defer tk.Stop()
			tick = tk.C
		}
		for {
			select {
			case <-ctx.Done():
				t.Close()
				return
			case <-t.done:
				return
			case <-tick:
				t.pollKeyLog()
			}
		}
	}()
	var err error
	for {
		c, aerr := t.ln.Accept()
		if aerr != nil {
			if !t.isClosed() {
				err = fmt.Errorf("capture: tap failed to accept on %s: %w", t.ln.Addr(), aerr)
			}
			break
		}
		if !t.track(c) {
			c.Close()
			break
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			defer t.untrack(c)
			t.relay(ctx, c)
		}()
	}
	cancel()
	t.Close()
	t.wg.Wait()
	bg.Wait()
	t.pollKeyLog()
	return err
}

// Close stops the tap: it closes the listener and every relayed connection.
// It is idempotent.
func (t *Tap) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	return t.ln.Close()
}

// WriteFile writes everything recorded so far to a pcapng file at path, with
// the TLS keys known so far in a Decryption Secrets Block and in the key log
// beside it.
func (t *Tap) WriteFile(path string) error {
	t.pollKeyLog()
	return t.rec.WriteFile(path)
}

func (t *Tap) pollKeyLog() {
	if t.follow == nil {
		return
	}
	if err := t.follow.poll(); err != nil {
		t.log.Warn("capture: failed to read key log", "path", t.cfg.KeyLogPath, "err", err)
	}
}

func (t *Tap) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

func (t *Tap) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Tap) untrack(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
}

// relay connects client to the upstream and copies both ways, recording
// everything, until both directions end.
func (t *Tap) relay(ctx context.Context, client net.Conn) {
	defer client.Close()
	d := net.Dialer{Timeout: tapDialTimeout}
	up, err := d.DialContext(ctx, "tcp", t.cfg.Upstream)
	if err != nil {
		t.log.Error("capture: upstream unreachable; closing the client connection",
			"client", client.RemoteAddr().String(), "upstream", t.cfg.Upstream, "err", err)
		if raddr, rerr := net.ResolveTCPAddr("tcp", t.cfg.Upstream); rerr == nil {
			t.rec.Refused(client.RemoteAddr(), raddr)
		}
		return
	}
	if !t.track(up) {
		up.Close()
		return
	}
	defer t.untrack(up)
	defer up.Close()
	rc := t.rec.Open(client.RemoteAddr(), up.RemoteAddr())
	t.log.Info("capture: relaying", "client", client.RemoteAddr().String(), "upstream", up.RemoteAddr().String())

	p := &pipe{conns: [2]net.Conn{Client: client, Server: up}, rc: rc, log: t.log}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.copy(Client) }()
	go func() { defer wg.Done(); p.copy(Server) }()
	wg.Wait()
}

// pipe is one relayed connection: two copy loops over the two conns.
type pipe struct {
	conns [2]net.Conn
	rc    *RecordedConn
	log   *slog.Logger

	mu     sync.Mutex
	ended  [2]bool // direction from side has ended
	failed bool    // a reset or error ended the whole connection
}

// copy relays what side sends to the other side until side closes or
// fails. An orderly close is recorded as FIN and passed on as a half-close;
// the other side then has tapHalfCloseWait to finish before both are closed.
// A reset or error is recorded as RST and closes both at once (with a reset
// towards the other side, as it happened).
func (p *pipe) copy(from Side) {
	src, dst := p.conns[from], p.conns[from.other()]
	buf := make([]byte, 32<<10)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			p.rc.Data(from, buf[:n])
			if _, werr := dst.Write(buf[:n]); werr != nil {
				p.fail(from.other(), werr)
				return
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				p.halfClose(from)
			} else {
				p.fail(from, rerr)
			}
			return
		}
	}
}

func (p *pipe) halfClose(from Side) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed {
		return
	}
	p.rc.Close(from)
	p.ended[from] = true
	dst := p.conns[from.other()]
	if p.ended[from.other()] {
		p.conns[Client].Close()
		p.conns[Server].Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		// Let the other side finish what it is sending, briefly.
		dst.SetReadDeadline(time.Now().Add(tapHalfCloseWait))
		return
	}
	p.rc.Close(from.other())
	p.conns[Client].Close()
	p.conns[Server].Close()
}

func (p *pipe) fail(side Side, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed {
		return
	}
	p.failed = true
	if p.ended[Client] && p.ended[Server] {
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && p.ended[side.other()] {
		// The half-close wait ran out: close in an orderly way.
		p.rc.Close(side)
	} else if !errors.Is(err, net.ErrClosed) {
		p.rc.Reset(side)
		p.log.Warn("capture: connection failed", "side", side.String(),
			"client", p.conns[Client].RemoteAddr().String(), "err", err)
		if tc, ok := p.conns[side.other()].(*net.TCPConn); ok {
			tc.SetLinger(0) // pass the reset on
		}
	} else {
		// The tap itself is shutting down.
		p.rc.Close(Server)
		p.rc.Close(Client)
	}
	p.conns[Client].Close()
	p.conns[Server].Close()
}
