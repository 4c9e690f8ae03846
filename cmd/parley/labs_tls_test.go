package main

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestLabsTLSMITMThroughBinary solves tls-mitm with the commands the
// handout gives: labs start, parley mitm on the printed addresses, parley
// capture read on the two recordings, labs check.
func TestLabsTLSMITMThroughBinary(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs os.Interrupt delivery, which Windows does not support for child processes")
	}
	env := []string{e2eCourse}
	dir := filepath.Join(t.TempDir(), "mitm")
	lab := startParleyEnv(t, env, "labs", "start", "tls-mitm", "--student", "s1", "--dir", dir)
	lab.waitStderr("press Ctrl-C")
	addr := func(prefix string) string {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(prefix) + `: (\S+)$`).FindStringSubmatch(lab.Stdout())
		if m == nil {
			t.Fatalf("labs start did not print %q; stdout:\n%s", prefix, lab.Stdout())
		}
		return m[1]
	}
	room, relay := addr("tls room (your relay's upstream)"), addr("alice and bob connect to (start your relay here)")

	mitm := startParley(t, "mitm", "--scheme", "tls", "--listen", relay, "--upstream", room)
	mitm.waitStdout("BLOCKED")
	mitm.waitStdout("the payroll code is ")
	lab.waitStdout("bob (verifies): refused the certificate")
	m := regexp.MustCompile(`READ alice→room: "/msg payroll the payroll code is (\S+)"`).FindStringSubmatch(mitm.Stdout())
	if m == nil {
		t.Fatalf("no READ line with alice's code:\n%s", mitm.Stdout())
	}
	code := m[1]

	r12 := runParley(t, "", "capture", "read", filepath.Join(dir, "tls-mitm-tls12.pcapng"))
	o := regexp.MustCompile(`Certificate \(server\): subject "CN=localhost,O=([^"]+)"`).FindStringSubmatch(r12.stdout)
	if r12.code != 0 || o == nil {
		t.Fatalf("capture read of the TLS 1.2 recording: exit %d, no server certificate subject:\n%s\n%s", r12.code, r12.stdout, r12.stderr)
	}
	r13 := runParley(t, "", "capture", "read", filepath.Join(dir, "tls-mitm-tls13.pcapng"))
	if r13.code != 0 || strings.Contains(r13.stdout, o[1]) || strings.Contains(r13.stdout, "Certificate (server)") {
		t.Fatalf("capture read of the TLS 1.3 recording shows the certificate (exit %d):\n%s", r13.code, r13.stdout)
	}

	answer := code + " " + o[1]
	if r := runParleyEnv(t, "", env, "labs", "check", "tls-mitm", answer, "--student", "s1"); r.code != 0 || !strings.HasPrefix(r.stdout, "correct: ") {
		t.Errorf("labs check %q: exit %d, stdout %q, stderr %q", answer, r.code, r.stdout, r.stderr)
	}
	if r := runParleyEnv(t, "", env, "labs", "check", "tls-mitm", code, "--student", "s1"); r.code != 1 || strings.Contains(r.stdout, o[1]) {
		t.Errorf("labs check with the code alone: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := runParleyEnv(t, "", env, "labs", "check", "tls-mitm", answer, "--student", "s2"); r.code != 1 {
		t.Errorf("s2 checking s1's answer: exit %d, want 1", r.code)
	}

	for _, p := range []*proc{mitm, lab} {
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(30 * time.Second); code != 0 {
			t.Errorf("parley %v: exit %d after Ctrl-C; stderr:\n%s", p.cmd.Args[1:], code, p.Stderr())
		}
	}
	if !strings.Contains(lab.Stderr(), "lab tls-mitm stopped") {
		t.Errorf("labs start did not say it stopped: %s", lab.Stderr())
	}
}
