package labs

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-edu/parley/capture"
)

func TestLengthLeakCandidatesDiffer(t *testing.T) {
	seen := map[int]int{}
	for i, c := range LengthLeakCandidates {
		blocks := len(c)/16 + 1
		if j, dup := seen[blocks]; dup {
			t.Errorf("candidates %d and %d both take %d blocks", j+1, i+1, blocks)
		}
		seen[blocks] = i
	}
}

func TestLengthLeakSolved(t *testing.T) {
	_, dir := startLab(t, "length-leak", "student1")
	evs, err := capture.ReadFile(filepath.Join(dir, "length-leak.pcapng"), capture.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// alice's connection is the first stream; her records after the key
	// confirmation are her name, "hi", then the three orders.
	var sizes []int
	for _, e := range evs {
		if e.StreamID == 1 && e.Type == capture.EventMessage && e.Direction == capture.DirClient {
			if e.Plaintext != "" {
				t.Fatalf("the capture gives plaintext away: %q", e.Plaintext)
			}
			sizes = append(sizes, e.CiphertextBytes)
		}
	}
	t.Logf("alice's ciphertext sizes: %v", sizes)
	// The key confirmation (record 0), the name and "hi" come first.
	if len(sizes) < 6 {
		t.Fatalf("got %d records from alice, want at least 6", len(sizes))
	}
	var answer []string
	for _, n := range sizes[3:6] {
		found := ""
		for i, c := range LengthLeakCandidates {
			if (len(c)/16+1)*16 == n {
				found = strconv.Itoa(i + 1)
			}
		}
		answer = append(answer, found)
	}
	wantSolved(t, "length-leak", "student1", strings.Join(answer, ","))
	if r := checkAnswer(t, "length-leak", "student1", "1 2"); r.Correct || !strings.Contains(r.Message, "3 order numbers") {
		t.Errorf("got %v %q, want a nudge about the format", r.Correct, r.Message)
	}
}
