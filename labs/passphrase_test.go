package labs

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/schemes"
)

func TestPassphraseCrackSolved(t *testing.T) {
	// Each guess costs an Argon2id run (64 MiB): pick a student whose word
	// is early in the list, and run the student's loop over the list from
	// its start, as the handout's loop does.
	student := ""
	for i := 0; student == ""; i++ {
		s := fmt.Sprintf("student%d", i)
		seed, _ := Secret(testCourse, s, "passphrase-crack")
		if w := passphraseWord(seed); w == Words()[1] {
			student = s
		}
	}
	_, dir := startLab(t, "passphrase-crack", student)
	path := filepath.Join(dir, "passphrase-crack.pcapng")
	words := strings.Fields(readFile(t, filepath.Join(dir, "words.txt")))
	var texts []string
	for _, w := range words {
		texts = recovered(t, path, capture.ReadOptions{PSK: schemes.PassphraseKey(w)})
		if len(texts) > 0 {
			t.Logf("the passphrase is %q", w)
			if r := checkAnswer(t, "passphrase-crack", student, w); r.Correct || !strings.Contains(r.Message, "passphrase") {
				t.Errorf("the passphrase as answer: got %v %q, want a nudge", r.Correct, r.Message)
			}
			break
		}
	}
	wantSolved(t, "passphrase-crack", student, findAfter(t, texts, "the payroll code:"))
}
