package labs

import (
	"path/filepath"
	"regexp"
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
	texts := recovered(t, filepath.Join(dir, "sniff-plain.pcapng"), capture.ReadOptions{})
	answer := findAfter(t, texts, "the vault code is")
	if !codeRE.MatchString(answer) {
		t.Fatalf("recovered %q, which does not look like a code", answer)
	}
	wantSolved(t, "sniff-plain", "student1", answer)
}
