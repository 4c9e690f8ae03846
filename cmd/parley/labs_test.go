package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const e2eCourse = "PARLEY_COURSE_SECRET=e2e course"

func TestLabsCLI(t *testing.T) {
	env := []string{e2eCourse}
	key := runParleyEnv(t, "", env, "labs", "key", "length-extension", "--student", "s1")
	if key.code != 0 || strings.Count(key.stdout, "\n") != 1 {
		t.Fatalf("labs key: got code %d, stdout %q, stderr %q; want one line", key.code, key.stdout, key.stderr)
	}
	answer := strings.TrimSpace(key.stdout)
	other := strings.TrimSpace(runParleyEnv(t, "", env, "labs", "key", "length-extension", "--student", "s2").stdout)
	if other == answer {
		t.Fatal("two students got the same key")
	}
	csv := filepath.Join(t.TempDir(), "answers.csv")
	os.WriteFile(csv, []byte("student,answer\ns1,"+answer+"\ns2,"+answer+"\n"), 0o644)

	cases := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		noStdout string
	}{
		{"list", []string{"labs", "list"}, 0, "length-extension", "", ""},
		{"show", []string{"labs", "show", "length-extension"}, 0, "## Tasks", "", "## Hints"},
		{"show hint", []string{"labs", "show", "length-extension", "--hint", "1"}, 0, "1. The forged message", "", "2. To continue"},
		{"show bad hint", []string{"labs", "show", "length-extension", "--hint", "99"}, 2, "", "has hints 1 to", ""},
		{"show unknown", []string{"labs", "show", "nope"}, 2, "", "unknown lab", ""},
		{"check correct", []string{"labs", "check", "length-extension", answer, "--student", "s1"}, 0, "correct: ", "", ""},
		{"check other student's", []string{"labs", "check", "length-extension", answer, "--student", "s2"}, 1, "not yet: ", "--hint 1", answer},
		{"check wrong", []string{"labs", "check", "length-extension", "abc:def", "--student", "s1"}, 1, "not yet: ", "", ""},
		{"check no student", []string{"labs", "check", "length-extension", answer}, 2, "", "needs --student", ""},
		{"check unknown lab", []string{"labs", "check", "nope", "x", "--student", "s1"}, 2, "", "unknown lab", ""},
		{"check no answer", []string{"labs", "check", "length-extension", "--student", "s1"}, 2, "", "needs a lab id and your answer", ""},
		{"grade", []string{"labs", "grade", "length-extension", csv}, 0, "score: 1/2 correct", "", ""},
		{"start no student", []string{"labs", "start", "length-extension"}, 2, "", "needs --student", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runParleyEnv(t, "", env, c.args...)
			if r.code != c.code {
				t.Fatalf("got exit %d, want %d; stdout:\n%s\nstderr:\n%s", r.code, c.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, c.stdout) {
				t.Errorf("stdout %q lacks %q", r.stdout, c.stdout)
			}
			if !strings.Contains(r.stderr, c.stderr) {
				t.Errorf("stderr %q lacks %q", r.stderr, c.stderr)
			}
			if c.noStdout != "" && strings.Contains(r.stdout, c.noStdout) {
				t.Errorf("stdout %q contains %q", r.stdout, c.noStdout)
			}
		})
	}
}

func TestLabsDefaultCourseSecret(t *testing.T) {
	first := runParley(t, "", "labs", "key", "length-extension", "--student", "s1")
	if first.code != 0 || !strings.Contains(first.stderr, "created this installation's course secret") {
		t.Fatalf("got code %d, stderr %q", first.code, first.stderr)
	}
	second := runParley(t, "", "labs", "key", "length-extension", "--student", "s1")
	if second.stdout != first.stdout || strings.Contains(second.stderr, "created") {
		t.Errorf("the default secret changed between runs: %q then %q (%s)", first.stdout, second.stdout, second.stderr)
	}
	if _, err := os.Stat(filepath.Join(testHome(t), "labs", "course.secret")); err != nil {
		t.Error(err)
	}
}

func TestLabsStartFileOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "le")
	r := runParleyEnv(t, "", []string{e2eCourse}, "labs", "start", "length-extension", "--student", "s1", "--dir", dir)
	if r.code != 0 {
		t.Fatalf("got exit %d; stderr:\n%s", r.code, r.stderr)
	}
	for _, f := range []string{"message.txt", "tag.txt", "hmac-tag.txt"} {
		if !strings.Contains(r.stdout, filepath.Join(dir, f)) {
			t.Errorf("stdout %q does not name %s", r.stdout, f)
		}
	}
}

func TestLabsStartLiveStopsOnInterrupt(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs os.Interrupt delivery, which Windows does not support for child processes")
	}
	dir := filepath.Join(t.TempDir(), "po")
	p := startParleyEnv(t, []string{e2eCourse}, "labs", "start", "padding-oracle", "--student", "s1", "--dir", dir)
	p.waitStdout("padding oracle: 127.0.0.1:")
	p.waitStderr("press Ctrl-C")
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("got exit %d, want 0; stderr:\n%s", code, p.Stderr())
	}
	if !strings.Contains(p.Stdout(), filepath.Join(dir, "padding-oracle.pcapng")) {
		t.Errorf("stdout %q does not name the capture", p.Stdout())
	}
	if _, err := os.Stat(filepath.Join(dir, "padding-oracle.pcapng")); err != nil {
		t.Error(err)
	}
}

// TestLabsDataAtRestThroughTheBinary solves data-at-rest as the handout
// says: sqlite3 on the plaintext history, a count on the sealed one, then
// labs check; and the sealed history refuses another key.
func TestLabsDataAtRestThroughTheBinary(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dar")
	r := runParleyEnv(t, "", []string{e2eCourse}, "labs", "start", "data-at-rest", "--student", "s1", "--dir", dir)
	if r.code != 0 {
		t.Fatalf("labs start: exit %d\n%s", r.code, r.stderr)
	}
	rows := sqlite3(t, filepath.Join(dir, "history-plain.db"), "SELECT time, sender, text FROM messages")
	_, after, ok := strings.Cut(rows, "the safe code is ")
	if !ok {
		t.Fatalf("no safe code in the plaintext history:\n%s", rows)
	}
	safe, _, _ := strings.Cut(after, ",")
	sealed := filepath.Join(dir, "history-sealed.db")
	talker := strings.TrimSpace(sqlite3(t, sealed, "SELECT sender FROM messages GROUP BY sender ORDER BY count(*) DESC LIMIT 1"))

	r = runParleyEnv(t, "", []string{e2eCourse}, "labs", "check", "data-at-rest", safe+" "+talker, "--student", "s1")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "correct: ") {
		t.Errorf("labs check %q: exit %d\n%s%s", safe+" "+talker, r.code, r.stdout, r.stderr)
	}
	key := filepath.Join(t.TempDir(), "mine.key")
	runParley(t, "", "keys", "gen", "--out", key)
	r = runParley(t, "", "serve", "--listen", "127.0.0.1:0", "--history", "--db", sealed, "--history-key", key)
	if r.code != 1 || !strings.Contains(r.stderr, "wrong history key") {
		t.Errorf("serving the sealed history with another key: exit %d\n%s", r.code, r.stderr)
	}
}
