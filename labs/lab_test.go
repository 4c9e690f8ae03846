package labs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var testCourse = []byte("test course secret")

// startLab runs lab id for student into a temporary folder. A live lab's
// services stop when the test ends, and the test waits for them.
func startLab(t *testing.T, id, student string) (*Session, string) {
	t.Helper()
	l, err := Find(id)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := l.Start(ctx, StartConfig{Course: testCourse, Student: student, Dir: dir, Out: &testOut{t: t}})
	if err != nil {
		cancel()
		t.Fatalf("starting %s: %v", id, err)
	}
	t.Cleanup(func() {
		cancel()
		done := make(chan error, 1)
		go func() { done <- s.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("lab %s stopped with: %v", id, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("lab %s did not stop within 30s", id)
		}
	})
	return s, dir
}

// testOut logs what a lab says to the student.
type testOut struct{ t *testing.T }

func (o *testOut) Write(b []byte) (int, error) {
	o.t.Logf("lab says: %s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// checkAnswer checks answer for student and reports the result.
func checkAnswer(t *testing.T, id, student, answer string) Result {
	t.Helper()
	l, err := Find(id)
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.Check(testCourse, student, answer)
	if err != nil {
		t.Fatalf("check %s: %v", id, err)
	}
	return r
}

// wantSolved checks that answer is accepted for student, and that it is
// rejected for another student.
func wantSolved(t *testing.T, id, student, answer string) {
	t.Helper()
	if r := checkAnswer(t, id, student, answer); !r.Correct {
		t.Fatalf("the student's answer %q was rejected: %s", answer, r.Message)
	}
	if r := checkAnswer(t, id, student+"-other", answer); r.Correct {
		t.Errorf("another student's check accepted %q", answer)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEveryLab(t *testing.T) {
	if len(All()) == 0 {
		t.Fatal("no labs registered")
	}
	for _, l := range All() {
		t.Run(l.ID, func(t *testing.T) {
			h := l.Handout()
			for _, want := range []string{"parley labs start " + l.ID, "parley labs check " + l.ID, "**Concept:**"} {
				if !strings.Contains(h, want) {
					t.Errorf("handout lacks %q", want)
				}
			}
			if strings.Contains(h, "## Hints") {
				t.Error("Handout shows the hints")
			}
			if n := len(l.Hints()); n < 2 {
				t.Errorf("got %d hints, want at least 2", n)
			}
			if l.Title == "" || len(l.Schemes) == 0 || l.Minutes <= 0 || len(l.Concepts) == 0 || l.demonstrated == "" {
				t.Errorf("lab description incomplete: %+v", l)
			}
			a, err := l.Key(testCourse, "alice")
			if err != nil {
				t.Fatal(err)
			}
			again, _ := l.Key(testCourse, " Alice ")
			b, _ := l.Key(testCourse, "bob")
			other, _ := l.Key([]byte("another course"), "alice")
			if a != again {
				t.Errorf("Key is not deterministic or not normalised: got %q and %q", a, again)
			}
			if a == b || a == other {
				t.Errorf("two students or two courses got the same answer %q", a)
			}
			cases := []struct {
				name, student, answer string
				want                  bool
			}{
				{"own key", "alice", a, true},
				{"own key, spaced and upper case", "alice", "  " + strings.ToUpper(a) + " ", true},
				{"another student's key", "alice", b, false},
				{"wrong", "alice", "swordfish", false},
				{"empty", "alice", "", false},
			}
			for _, c := range cases {
				r, err := l.Check(testCourse, c.student, c.answer)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if r.Correct != c.want {
					t.Errorf("%s: got correct=%v (%s), want %v", c.name, r.Correct, r.Message, c.want)
				}
				if !r.Correct && strings.Contains(normalize(r.Message), normalize(a)) {
					t.Errorf("%s: the nudge %q gives the answer away", c.name, r.Message)
				}
			}
		})
	}
}

func TestFindUnknown(t *testing.T) {
	_, err := Find("nope")
	if !errors.Is(err, ErrUnknownLab) {
		t.Errorf("got %v, want ErrUnknownLab", err)
	}
}

func TestStudentIDs(t *testing.T) {
	for _, s := range []string{"", "  ", "a b", "a,b", "x\x1b[2J", strings.Repeat("a", 65)} {
		if _, err := Secret(testCourse, s, "sniff-plain"); !errors.Is(err, ErrNoStudent) {
			t.Errorf("student %q: got %v, want ErrNoStudent", s, err)
		}
	}
	if _, err := Secret(nil, "alice", "sniff-plain"); err == nil {
		t.Error("an empty course secret was accepted")
	}
}

func TestLoadCourseSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "labs")
	s1, path, created, err := LoadCourseSecret(dir)
	if err != nil || !created {
		t.Fatalf("first load: created=%v, err=%v", created, err)
	}
	s2, _, created, err := LoadCourseSecret(dir)
	if err != nil || created || string(s1) != string(s2) {
		t.Fatalf("second load: got %q created=%v err=%v, want %q", s2, created, err, s1)
	}
	if runtime.GOOS != "windows" {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if m := st.Mode().Perm(); m != 0o600 {
			t.Errorf("got mode %04o, want 0600", m)
		}
	}
}

func TestGrade(t *testing.T) {
	l, err := Find("length-extension")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := l.Key(testCourse, "alice")
	b, _ := l.Key(testCourse, "bob")
	csv := "student,answer\nalice," + a + "\nbob," + a + "\ncarol,nope\n\"bad id\",x\nbob," + b + "\n"
	rows, err := l.Grade(testCourse, strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		switch {
		case r.Err != nil:
			got = append(got, r.Student+":invalid")
		case r.Result.Correct:
			got = append(got, r.Student+":correct")
		default:
			got = append(got, r.Student+":no")
		}
	}
	want := "alice:correct bob:no carol:no bad id:invalid bob:correct"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("got %s, want %s", g, want)
	}
	if _, err := l.Grade(testCourse, strings.NewReader("alice\n")); err == nil {
		t.Error("a row with one field was accepted")
	}
}
