package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startTapProc starts 'parley capture tap' in front of upstream and returns
// it with the address it listens on.
func startTapProc(t *testing.T, upstream, out string) (*proc, string) {
	t.Helper()
	p := startParley(t, "capture", "tap", "--listen", "127.0.0.1:0", "--upstream", upstream, "-w", out)
	return p, p.listenAddr()
}

// TestCaptureTapAndRead taps a real plain room with real members, stops
// the tap with Ctrl-C and reads the capture back as text and as JSON.
func TestCaptureTapAndRead(t *testing.T) {
	_, room := startServe(t, "--scheme", "plain")
	out := filepath.Join(t.TempDir(), "room.pcapng")
	tap, tapAddr := startTapProc(t, room, out)

	alice := startParley(t, "join", "--server", tapAddr, "--name", "alice")
	alice.waitStdout("* welcome, alice")
	res := runParley(t, "meet me at noon\n", "join", "--server", tapAddr, "--name", "bob")
	if res.code != 0 {
		t.Fatalf("bob's join exited %d; stderr:\n%s", res.code, res.stderr)
	}
	alice.waitStdout("bob: meet me at noon")
	alice.stdin.Close()
	if code := alice.wait(20 * time.Second); code != 0 {
		t.Fatalf("alice's join exited %d; stderr:\n%s", code, alice.Stderr())
	}
	tap.cmd.Process.Signal(os.Interrupt)
	if code := tap.wait(20 * time.Second); code != 0 {
		t.Fatalf("tap exited %d; stderr:\n%s", code, tap.Stderr())
	}
	if !strings.Contains(tap.Stderr(), "wrote "+out) {
		t.Errorf("tap's last words lack %q:\n%s", "wrote "+out, tap.Stderr())
	}

	text := runParley(t, "", "capture", "read", out)
	if text.code != 0 {
		t.Fatalf("capture read exited %d; stderr:\n%s", text.code, text.stderr)
	}
	for _, want := range []string{`[cleartext] "meet me at noon"`, `[cleartext] "bob: meet me at noon"`, "plain  (recognised from the bytes)"} {
		if !strings.Contains(text.stdout, want) {
			t.Errorf("capture read lacks %q:\n%s", want, text.stdout)
		}
	}

	js := runParley(t, "", "capture", "read", out, "--json")
	if js.code != 0 {
		t.Fatalf("capture read --json exited %d; stderr:\n%s", js.code, js.stderr)
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(js.stdout), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("--json printed a line that is not JSON: %q: %v", line, err)
		}
		for _, k := range []string{"type", "stream", "time"} {
			if _, ok := e[k]; !ok {
				t.Errorf("event %s lacks %q", line, k)
			}
		}
		if e["type"] == "message" && e["plaintext"] == "meet me at noon" {
			found = true
			if e["direction"] != "client" || e["scheme"] != "plain" || e["recovered_by"] != "cleartext" || e["wire_bytes"] != float64(16) {
				t.Errorf("got message %s, want direction client, scheme plain, recovered_by cleartext, wire_bytes 16", line)
			}
		}
	}
	if !found {
		t.Errorf("--json has no message with bob's line:\n%s", js.stdout)
	}
}

func TestCaptureReadErrors(t *testing.T) {
	dir := t.TempDir()
	notCapture := filepath.Join(dir, "notes.txt")
	os.WriteFile(notCapture, []byte("just some text\n"), 0o644)
	golden, err := os.ReadFile("../../capture/testdata/plain.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "cut.pcapng")
	os.WriteFile(truncated, golden[:len(golden)*2/3], 0o644)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
		wantStdout string
	}{
		{"not a capture", []string{"capture", "read", notCapture}, 1, "is not a pcap or pcapng capture file", ""},
		{"truncated", []string{"capture", "read", truncated}, 1, "truncated", `[cleartext] "alice"`},
		{"missing file", []string{"capture", "read", filepath.Join(dir, "nope.pcapng")}, 1, "does not exist", ""},
		{"no file", []string{"capture", "read"}, 2, "needs exactly one FILE", ""},
		{"bad scheme", []string{"capture", "read", truncated, "--scheme", "rot13"}, 2, "is not a scheme", ""},
		{"bad port", []string{"capture", "read", truncated, "--port", "http"}, 2, "is not a port", ""},
		{"tap without -w", []string{"capture", "tap", "--upstream", "127.0.0.1:1"}, 2, "needs -w FILE", ""},
		{"live without -w", []string{"capture", "live"}, 2, "needs -w FILE", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runParley(t, "", tc.args...)
			if res.code != tc.wantCode {
				t.Errorf("got exit %d, want %d; stderr:\n%s", res.code, tc.wantCode, res.stderr)
			}
			if !strings.Contains(res.stderr, "parley: error: ") || !strings.Contains(res.stderr, tc.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantStderr, res.stderr)
			}
			if !strings.Contains(res.stdout, tc.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.wantStdout, res.stdout)
			}
			if strings.Contains(res.stderr, "panic") {
				t.Errorf("panic:\n%s", res.stderr)
			}
		})
	}
}
