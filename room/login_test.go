package room

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// memAccounts is an in-memory Accounts for the room's tests; the real one
// (room/store) has its own tests of hashing and timing.
type memAccounts struct {
	mu       sync.Mutex
	users    map[string]string
	verified int
	fail     error
}

func newMemAccounts(pairs ...string) *memAccounts {
	a := &memAccounts{users: map[string]string{}}
	for i := 0; i < len(pairs); i += 2 {
		a.users[strings.ToLower(pairs[i])] = pairs[i+1]
	}
	return a
}

func (a *memAccounts) Verify(_ context.Context, name string, password []byte) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.verified++
	if a.fail != nil {
		return false, a.fail
	}
	want, ok := a.users[strings.ToLower(name)]
	return ok && subtle.ConstantTimeCompare([]byte(want), password) == 1, nil
}

func (a *memAccounts) UserExists(_ context.Context, name string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.users[strings.ToLower(name)]
	return ok, nil
}

func (a *memAccounts) delete(name string) {
	a.mu.Lock()
	delete(a.users, strings.ToLower(name))
	a.mu.Unlock()
}

func (a *memAccounts) verifications() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.verified
}

// lockedBuffer collects a room's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// login dials addr and logs in as name with password, returning the client
// and the room's answer to the password.
func login(t *testing.T, addr, name, password string) (*client, string) {
	t.Helper()
	c := dial(t, addr)
	c.until("* choose a name")
	c.send(name)
	if got := c.line(); got != "* password for "+name+":" {
		t.Fatalf("after the name: %q, want the password prompt", got)
	}
	c.send(password)
	return c, c.line()
}

func TestLogin(t *testing.T) {
	var log lockedBuffer
	_, addr := startRoom(t, Config{
		Accounts: newMemAccounts("alice", "correct horse", "bob", "battery staple"),
		Logger:   slog.New(slog.NewTextHandler(&log, nil)),
	})

	c, answer := login(t, addr, "alice", "correct horse")
	if !strings.HasPrefix(answer, "* welcome, alice.") {
		t.Fatalf("right password: %q", answer)
	}
	c.send("/whoami")
	if got := c.until("* you are"); !strings.Contains(got, "identity verified by password") {
		t.Errorf("whoami: %q", got)
	}
	c.send("/nick mallory")
	if got := c.until("! "); !strings.Contains(got, "/nick is not available") {
		t.Errorf("/nick in a room with logins: %q", got)
	}

	// Wrong password and unknown user get the same answer, and the room
	// closes the connection.
	var answers []string
	for _, try := range [][2]string{{"bob", "wrong"}, {"nobody", "anything"}} {
		c, answer := login(t, addr, try[0], try[1])
		answers = append(answers, answer)
		if rest := c.expectEOF(); len(rest) != 0 {
			t.Errorf("%s: more lines after the failure: %q", try[0], rest)
		}
	}
	if answers[0] != answers[1] || !strings.HasPrefix(answers[0], "! login failed") {
		t.Errorf("answers differ or are not failures: %q", answers)
	}
	// One log line each, and the log tells them apart.
	waitFor(t, "two login failures logged", func() bool { return strings.Count(log.String(), "login failed") == 2 })
	logged := log.String()
	for _, want := range []string{"name=bob why=\"wrong password\"", "name=nobody why=\"no such account\""} {
		if !strings.Contains(logged, want) {
			t.Errorf("log lacks %s:\n%s", want, logged)
		}
	}
	if strings.Contains(logged, "wrong\n") || strings.Contains(logged, "anything") {
		t.Errorf("the log holds a password:\n%s", logged)
	}

	// The name is already logged in.
	c = dial(t, addr)
	c.until("* choose a name")
	c.send("ALICE")
	if got := c.line(); !strings.Contains(got, "already in the room") {
		t.Errorf("second login of alice: %q", got)
	}
}

func TestLoginPasswordTooLong(t *testing.T) {
	accounts := newMemAccounts("alice", strings.Repeat("x", MaxPassword+1))
	_, addr := startRoom(t, Config{Accounts: accounts})
	_, answer := login(t, addr, "alice", strings.Repeat("x", MaxPassword+1))
	if !strings.HasPrefix(answer, "! login failed") {
		t.Fatalf("password over %d bytes: %q", MaxPassword, answer)
	}
	if n := accounts.verifications(); n != 0 {
		t.Errorf("an over-long password was checked %d times; it should be refused unhashed", n)
	}
}

func TestLoginUnavailable(t *testing.T) {
	accounts := newMemAccounts("alice", "pw")
	accounts.fail = errors.New("disk I/O error")
	_, addr := startRoom(t, Config{Accounts: accounts})
	_, answer := login(t, addr, "alice", "pw")
	if !strings.HasPrefix(answer, "! login unavailable") {
		t.Fatalf("when the accounts cannot be read: %q", answer)
	}
}

func TestLockoutPerNameAndAddress(t *testing.T) {
	accounts := newMemAccounts("alice", "right", "bob", "right")
	_, addr := startRoom(t, Config{
		Accounts:    accounts,
		LoginLimits: LoginLimits{NameFailures: 3, AddrFailures: 5, Lockout: time.Hour},
	})
	for i := range 3 {
		if _, answer := login(t, addr, "alice", fmt.Sprint("guess", i)); !strings.HasPrefix(answer, "! login failed") {
			t.Fatalf("guess %d: %q", i, answer)
		}
	}
	// alice is locked out: even the right password fails, unchecked.
	before := accounts.verifications()
	if _, answer := login(t, addr, "alice", "right"); !strings.HasPrefix(answer, "! login failed") {
		t.Fatalf("right password while locked out: %q", answer)
	}
	if accounts.verifications() != before {
		t.Error("a locked-out login was checked")
	}
	// bob is not locked, until the address has failed 5 times in all.
	if _, answer := login(t, addr, "bob", "right"); !strings.HasPrefix(answer, "* welcome, bob") {
		t.Fatalf("bob from the same address: %q", answer)
	}
	for i := range 2 {
		login(t, addr, "carol", fmt.Sprint("guess", i))
	}
	if _, answer := login(t, addr, "dave", "right"); !strings.HasPrefix(answer, "! login failed") {
		t.Fatalf("after 5 failures from one address: %q", answer)
	}
}

func TestLimiterBacksOff(t *testing.T) {
	l := newLimiter(LoginLimits{NameFailures: 2, AddrFailures: 100, Lockout: time.Minute, MaxLockout: 10 * time.Minute})
	now := time.Unix(1_000_000, 0)
	var waits []time.Duration
	for range 7 {
		l.failed("Alice", "10.0.0.1", now)
		waits = append(waits, l.locked("alice", "10.0.0.2", now))
	}
	want := []time.Duration{0, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("lockouts %v, want %v", waits, want)
	}
	if w := l.locked("alice", "", now.Add(10*time.Minute)); w != 0 {
		t.Errorf("still locked after the longest lockout: %v", w)
	}
	// Failures older than the longest lockout are forgotten.
	l.failed("alice", "10.0.0.1", now.Add(21*time.Minute))
	if w := l.locked("alice", "", now.Add(21*time.Minute)); w != 0 {
		t.Errorf("one failure after a long pause locks out for %v", w)
	}
	// A success forgets the name's failures.
	l.failed("alice", "10.0.0.1", now.Add(22*time.Minute))
	l.succeeded("ALICE")
	if w := l.locked("alice", "", now.Add(22*time.Minute)); w != 0 {
		t.Errorf("locked after a success: %v", w)
	}
}

func TestLimiterIsBounded(t *testing.T) {
	l := newLimiter(LoginLimits{NameFailures: 1000, AddrFailures: 1000})
	now := time.Unix(1_000_000, 0)
	for i := range maxLimiterEntries + 10 {
		l.failed(fmt.Sprint("n", i), "10.0.0.1", now)
	}
	if n := len(l.byName); n > maxLimiterEntries {
		t.Errorf("%d names remembered, bound %d", n, maxLimiterEntries)
	}
}

func TestDeletedAccountIsDisconnected(t *testing.T) {
	accounts := newMemAccounts("alice", "a", "bob", "b")
	_, addr := startRoom(t, Config{Accounts: accounts, AccountCheck: 20 * time.Millisecond})
	alice, _ := login(t, addr, "alice", "a")
	bob, _ := login(t, addr, "bob", "b")
	alice.until("* bob joined")
	accounts.delete("bob")
	if got := bob.expectEOF(); len(got) == 0 || got[len(got)-1] != "! your account was deleted; closing your connection" {
		t.Errorf("bob's last lines: %q", got)
	}
	if got := alice.until("* bob left"); got != "* bob left (account deleted)" {
		t.Errorf("alice saw %q", got)
	}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
