package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// addUser runs 'parley users add' with the password on stdin.
func addUser(t *testing.T, home, name, password string) {
	t.Helper()
	r := runParleyEnv(t, password+"\n", []string{"PARLEY_HOME=" + home}, "users", "add", name, "--password-stdin")
	if r.code != 0 {
		t.Fatalf("users add %s: exit %d\n%s", name, r.code, r.stderr)
	}
}

// stopServe ends a serve process as Ctrl-C would and waits for it.
func stopServe(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, p.Stderr())
	}
}

// loginRaw logs in over plain as name with password and returns the
// client and the room's answer.
func loginRaw(t *testing.T, addr, name, password string) (*rawClient, string) {
	t.Helper()
	c := dialRaw(t, addr)
	c.until("* choose a name")
	c.send(name)
	if got := c.line(); got != "* password for "+name+":" {
		t.Fatalf("after the name: %q, want the password prompt", got)
	}
	c.send(password)
	return c, c.line()
}

func TestServeAuthOverPlain(t *testing.T) {
	home := testHome(t)
	addUser(t, home, "alice", "correct horse battery")
	addUser(t, home, "bob", "tr0ub4dor&3")

	srv, addr := startServeHome(t, home, "--scheme", "plain", "--auth")
	for _, want := range []string{"logins on: 2 accounts", "warning: --auth over plain: passwords cross the wire"} {
		if !strings.Contains(srv.Stderr(), want) {
			t.Errorf("serve's start lacks %q:\n%s", want, srv.Stderr())
		}
	}

	alice, answer := loginRaw(t, addr, "alice", "correct horse battery")
	if !strings.HasPrefix(answer, "* welcome, alice.") {
		t.Fatalf("alice's login: %q", answer)
	}
	// Wrong password, unknown user and an over-long password: one answer.
	for _, try := range [][2]string{{"bob", "wrong"}, {"nobody", "x"}, {"bob", strings.Repeat("p", 1025)}} {
		_, answer := loginRaw(t, addr, try[0], try[1])
		if answer != "! login failed: wrong name or password, or too many attempts; wait and try again" {
			t.Errorf("login as %s: %q", try[0], answer)
		}
	}
	// Each failure is logged after its answer, so the lines may come in
	// any order.
	waitFor(t, 20*time.Second, "three failed logins logged", func() bool { return strings.Count(srv.Stderr(), "login failed") == 3 })
	logged := srv.Stderr()
	for _, want := range []string{`name=bob why="wrong password"`, `name=nobody why="no such account"`, `name=bob why="password over 1024 bytes"`} {
		if !strings.Contains(logged, want) {
			t.Errorf("serve's log lacks %s:\n%s", want, logged)
		}
	}
	if strings.Contains(logged, "wrong\"") || strings.Contains(logged, "pppp") {
		t.Errorf("serve's log holds a password:\n%s", logged)
	}

	// bob logs in with the right password; deleting his account while he
	// is connected disconnects him with a reason.
	bob, answer := loginRaw(t, addr, "bob", "tr0ub4dor&3")
	if !strings.HasPrefix(answer, "* welcome, bob.") {
		t.Fatalf("bob's login: %q", answer)
	}
	alice.until("* bob joined")
	if r := runParleyEnv(t, "", []string{"PARLEY_HOME=" + home}, "users", "del", "bob"); r.code != 0 {
		t.Fatalf("users del bob: %d\n%s", r.code, r.stderr)
	}
	if got := bob.until("! "); got != "! your account was deleted; closing your connection" {
		t.Errorf("bob after his account was deleted: %q", got)
	}
	if got := alice.until("* bob left"); got != "* bob left (account deleted)" {
		t.Errorf("alice saw %q", got)
	}
	stopServe(t, srv)
}

func TestServeHistorySurvivesRestartAndTamperingIsReported(t *testing.T) {
	home := testHome(t)
	srv, addr := startServeHome(t, home, "--scheme", "plain", "--history")
	for _, want := range []string{"made a new history key at", "history on: sealed with AES-256-GCM"} {
		if !strings.Contains(srv.Stderr(), want) {
			t.Errorf("serve's start lacks %q:\n%s", want, srv.Stderr())
		}
	}
	alice := joinRaw(t, addr, "alice")
	for _, l := range []string{"first words", "the launch code is 0000", "last words"} {
		alice.send(l)
	}
	alice.send("/history 2")
	alice.until("* history: the last 2 messages")
	if got := alice.line(); !strings.HasSuffix(got, "] alice: the launch code is 0000") {
		t.Errorf("/history 2 began with %q", got)
	}
	stopServe(t, srv)

	db := filepath.Join(home, "parley.db")
	st, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", db, st.Mode().Perm())
	}
	file, _ := os.ReadFile(db)
	if bytes.Contains(file, []byte("launch code")) {
		t.Error("the sealed database holds a message in clear")
	}

	// Restarted, the room replays what was said to a late joiner.
	srv, addr = startServeHome(t, home, "--scheme", "plain", "--history")
	bob := joinRaw(t, addr, "bob")
	if got := bob.line(); got != "* history: the last 3 messages" {
		t.Fatalf("bob's first line after the welcome: %q", got)
	}
	for _, want := range []string{"first words", "the launch code is 0000", "last words"} {
		if got := bob.line(); !strings.HasPrefix(got, "* history [") || !strings.HasSuffix(got, "] alice: "+want) {
			t.Errorf("replay: %q, want alice's %q", got, want)
		}
	}
	stopServe(t, srv)

	// Someone with write access to the file moves a message to another
	// sender: the seal no longer matches, and the room says so.
	sqlite3(t, db, "UPDATE messages SET sender = 'mallory' WHERE id = 2")
	srv, addr = startServeHome(t, home, "--scheme", "plain", "--history")
	carol := joinRaw(t, addr, "carol")
	carol.until("* history: the last 3 messages")
	carol.line()
	if got := carol.line(); !strings.HasPrefix(got, "! history: message 2 from mallory") || !strings.Contains(got, "failed its integrity check") {
		t.Errorf("the tampered row: %q", got)
	}
	if got := carol.line(); !strings.HasSuffix(got, "] alice: last words") {
		t.Errorf("after the tampered row: %q", got)
	}
	stopServe(t, srv)

	// Another key is refused, saying why.
	other := filepath.Join(t.TempDir(), "other.key")
	mustRunHome(t, home, "keys", "gen", "--out", other)
	r := runParleyEnv(t, "", []string{"PARLEY_HOME=" + home}, "serve", "--listen", "127.0.0.1:0", "--history", "--history-key", other)
	if r.code != 1 || !strings.Contains(r.stderr, "wrong history key") {
		t.Errorf("serve with another history key: exit %d\n%s", r.code, r.stderr)
	}
}

func TestServeHistoryInsecurePlaintext(t *testing.T) {
	home := testHome(t)
	db := filepath.Join(t.TempDir(), "room.db")
	srv, addr := startServeHome(t, home, "--scheme", "plain", "--history", "--history-insecure-plaintext", "--db", db)
	srv.waitStderr("warning: --history-insecure-plaintext")
	alice := joinRaw(t, addr, "alice")
	alice.send("the vault code is 4242")
	alice.send("/history 1")
	alice.until("* history: the last message")
	stopServe(t, srv)
	if got := sqlite3(t, db, "SELECT sender, text FROM messages"); got != "alice|the vault code is 4242\n" {
		t.Errorf("sqlite3 reads %q", got)
	}
	// A sealed room cannot share that database.
	r := runParleyEnv(t, "", []string{"PARLEY_HOME=" + home}, "serve", "--listen", "127.0.0.1:0", "--history", "--db", db)
	if r.code != 1 || !strings.Contains(r.stderr, "holds history stored in clear") {
		t.Errorf("sealed history over a plaintext database: exit %d\n%s", r.code, r.stderr)
	}
}

func TestServeStoreBadInput(t *testing.T) {
	home := testHome(t)
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.db")
	os.WriteFile(notDB, []byte("my notes, not a database\n"), 0o600)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"auth without accounts", []string{"--auth"}, 1, "no accounts database at"},
		{"not a database", []string{"--auth", "--db", notDB}, 1, notDB},
		{"history over not a database", []string{"--history", "--db", notDB}, 1, notDB},
		{"missing history key", []string{"--history", "--history-key", filepath.Join(dir, "none.key")}, 1, "keys gen"},
		{"key without history", []string{"--history-key", "k"}, 2, "--history-key needs --history"},
		{"plaintext without history", []string{"--history-insecure-plaintext"}, 2, "needs --history"},
		{"plaintext and key", []string{"--history", "--history-insecure-plaintext", "--history-key", "k"}, 2, "takes no --history-key"},
		{"db alone", []string{"--db", "x.db"}, 2, "--db needs --auth or --history"},
		{"negative replay", []string{"--history", "--history-replay", "-1"}, 2, "--history-replay must be"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runParleyEnv(t, "", []string{"PARLEY_HOME=" + home}, append([]string{"serve", "--listen", "127.0.0.1:0"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "parley: hint:") && tc.code == 1 {
				t.Errorf("exit %d (want %d), stderr:\n%s", r.code, tc.code, r.stderr)
			}
		})
	}
	if b, _ := os.ReadFile(notDB); string(b) != "my notes, not a database\n" {
		t.Errorf("a file that is not a database was changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(home, "parley.db")); err == nil {
		t.Error("a failed serve --auth created a database")
	}
}

// sqlite3 runs the sqlite3 command line, as a student or an attacker with
// the file would.
func sqlite3(t *testing.T, db, sql string) string {
	t.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("sqlite3 is not installed (.ci/run installs it)")
	}
	out, err := exec.Command("sqlite3", db, sql).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %q: %v\n%s", sql, err, out)
	}
	return string(out)
}
