// Package room is parley's chat engine. It speaks the room protocol (UTF-8
// text lines: a greeting, a name, chat, commands) over any schemes.Conn, so
// it runs unchanged over every transport scheme.
//
// Each member has a read loop and a write loop. Broadcast only appends the
// formatted line to each member's outbound queue, which is bounded in bytes,
// and wakes the member's write loop; the write loop sends everything queued
// in one write with a deadline. A member that cannot keep up is closed with
// reason "too slow" and nobody else waits for it.
//
// Limits that protect the server: a deadline for the handshake and the name
// (slowloris), a maximum line length, a maximum number of members, a
// per-member token bucket that paces a flooding member by reading it more
// slowly (nothing it sent is dropped), and the outbound queue bound.
//
// Lock order: Room.histGate before Room.mu before member.mu. Functions that need a lock held end
// in Locked.
package room

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-edu/parley/schemes"
)

// Config configures a Room. Zero values take the defaults.
type Config struct {
	Name   string         // room name, default "lobby"
	Scheme schemes.Scheme // required

	MaxMembers       int           // default 10000
	MaxLine          int           // longest chat line in bytes, default 64 KiB
	Rate             float64       // sustained lines per second per member; default 100, negative disables
	Burst            int           // token bucket size, default 500
	HandshakeTimeout time.Duration // scheme handshake plus name, default 10s
	WriteTimeout     time.Duration // one write to a member, default 10s
	MaxQueue         int           // bytes queued for one member before it is "too slow", default 4 MiB

	// Accounts, when set, makes members log in: after the name, the room
	// asks for the account's password. Names are then bound to accounts
	// (no /nick), and members whose account is deleted are disconnected
	// within AccountCheck (default 2s).
	Accounts     Accounts
	LoginLimits  LoginLimits
	AccountCheck time.Duration

	// History, when set, stores every chat line; a member who joins is
	// shown the last HistoryReplay of them (default 20, negative none)
	// and /history N shows more.
	History       History
	HistoryReplay int

	Logger *slog.Logger // default discards
}

// Defaults.
const (
	DefaultName             = "lobby"
	DefaultMaxMembers       = 10000
	DefaultRate             = 100
	DefaultBurst            = 500
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMaxQueue         = 4 << 20
)

// ErrClosed is returned by Serve after Shutdown.
var ErrClosed = errors.New("room: closed")

// CloseReason says why a member left; everyone sees it in the leave notice.
type CloseReason int

const (
	ReasonQuit CloseReason = iota + 1
	ReasonDisconnected
	ReasonTooSlow
	ReasonShutdown
	ReasonProtocolError
	ReasonAccountDeleted
)

func (r CloseReason) String() string {
	switch r {
	case ReasonQuit:
		return "quit"
	case ReasonDisconnected:
		return "disconnected"
	case ReasonTooSlow:
		return "too slow"
	case ReasonShutdown:
		return "kicked by shutdown"
	case ReasonProtocolError:
		return "protocol error"
	case ReasonAccountDeleted:
		return "account deleted"
	}
	return "unknown"
}

// A Room is one chat room served over one scheme. Its methods are safe for
// concurrent use.
type Room struct {
	cfg   Config
	props schemes.Properties
	log   *slog.Logger

	mu        sync.Mutex
	names     map[string]*member // lowercased name -> member; guarded by mu
	listeners map[net.Listener]struct{}
	closing   bool
	pending   int // connections not yet admitted, for MaxMembers

	// members is a copy-on-write snapshot of everyone in the room, so that
	// broadcast takes no room lock.
	members atomic.Pointer[[]*member]

	limiter    *limiter  // failed logins, when cfg.Accounts is set
	watchStart sync.Once // the account watch starts with the first Serve

	// histGate orders chat lines and joins when the room keeps history: a
	// line is stamped, stored and broadcast under its read lock, and a
	// member joins under its write lock. So each line either reached the
	// member's history replay (stamped before it joined) or reaches the
	// member live (stamped after), never both or neither.
	histGate sync.RWMutex
	histMu   sync.Mutex
	histErr  string // the last history failure logged; guarded by histMu

	wg     sync.WaitGroup // every connection's goroutines, and the account watch
	done   chan struct{}  // closed by Shutdown
	ctx    context.Context
	cancel context.CancelFunc // cancels ctx in Shutdown
}

// New returns a room; call Serve to accept members.
func New(cfg Config) (*Room, error) {
	if cfg.Scheme == nil {
		return nil, errors.New("room: no scheme configured")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.MaxMembers <= 0 {
		cfg.MaxMembers = DefaultMaxMembers
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = schemes.DefaultMaxMessage
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.MaxQueue < 2*cfg.MaxLine+256 {
		cfg.MaxQueue = 2*cfg.MaxLine + 256
	}
	if cfg.AccountCheck <= 0 {
		cfg.AccountCheck = DefaultAccountCheck
	}
	if cfg.HistoryReplay == 0 {
		cfg.HistoryReplay = DefaultHistoryReplay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Room{
		cfg:       cfg,
		props:     cfg.Scheme.Properties(),
		log:       cfg.Logger,
		names:     map[string]*member{},
		listeners: map[net.Listener]struct{}{},
		done:      make(chan struct{}),
		limiter:   newLimiter(cfg.LoginLimits),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.members.Store(&[]*member{})
	return r, nil
}

// Name returns the room's name.
func (r *Room) Name() string { return r.cfg.Name }

// Members returns the names of everyone in the room, sorted.
func (r *Room) Members() []string {
	return r.sortedNames(*r.members.Load())
}

// sortedNames returns the sorted names of ms, under one lock.
func (r *Room) sortedNames(ms []*member) []string {
	names := make([]string, 0, len(ms)+1)
	r.mu.Lock()
	for _, m := range ms {
		names = append(names, m.name)
	}
	r.mu.Unlock()
	sort.Strings(names)
	return names
}

// Serve accepts connections on l until Shutdown, and serves each in its own
// goroutines. It returns ErrClosed after Shutdown, or the listener's error.
// Serve does not close l on error; Shutdown does.
func (r *Room) Serve(l net.Listener) error {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return ErrClosed
	}
	r.listeners[l] = struct{}{}
	r.wg.Add(1)
	if r.cfg.Accounts != nil {
		r.watchStart.Do(func() {
			r.wg.Add(1)
			go r.watchAccounts()
		})
	}
	r.mu.Unlock()
	defer r.wg.Done()

	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			select {
			case <-r.done:
				return ErrClosed
			default:
			}
			if !errors.Is(err, net.ErrClosed) {
				// Out of file descriptors, an aborted connection and the
				// like: wait and go on serving those already connected.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				r.log.Warn("accept failed; retrying", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-r.done:
					return ErrClosed
				}
				continue
			}
			return fmt.Errorf("room: accept on %s: %w", l.Addr(), err)
		}
		backoff = 0
		r.mu.Lock()
		if r.closing {
			r.mu.Unlock()
			c.Close()
			return ErrClosed
		}
		r.wg.Add(1)
		r.mu.Unlock()
		go r.serveConn(c)
	}
}

// Shutdown stops accepting, tells every member "* server shutting down",
// flushes what is queued for them, closes them and waits for every goroutine
// the room started. When ctx ends first, remaining connections are closed
// at once and ctx's error is returned after they end. Shutdown is
// idempotent.
func (r *Room) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	if !r.closing {
		r.closing = true
		close(r.done)
		r.cancel()
		for l := range r.listeners {
			l.Close()
		}
	}
	r.mu.Unlock()

	for _, m := range *r.members.Load() {
		m.finish(ReasonShutdown, noticeLine("server shutting down"))
	}
	waited := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		for _, m := range *r.members.Load() {
			m.kill(ReasonShutdown)
		}
		<-waited
		return ctx.Err()
	}
}

// serveConn runs one connection from handshake to leave notice.
func (r *Room) serveConn(c net.Conn) {
	defer r.wg.Done()
	log := r.log.With("remote", c.RemoteAddr().String())

	c.SetDeadline(time.Now().Add(r.cfg.HandshakeTimeout))
	// Until the member has joined, Shutdown does not know it: close the
	// connection ourselves if the room shuts down meanwhile.
	stopWatch := context.AfterFunc(r.ctx, func() { c.Close() })
	defer stopWatch()
	sc, err := r.cfg.Scheme.Server(c)
	if err != nil {
		log.Info("handshake failed", "err", err)
		c.Close()
		return
	}

	m := newMember(r, sc)
	m.addr = hostOf(c.RemoteAddr())

	if !r.admit() {
		sc.WriteLines(errorLine(fmt.Sprintf("room is full (%d members); try again later", r.cfg.MaxMembers)))
		log.Warn("refused: room full", "max_members", r.cfg.MaxMembers)
		sc.Close()
		return
	}
	joined := false
	defer func() {
		if !joined {
			r.unadmit()
		}
	}()

	if err := sc.WriteLines(r.greeting()); err != nil {
		log.Info("greeting failed", "err", err)
		sc.Close()
		return
	}
	name, err := m.readName()
	if err != nil {
		if !errors.Is(err, errLoginFailed) { // login logged its own line
			log.Info("no name", "err", err)
		}
		sc.Close()
		return
	}
	sc.SetReadDeadline(time.Time{})
	sc.SetWriteDeadline(time.Time{})
	joined = true
	if !stopWatch() {
		// Shutdown closed the connection while the name was accepted.
		r.leave(m)
		return
	}
	r.run(m, name, log)
}

// admit reserves a place for a connection that is choosing its name.
func (r *Room) admit() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.names)+r.pending >= r.cfg.MaxMembers {
		return false
	}
	r.pending++
	return true
}

func (r *Room) unadmit() {
	r.mu.Lock()
	r.pending--
	r.mu.Unlock()
}

func (r *Room) greeting() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "* parley room %s (scheme %s)\n", r.cfg.Name, r.props.Name)
	if r.props.Insecure && r.props.Warning != "" {
		fmt.Fprintf(&b, "* WARNING: %s\n", r.props.Warning)
	}
	b.WriteString("* choose a name: 1-32 letters, digits, _ - or .\n")
	return []byte(b.String())
}

// run is the member's life in the room: join, read loop, leave.
func (r *Room) run(m *member, name string, log *slog.Logger) {
	// The welcome, then the history, go before whatever was broadcast since
	// m joined: the write loop is not running yet.
	members := r.sortedNames(append(slices.Clip(m.before), m)) // m.before is a shared snapshot
	first := noticeLine(fmt.Sprintf("welcome, %s. members: %s. type /help for commands", name, strings.Join(members, ", ")))
	if r.cfg.History != nil && r.cfg.HistoryReplay > 0 {
		first = append(first, m.historyLines(r.cfg.HistoryReplay, m.joined)...)
	}
	m.prepend(first)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		m.writeLoop()
	}()

	// Those who were in the room when m joined hear of it; anyone who joined
	// since found m in their welcome's member list instead.
	notice := noticeLine(fmt.Sprintf("%s joined (%d members)", name, len(members)))
	for _, o := range m.before {
		o.enqueue(notice)
	}
	m.before = nil
	log.Info("joined", "name", name, "members", len(members), "identity", m.conn.Peer().Identity)

	reason := m.readLoop()

	r.leave(m)
	r.broadcast(m, noticeLine(fmt.Sprintf("%s left (%s)", m.name, reason)))
	if m.err != nil {
		log.Info("left", "name", m.name, "reason", reason.String(), "err", m.err)
	} else {
		log.Info("left", "name", m.name, "reason", reason.String())
	}
	<-m.writerDone
}

// join adds m under name unless the name is taken or the room is closing.
func (r *Room) join(m *member, name string) error {
	key := strings.ToLower(name)
	if r.cfg.History != nil {
		r.histGate.Lock() // before r.mu; see histGate
		defer r.histGate.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return ErrClosed
	}
	if _, taken := r.names[key]; taken {
		return errNameTaken
	}
	r.names[key] = m
	r.pending--
	m.setNameLocked(name)
	m.before = *r.members.Load()
	r.snapshotLocked()
	m.joined = time.Now()
	return nil
}

func (r *Room) leave(m *member) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := strings.ToLower(m.nameLocked())
	if r.names[key] == m {
		delete(r.names, key)
	}
	r.snapshotLocked()
}

// rename changes m's name unless the new one is taken.
func (r *Room) rename(m *member, name string) (old string, ok bool) {
	key := strings.ToLower(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	old = m.nameLocked()
	if other, taken := r.names[key]; taken && other != m {
		return old, false
	}
	delete(r.names, strings.ToLower(old))
	r.names[key] = m
	m.setNameLocked(name)
	return old, true
}

func (r *Room) snapshotLocked() {
	ms := make([]*member, 0, len(r.names))
	for _, m := range r.names {
		ms = append(ms, m)
	}
	r.members.Store(&ms)
}

// broadcast queues line for everyone except from.
func (r *Room) broadcast(from *member, line []byte) {
	for _, m := range *r.members.Load() {
		if m != from {
			m.enqueue(line)
		}
	}
}

// lookup finds a member by name, case-insensitively.
func (r *Room) lookup(name string) *member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.names[strings.ToLower(name)]
}

func noticeLine(s string) []byte { return []byte("* " + s + "\n") }
func errorLine(s string) []byte  { return []byte("! " + s + "\n") }
