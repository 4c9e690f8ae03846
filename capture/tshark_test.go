package capture

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requireTshark skips the test when tshark is not installed; CI installs it
// (apt-get install -y tshark).
func requireTshark(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark is not installed (apt-get install -y tshark); skipping the Wireshark compatibility check")
	}
	return p
}

// runTshark runs tshark and returns its stdout, failing on a non-zero exit
// or anything on stderr besides tshark's note about running as root.
func runTshark(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var stderr []string
	for _, l := range strings.Split(errb.String(), "\n") {
		if l != "" && !strings.HasPrefix(l, "Running as user") {
			stderr = append(stderr, l)
		}
	}
	if err != nil || len(stderr) > 0 {
		t.Fatalf("tshark %s: %v; stderr:\n%s", strings.Join(args, " "), err, strings.Join(stderr, "\n"))
	}
	return out.String()
}

// TestTsharkReadsOurCaptures checks that tshark reads every pcapng we write
// without an error and without expert warnings (bad sequence numbers,
// missing segments, malformed packets).
func TestTsharkReadsOurCaptures(t *testing.T) {
	bin := requireTshark(t)
	files, _ := filepath.Glob("testdata/*.pcapng")
	fresh := filepath.Join(t.TempDir(), "fresh-plain.pcapng")
	recordRoom("plain", schemesConfigPlain)(t, fresh)
	files = append(files, fresh)
	if len(files) < 2 {
		t.Fatalf("got %d captures to check, want the golden ones too", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out := runTshark(t, bin, "-r", f, "-q", "-z", "expert,warn")
			if strings.Contains(out, "Warnings (") || strings.Contains(out, "Errors (") {
				t.Errorf("tshark reports problems in %s:\n%s", f, out)
			}
			if list := runTshark(t, bin, "-r", f); strings.Count(list, "\n") < 10 {
				t.Errorf("tshark lists %d packets in %s, want a whole conversation", strings.Count(list, "\n"), f)
			}
		})
	}
}

// TestTsharkDecryptsTLSFromEmbeddedKeys records a TLS 1.3 conversation
// through the tap and checks that tshark decrypts it from the pcapng alone
// (the Decryption Secrets Block), with no key log option.
func TestTsharkDecryptsTLSFromEmbeddedKeys(t *testing.T) {
	bin := requireTshark(t)
	p := filepath.Join(t.TempDir(), "tls.pcapng")
	recordTLS(t, p)
	out := runTshark(t, bin, "-r", p, "-o", "tls.keylog_file:", "-q", "-z", "follow,tls,ascii,0")
	for _, want := range []string{aliceLine, "echo: " + aliceLine} {
		if !strings.Contains(out, want) {
			t.Errorf("tshark's decrypted TLS stream lacks %q; got:\n%s", want, out)
		}
	}
}
