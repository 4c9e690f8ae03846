package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-edu/parley/room/store"
)

// checkLogin checks, through the store package, whether password opens
// name's account in the database at path.
func checkLogin(t *testing.T, path, name, password string, want bool) {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	defer db.Close()
	ok, err := db.Verify(context.Background(), name, []byte(password))
	if err != nil || ok != want {
		t.Errorf("Verify(%s, %q): got %v, %v; want %v", name, password, ok, err, want)
	}
}

func TestUsersLifecycle(t *testing.T) {
	home := testHome(t)
	path := filepath.Join(home, "parley", store.DefaultFile)
	env := []string{"PARLEY_HOME=" + filepath.Dir(path)} // a home that does not exist yet
	run := func(stdin string, args ...string) result {
		t.Helper()
		r := runParleyEnv(t, stdin, env, args...)
		if r.code != 0 {
			t.Fatalf("parley %v: exit %d\n%s", args, r.code, r.stderr)
		}
		return r
	}

	r := run("correct horse\n", "users", "add", "alice", "--password-stdin")
	if !strings.Contains(r.stderr, "added the account alice to "+path) || !strings.Contains(r.stderr, "serve --auth") {
		t.Errorf("users add does not say what it did and what next:\n%s", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("users add printed to stdout: %q", r.stdout)
	}
	if runtime.GOOS != "windows" {
		for file, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
			if st, err := os.Stat(file); err != nil || st.Mode().Perm() != want {
				t.Errorf("%s: mode %v (%v), want %04o", file, st.Mode().Perm(), err, want)
			}
		}
	}
	checkLogin(t, path, "alice", "correct horse", true)
	checkLogin(t, path, "alice", "correct horse\n", false)

	run("tr0ub4dor&3", "users", "add", "Bob", "--password-stdin") // no newline at the end
	checkLogin(t, path, "bob", "tr0ub4dor&3", true)

	r = run("", "users", "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "alice ") || !strings.HasPrefix(lines[2], "Bob ") {
		t.Errorf("users list: got\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "argon2id v=19 m=19456 t=2 p=1") || strings.Contains(r.stdout, "$argon2id$") {
		t.Errorf("users list shows no parameters, or shows the hashes:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "2 accounts in "+path) {
		t.Errorf("users list stderr: %q", r.stderr)
	}

	r = run("", "users", "list", "--json")
	var listed []struct {
		Name        string    `json:"name"`
		Created     time.Time `json:"created"`
		PasswordSet time.Time `json:"password_set"`
		Hash        string    `json:"hash"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil {
		t.Fatalf("users list --json: %v\n%s", err, r.stdout)
	}
	if len(listed) != 2 || listed[0].Name != "alice" || listed[0].Hash != "argon2id v=19 m=19456 t=2 p=1" || listed[0].Created.IsZero() {
		t.Errorf("users list --json: got %+v", listed)
	}

	r = run("a new password\r\nignored second line\n", "users", "passwd", "ALICE", "--password-stdin")
	if !strings.Contains(r.stderr, "new password for ALICE") {
		t.Errorf("users passwd stderr: %q", r.stderr)
	}
	checkLogin(t, path, "alice", "correct horse", false)
	checkLogin(t, path, "alice", "a new password", true)

	run("", "users", "del", "alice")
	checkLogin(t, path, "alice", "a new password", false)
	run("", "users", "del", "bob")
	r = run("", "users", "list")
	if r.stdout != "" || !strings.Contains(r.stderr, "no accounts in "+path) || !strings.Contains(r.stderr, "parley users add NAME") {
		t.Errorf("users list of no accounts: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if r = run("", "users", "list", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("users list --json of no accounts: %q", r.stdout)
	}
}

func TestUsersDBFlag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "class.db")
	r := runParley(t, "pw\n", "users", "add", "carol", "--db", path, "--password-stdin")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "--db "+path) {
		t.Errorf("the next step does not keep --db:\n%s", r.stderr)
	}
	checkLogin(t, path, "carol", "pw", true)
	if _, err := os.Stat(filepath.Join(testHome(t), store.DefaultFile)); err == nil {
		t.Error("users add --db also made a database in the home")
	}

	if runtime.GOOS != "windows" {
		os.Chmod(path, 0o644)
		r = runParley(t, "", "users", "list", "--db", path)
		if r.code != 0 || !strings.Contains(r.stderr, "warning: "+path+" was readable by other users (mode 0644)") {
			t.Errorf("users list of a readable database: exit %d\n%s", r.code, r.stderr)
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
			t.Errorf("mode after users list: %04o, want 0600", st.Mode().Perm())
		}
	}
}

func TestUsersErrors(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "parley.db")
	if r := runParley(t, "alice's password\n", "users", "add", "alice", "--db", db, "--password-stdin"); r.code != 0 {
		t.Fatalf("users add: exit %d\n%s", r.code, r.stderr)
	}
	notes := filepath.Join(dir, "notes.txt")
	os.WriteFile(notes, []byte("not a database\n"), 0o600)
	missing := filepath.Join(dir, "missing.db")
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		says  []string
	}{
		{"list without a database", "", []string{"users", "list", "--db", missing}, 1,
			[]string{"no accounts database at " + missing, "hint: add a user first with 'parley users add NAME --db " + missing + "'"}},
		{"passwd without a database", "pw\n", []string{"users", "passwd", "alice", "--db", missing, "--password-stdin"}, 1,
			[]string{"no accounts database at " + missing, "parley users add NAME"}},
		{"del without a database", "", []string{"users", "del", "alice", "--db", missing}, 1,
			[]string{"no accounts database at " + missing, "parley users add NAME"}},
		{"list in the default home without a database", "", []string{"users", "list"}, 1,
			[]string{"no accounts database at ", "hint: add a user first with 'parley users add NAME'"}},
		{"add an existing name", "pw\n", []string{"users", "add", "alice", "--db", db, "--password-stdin"}, 1,
			[]string{"already an account named alice", "parley users passwd alice"}},
		{"add an existing name in another case", "pw\n", []string{"users", "add", "ALICE", "--db", db, "--password-stdin"}, 1,
			[]string{"already an account named ALICE", "regardless of case"}},
		{"passwd of an unknown name", "pw\n", []string{"users", "passwd", "bob", "--db", db, "--password-stdin"}, 1,
			[]string{"no account named bob in " + db, "parley users list"}},
		{"del of an unknown name", "", []string{"users", "del", "bob", "--db", db}, 1,
			[]string{"no account named bob in " + db}},
		{"password over 1 KiB", strings.Repeat("p", store.MaxPassword+1) + "\n", []string{"users", "add", "bob", "--db", db, "--password-stdin"}, 1,
			[]string{"too long: at most 1024 bytes"}},
		{"password of several KiB without a newline", strings.Repeat("p", 10000), []string{"users", "passwd", "alice", "--db", db, "--password-stdin"}, 1,
			[]string{"too long: at most 1024 bytes"}},
		{"empty password", "\n", []string{"users", "add", "bob", "--db", db, "--password-stdin"}, 1,
			[]string{"the password is empty"}},
		{"no standard input", "", []string{"users", "passwd", "alice", "--db", db, "--password-stdin"}, 1,
			[]string{"the password is empty"}},
		{"standard input not a terminal", "pw\npw\n", []string{"users", "add", "bob", "--db", db}, 2,
			[]string{"not a terminal", "--password-stdin"}},
		{"passwd with standard input not a terminal", "pw\npw\n", []string{"users", "passwd", "alice", "--db", db}, 2,
			[]string{"not a terminal", "--password-stdin"}},
		{"bad name", "pw\n", []string{"users", "add", "bad name", "--db", db, "--password-stdin"}, 2,
			[]string{`"bad name" cannot name an account`, "1-32 letters"}},
		{"no name", "pw\n", []string{"users", "add", "--db", db, "--password-stdin"}, 2,
			[]string{"needs one account name"}},
		{"two names", "", []string{"users", "del", "alice", "bob", "--db", db}, 2,
			[]string{"needs one account name, got 2"}},
		{"list with an argument", "", []string{"users", "list", "alice", "--db", db}, 2,
			[]string{"takes no arguments"}},
		{"empty --db", "", []string{"users", "list", "--db", ""}, 2,
			[]string{"--db needs a file name"}},
		{"--db names a text file", "pw\n", []string{"users", "add", "bob", "--db", notes, "--password-stdin"}, 1,
			[]string{notes + " is not a SQLite database", "parley never recreates a database"}},
		{"--db in a missing folder", "pw\n", []string{"users", "add", "bob", "--db", filepath.Join(dir, "nope", "x.db"), "--password-stdin"}, 1,
			[]string{"folder " + filepath.Join(dir, "nope") + " does not exist"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runParley(t, tt.stdin, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, tt.code, r.stderr)
			}
			for _, s := range tt.says {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
				}
			}
			if !strings.HasPrefix(r.stderr, "parley: error: ") {
				t.Errorf("stderr does not start with 'parley: error: ':\n%s", r.stderr)
			}
		})
	}

	// None of it changed anything.
	checkLogin(t, db, "alice", "alice's password", true)
	checkLogin(t, db, "bob", "pw", false)
	if b, _ := os.ReadFile(notes); string(b) != "not a database\n" {
		t.Errorf("the text file changed: %q", b)
	}
	for _, p := range []string{missing, filepath.Join(testHome(t), store.DefaultFile)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a failed command made %s", p)
		}
	}
}

// terminal runs parley under script(1), which gives it a terminal, and
// types each of lines after the prompt it waits for.
type terminal struct {
	t    *testing.T
	cmd  *exec.Cmd
	in   io.WriteCloser
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func startTerminal(t *testing.T, args ...string) *terminal {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs util-linux script(1) to give parley a terminal")
	}
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("needs script(1) (util-linux) to give parley a terminal")
	}
	quoted := []string{shellQuote(parleyBin)}
	for _, a := range args {
		quoted = append(quoted, shellQuote(a))
	}
	term := &terminal{t: t, done: make(chan struct{})}
	term.cmd = exec.Command("script", "-qec", strings.Join(quoted, " "), "/dev/null")
	term.cmd.Env = testEnv(t)
	term.cmd.Stdout = lockedWriter{&term.mu, &term.out}
	term.cmd.Stderr = lockedWriter{&term.mu, &term.out}
	in, err := term.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	term.in = in
	if err := term.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		term.cmd.Wait()
		close(term.done)
	}()
	t.Cleanup(func() {
		term.cmd.Process.Kill()
		<-term.done
	})
	return term
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// typeAfter waits until the terminal shows prompt for the nth time, then
// types line and Enter.
func (term *terminal) typeAfter(prompt string, n int, line string) {
	term.t.Helper()
	waitFor(term.t, 20*time.Second, fmt.Sprintf("prompt %q; the terminal shows:\n%s", prompt, term.output()),
		func() bool { return strings.Count(term.output(), prompt) >= n })
	io.WriteString(term.in, line+"\r")
}

// exit waits for parley to end and returns its exit code.
func (term *terminal) exit() int {
	term.t.Helper()
	select {
	case <-term.done:
	case <-time.After(20 * time.Second):
		term.t.Fatalf("parley did not exit; the terminal shows:\n%s", term.output())
	}
	return term.cmd.ProcessState.ExitCode()
}

func TestUsersPasswordFromTerminal(t *testing.T) {
	db := filepath.Join(t.TempDir(), "parley.db")
	const secret = "s3cret-typed"

	term := startTerminal(t, "users", "add", "alice", "--db", db)
	term.typeAfter("Password for alice: ", 1, secret)
	term.typeAfter("Again: ", 1, secret)
	if code := term.exit(); code != 0 {
		t.Fatalf("exit %d; the terminal shows:\n%s", code, term.output())
	}
	if out := term.output(); strings.Contains(out, secret) {
		t.Errorf("the password was echoed:\n%s", out)
	}
	checkLogin(t, db, "alice", secret, true)

	t.Run("passwords that differ", func(t *testing.T) {
		term := startTerminal(t, "users", "passwd", "alice", "--db", db)
		term.typeAfter("Password for alice: ", 1, "new-one")
		term.typeAfter("Again: ", 1, "new-onf")
		if code := term.exit(); code != 1 || !strings.Contains(term.output(), "the two passwords differ; nothing was changed") {
			t.Errorf("exit %d; the terminal shows:\n%s", code, term.output())
		}
		checkLogin(t, db, "alice", secret, true)
	})

	t.Run("Ctrl-C", func(t *testing.T) {
		term := startTerminal(t, "users", "passwd", "alice", "--db", db)
		term.typeAfter("Password for alice: ", 1, "half\x03")
		if code := term.exit(); code != 1 || !strings.Contains(term.output(), "no password given; nothing was changed") {
			t.Errorf("exit %d; the terminal shows:\n%s", code, term.output())
		}
		checkLogin(t, db, "alice", secret, true)
	})

	t.Run("empty", func(t *testing.T) {
		term := startTerminal(t, "users", "add", "bob", "--db", db)
		term.typeAfter("Password for bob: ", 1, "")
		if code := term.exit(); code != 1 || !strings.Contains(term.output(), "the password is empty") {
			t.Errorf("exit %d; the terminal shows:\n%s", code, term.output())
		}
	})
}
