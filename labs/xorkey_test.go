package labs

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-edu/parley/capture"
)

func TestXORKeySolved(t *testing.T) {
	_, dir := startLab(t, "xor-key", "student1")

	// Step 1: the key byte is the server's first byte; capture read uses it.
	evs, err := capture.ReadFile(filepath.Join(dir, "xor-handshake.pcapng"), capture.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	keys := map[int]bool{}
	for _, e := range evs {
		if e.XORKey != nil {
			keys[*e.XORKey] = true
		}
		if e.Plaintext != "" {
			texts = append(texts, e.Plaintext)
		}
	}
	if len(keys) != 1 {
		t.Fatalf("got keys %v from the handshakes, want one", keys)
	}
	first := findAfter(t, texts, "first half of the code:")

	// Step 2: the late capture has no key byte. Brute force by hand: the
	// key that turns a record into printable text.
	evs, err = capture.ReadFile(filepath.Join(dir, "xor-late.pcapng"), capture.ReadOptions{Scheme: "xor"})
	if err != nil {
		t.Fatal(err)
	}
	second := ""
	for _, e := range evs {
		if e.Type != capture.EventMessage || len(e.Wire) < 3 {
			continue
		}
		if e.XORKey != nil || e.RecoveredBy == capture.RecoveredXORKeyByte {
			t.Fatal("the late capture gave the key away")
		}
		body := e.Wire[2:]
		for k := 0; k < 256; k++ {
			var b strings.Builder
			for _, c := range body {
				b.WriteByte(c ^ byte(k))
			}
			if s := b.String(); strings.Contains(s, "second half of the code: ") {
				second = strings.TrimSpace(s[strings.Index(s, ": ")+2:])
				if i := strings.LastIndex(second, " "); i >= 0 {
					second = second[i+1:]
				}
			}
		}
	}
	if second == "" {
		t.Fatal("brute force found no second half")
	}
	wantSolved(t, "xor-key", "student1", first+"-"+second)
	for _, partial := range []string{first, second} {
		if r := checkAnswer(t, "xor-key", "student1", partial); r.Correct || !strings.Contains(r.Message, "half") && !strings.Contains(r.Message, "digits") {
			t.Errorf("half answer %q: got %v %q, want a nudge about the other half", partial, r.Correct, r.Message)
		}
	}

	// parley capture read also brute-forces it without help.
	found := false
	for _, s := range recovered(t, filepath.Join(dir, "xor-late.pcapng"), capture.ReadOptions{}) {
		found = found || strings.Contains(s, "second half of the code: "+second)
	}
	if !found {
		t.Error("capture read did not recover the second half from the late capture")
	}
}
