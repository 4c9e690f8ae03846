package labs

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-edu/parley/capture"
)

// recovered returns the plaintext of every message event that has one.
func recovered(t *testing.T, path string, opts capture.ReadOptions) []string {
	t.Helper()
	evs, err := capture.ReadFile(path, opts)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	var out []string
	for _, e := range evs {
		if e.Type == capture.EventMessage && e.Plaintext != "" {
			out = append(out, e.Plaintext)
		}
	}
	return out
}

// codeRE matches a secret code in recovered text.
var codeRE = regexp.MustCompile(`[a-z]+-[a-z]+-[0-9]{4}`)

// findAfter returns the code that follows marker in any of texts.
func findAfter(t *testing.T, texts []string, marker string) string {
	t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(marker) + `\s*(\S+)`)
	for _, s := range texts {
		if m := re.FindStringSubmatch(s); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no %q in what was recovered: %q", marker, texts)
	return ""
}

func TestSniffPlainSolved(t *testing.T) {
	_, dir := startLab(t, "sniff-plain", "student1")
	path := filepath.Join(dir, "sniff-plain.pcapng")
	texts := recovered(t, path, capture.ReadOptions{})
	vault := findAfter(t, texts, "the vault code is")
	if !codeRE.MatchString(vault) {
		t.Fatalf("recovered %q, which does not look like a code", vault)
	}
	// Eve's view reports every login as a found credential.
	evs, err := capture.ReadFile(path, capture.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]string{}
	for _, e := range evs {
		if e.Type == capture.EventCredential {
			creds[e.User] = e.Password
		}
	}
	if len(creds) != 3 || !codeRE.MatchString(creds["alice"]) {
		t.Fatalf("credentials found: %q, want alice's, bob's and carol's", creds)
	}
	answer := vault + " " + creds["alice"]
	wantSolved(t, "sniff-plain", "student1", answer)

	for _, half := range []string{vault, creds["alice"], vault + " " + creds["bob"], "wrong-code-0000 " + creds["alice"]} {
		r := checkAnswer(t, "sniff-plain", "student1", half)
		if r.Correct || strings.Contains(r.Message, creds["alice"]) && !strings.Contains(half, creds["alice"]) {
			t.Errorf("answer %q: correct=%v, message %q", half, r.Correct, r.Message)
		}
	}
}
