package room

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/parley-edu/parley/schemes"
)

// Accounts checks members' passwords. When Config.Accounts is set, a member
// gives a password after its name and joins only if Verify accepts it.
type Accounts interface {
	// Verify reports whether password is name's. It must take the same time
	// whether or not the account exists, and compare in constant time.
	Verify(ctx context.Context, name string, password []byte) (bool, error)
	// UserExists reports whether the account still exists; members whose
	// account is deleted are disconnected.
	UserExists(ctx context.Context, name string) (bool, error)
}

// PasswordPrompt begins the line a room with Accounts sends after the
// name: "* password for NAME:". The client's next line is the password.
const PasswordPrompt = "* password for "

// Login limits: a name or an address that fails too often is locked out for
// a time that doubles with every further failure. An address is allowed
// more failures than a name, because a classroom often shares one address.
const (
	MaxPassword          = 1024 // bytes; longer passwords are refused unhashed
	DefaultNameFailures  = 5
	DefaultAddrFailures  = 20
	DefaultLockout       = 30 * time.Second
	DefaultMaxLockout    = 15 * time.Minute
	DefaultAccountCheck  = 2 * time.Second
	loginFailedLine      = "login failed: wrong name or password, or too many attempts; wait and try again"
	loginUnavailableLine = "login unavailable: the server cannot check passwords right now; try again later"
	maxLimiterEntries    = 100_000
)

// LoginLimits configures the lockout of names and addresses after failed
// logins. Zero values take the defaults.
type LoginLimits struct {
	NameFailures int           // failures of one name before it is locked out
	AddrFailures int           // failures from one address before it is locked out
	Lockout      time.Duration // first lockout; each further failure doubles it
	MaxLockout   time.Duration // longest lockout; failures older than this are forgotten
}

func (l *LoginLimits) setDefaults() {
	if l.NameFailures <= 0 {
		l.NameFailures = DefaultNameFailures
	}
	if l.AddrFailures <= 0 {
		l.AddrFailures = DefaultAddrFailures
	}
	if l.Lockout <= 0 {
		l.Lockout = DefaultLockout
	}
	if l.MaxLockout < l.Lockout {
		l.MaxLockout = max(DefaultMaxLockout, l.Lockout)
	}
}

var errLoginFailed = errors.New("room: login failed")

// login asks for name's password and checks it. Every failure gets the
// same answer, whatever its cause; the log says which it was.
func (m *member) login(name string) error {
	r := m.room
	// A person types the password: it gets a fresh deadline of its own.
	m.conn.SetReadDeadline(time.Now().Add(r.cfg.HandshakeTimeout))
	if err := m.conn.WriteLines([]byte(PasswordPrompt + name + ":\n")); err != nil {
		return err
	}
	password, err := m.conn.ReadMessage()
	tooLong := errors.Is(err, schemes.ErrMessageTooLong) || len(password) > MaxPassword
	if err != nil && !tooLong {
		return err
	}
	// A locked-out name or address is told what everyone else is told, and
	// its attempts neither count nor get checked.
	if wait := r.limiter.locked(name, m.addr, time.Now()); wait > 0 {
		clear(password)
		m.conn.WriteLines(errorLine(loginFailedLine))
		r.log.Warn("login refused: locked out after failed logins", "remote", m.addr, "name", name, "retry_in", wait.Round(time.Second))
		return errLoginFailed
	}
	ok := false
	if !tooLong {
		ok, err = r.cfg.Accounts.Verify(r.ctx, name, password)
		clear(password)
		if err != nil {
			m.conn.WriteLines(errorLine(loginUnavailableLine))
			r.log.Error("login: cannot check the password", "remote", m.addr, "name", name, "err", err)
			return errLoginFailed
		}
	}
	if ok {
		r.limiter.succeeded(name)
		return nil
	}
	r.limiter.failed(name, m.addr, time.Now())
	m.conn.WriteLines(errorLine(loginFailedLine))
	why := "wrong password"
	switch exists, err := r.cfg.Accounts.UserExists(r.ctx, name); {
	case tooLong:
		why = fmt.Sprintf("password over %d bytes", MaxPassword)
	case err == nil && !exists:
		why = "no such account"
	}
	r.log.Warn("login failed", "remote", m.addr, "name", name, "why", why)
	return errLoginFailed
}

// watchAccounts disconnects members whose account has been deleted. It
// runs until the room shuts down.
func (r *Room) watchAccounts() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.AccountCheck)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		for _, m := range *r.members.Load() {
			name := m.nameNow()
			exists, err := r.cfg.Accounts.UserExists(r.ctx, name)
			if err != nil {
				if r.ctx.Err() == nil {
					r.log.Error("cannot check members' accounts", "err", err)
				}
				break
			}
			if !exists {
				r.log.Info("account deleted; disconnecting its member", "name", name)
				m.finish(ReasonAccountDeleted, errorLine("your account was deleted; closing your connection"))
			}
		}
	}
}

// limiter counts failed logins per name and per address.
type limiter struct {
	limits LoginLimits

	mu     sync.Mutex
	byName map[string]*failures // lowercased name; guarded by mu
	byAddr map[string]*failures // host; guarded by mu
}

type failures struct {
	n     int
	last  time.Time
	until time.Time // locked out until then
}

func newLimiter(l LoginLimits) *limiter {
	l.setDefaults()
	return &limiter{limits: l, byName: map[string]*failures{}, byAddr: map[string]*failures{}}
}

// locked returns how long name or addr remains locked out, or 0.
func (l *limiter) locked(name, addr string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for _, f := range []*failures{l.byName[strings.ToLower(name)], l.byAddr[addr]} {
		if f != nil && f.until.After(now) {
			wait = max(wait, f.until.Sub(now))
		}
	}
	return wait
}

func (l *limiter) failed(name, addr string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count(l.byName, strings.ToLower(name), l.limits.NameFailures, now)
	l.count(l.byAddr, addr, l.limits.AddrFailures, now)
}

// count records a failure of key and locks it out once it has failed
// threshold times: for Lockout, doubling with each failure after that.
func (l *limiter) count(m map[string]*failures, key string, threshold int, now time.Time) {
	f := m[key]
	if f == nil || now.Sub(f.last) > l.limits.MaxLockout {
		if f == nil && len(m) >= maxLimiterEntries {
			l.prune(m, now)
		}
		f = &failures{}
		m[key] = f
	}
	f.n++
	f.last = now
	if over := f.n - threshold; over >= 0 {
		d := time.Duration(float64(l.limits.Lockout) * math.Pow(2, float64(min(over, 30))))
		f.until = now.Add(min(d, l.limits.MaxLockout))
	}
}

// prune forgets failures old enough to have expired, so that guessing
// many names cannot grow the maps without bound. When that frees nothing,
// it forgets everything that is not locked out.
func (l *limiter) prune(m map[string]*failures, now time.Time) {
	for k, f := range m {
		if now.Sub(f.last) > l.limits.MaxLockout {
			delete(m, k)
		}
	}
	if len(m) < maxLimiterEntries {
		return
	}
	for k, f := range m {
		if !f.until.After(now) {
			delete(m, k)
		}
	}
}

// succeeded forgets name's failures. The address keeps its count: logging
// in to one's own account must not reset the guessing of others.
func (l *limiter) succeeded(name string) {
	l.mu.Lock()
	delete(l.byName, strings.ToLower(name))
	l.mu.Unlock()
}

// hostOf returns the host part of a remote address, the key of the
// per-address limit.
func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
