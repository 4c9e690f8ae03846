package labs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sqlite runs the sqlite3 command line on db, as the handout tells the
// student to.
func sqlite(t *testing.T, db, query string) string {
	t.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("sqlite3 is not installed (.ci/run installs it)")
	}
	out, err := exec.Command("sqlite3", db, query).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s %q: %v\n%s", db, query, err, out)
	}
	return string(out)
}

func TestDataAtRestSolved(t *testing.T) {
	_, dir := startLab(t, "data-at-rest", "student1")
	plain, sealed := filepath.Join(dir, "history-plain.db"), filepath.Join(dir, "history-sealed.db")

	rows := sqlite(t, plain, "SELECT time, sender, text FROM messages")
	m := regexp.MustCompile(`the safe code is ([a-z]+-[a-z]+-[0-9]{4})`).FindStringSubmatch(rows)
	if m == nil {
		t.Fatalf("no safe code in the plaintext history:\n%s", rows)
	}
	safe := m[1]

	// The sealed history shows no text, and its file holds no word of the
	// conversation; but who spoke is there to count.
	if got := sqlite(t, sealed, "SELECT count(*) FROM messages WHERE text IS NOT NULL OR length(sealed) < 16 OR length(nonce) != 12"); strings.TrimSpace(got) != "0" {
		t.Errorf("%s rows of the sealed history are not sealed", strings.TrimSpace(got))
	}
	file, err := os.ReadFile(sealed)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := Secret(testCourse, "student1", "data-at-rest")
	if err != nil {
		t.Fatal(err)
	}
	for _, word := range []string{"safe code", "audit", "pasting", code(seed, "new-safe")} {
		if bytes.Contains(file, []byte(word)) {
			t.Errorf("the sealed database holds %q in clear", word)
		}
	}
	if _, err := os.Stat(sealed + "-wal"); err == nil {
		t.Errorf("%s-wal is left beside the database", sealed)
	}
	top := sqlite(t, sealed, "SELECT sender FROM messages GROUP BY sender ORDER BY count(*) DESC LIMIT 1")
	talker := strings.TrimSpace(top)

	wantSolved(t, "data-at-rest", "student1", safe+" "+talker)
	for _, wrong := range []string{safe, safe + " nobody", "wrong-code-0000 " + talker, talker} {
		if r := checkAnswer(t, "data-at-rest", "student1", wrong); r.Correct {
			t.Errorf("answer %q accepted", wrong)
		}
	}
}

// Two students get different secrets and different talkers often enough
// that copying does not work.
func TestDataAtRestDiffersPerStudent(t *testing.T) {
	l, err := Find("data-at-rest")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	talkers := map[string]bool{}
	for _, s := range []string{"s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"} {
		k, err := l.Key(testCourse, s)
		if err != nil {
			t.Fatal(err)
		}
		seen[k] = true
		talkers[strings.Fields(k)[1]] = true
	}
	if len(seen) != 8 || len(talkers) < 2 {
		t.Errorf("8 students got %d answers and %d talkers", len(seen), len(talkers))
	}
}
