package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRecordSchemesThroughBinary runs a real 'parley serve' and two real
// 'parley join' processes per record scheme: a watcher that stays, and a
// piped member whose lines the watcher must see.
func TestRecordSchemesThroughBinary(t *testing.T) {
	dir := t.TempDir()
	psk := filepath.Join(dir, "room.psk")
	if res := runParley(t, "", "keys", "gen", "--out", psk); res.code != 0 {
		t.Fatalf("keys gen exited %d; stderr:\n%s", res.code, res.stderr)
	}
	tests := []struct {
		name     string
		serve    []string
		join     []string
		warnings []string // on join's stderr
	}{
		{"xor", []string{"--scheme", "xor", "--xor-key", "42"}, []string{"--scheme", "xor"}, []string{"xor is INSECURE"}},
		{"aes-cbc-hmac", []string{"--scheme", "aes-cbc-hmac", "--psk", psk}, []string{"--scheme", "aes-cbc-hmac", "--psk", psk}, nil},
		{"aes-cbc-hmac with a passphrase", []string{"--scheme", "aes-cbc-hmac", "--passphrase", "correct horse battery staple"},
			[]string{"--scheme", "aes-cbc-hmac", "--passphrase", "correct horse battery staple"}, []string{"only as strong as it is long"}},
		{"aes-cbc", []string{"--scheme", "aes-cbc", "--psk", psk}, []string{"--scheme", "aes-cbc", "--psk", psk}, []string{"INSECURE: aes-cbc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := startServe(t, tt.serve...)
			watcher := startParley(t, append([]string{"join", "--server", addr, "--name", "watcher"}, tt.join...)...)
			watcher.waitStdout("* welcome, watcher")

			res := runParley(t, "first line\nsecond line\n", append([]string{"join", "--server", addr, "--name", "alice"}, tt.join...)...)
			if res.code != 0 {
				t.Fatalf("join exited %d; stderr:\n%s", res.code, res.stderr)
			}
			for _, want := range []string{"* welcome, alice", "* bye, alice"} {
				if !strings.Contains(res.stdout, want) {
					t.Errorf("alice's stdout lacks %q:\n%s", want, res.stdout)
				}
			}
			for _, want := range tt.warnings {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("alice's stderr lacks %q:\n%s", want, res.stderr)
				}
			}
			for _, want := range []string{"alice: first line", "alice: second line", "* alice left (quit)"} {
				watcher.waitStdout(want)
			}
			watcher.stdin.Close()
			if code := watcher.wait(20 * time.Second); code != 0 {
				t.Errorf("watcher exited %d; stderr:\n%s", code, watcher.Stderr())
			}
		})
	}
}

func TestRecordSchemeFailuresThroughBinary(t *testing.T) {
	dir := t.TempDir()
	keys := []string{filepath.Join(dir, "a.psk"), filepath.Join(dir, "b.psk")}
	for _, k := range keys {
		if res := runParley(t, "", "keys", "gen", "--out", k); res.code != 0 {
			t.Fatalf("keys gen exited %d; stderr:\n%s", res.code, res.stderr)
		}
	}

	t.Run("wrong key", func(t *testing.T) {
		srv, addr := startServe(t, "--scheme", "aes-cbc-hmac", "--psk", keys[0])
		res := runParley(t, "hello\n", "join", "--server", addr, "--name", "alice", "--scheme", "aes-cbc-hmac", "--psk", keys[1])
		if res.code != 1 || !strings.Contains(res.stderr, "the peer uses a different pre-shared key") {
			t.Errorf("join: got exit %d, want 1 saying the peer uses a different pre-shared key; stderr:\n%s", res.code, res.stderr)
		}
		srv.waitStderr("different pre-shared key")
	})

	t.Run("aes client, plain server", func(t *testing.T) {
		_, addr := startServe(t)
		res := runParley(t, "hello\n", "join", "--server", addr, "--name", "alice", "--scheme", "aes-cbc-hmac", "--psk", keys[0])
		if res.code != 1 || !strings.Contains(res.stderr, "the peer speaks plain, not aes-cbc-hmac") {
			t.Errorf("join: got exit %d, want 1 saying the peer speaks plain; stderr:\n%s", res.code, res.stderr)
		}
	})

	t.Run("plain client, aes server", func(t *testing.T) {
		srv, addr := startServe(t, "--scheme", "aes-cbc-hmac", "--psk", keys[0])
		c := dialRaw(t, addr)
		c.send("alice")
		if got := c.line(); !strings.Contains(got, "this room speaks aes-cbc-hmac") {
			t.Errorf("nc-like client: got %q, want a line saying the room speaks aes-cbc-hmac", got)
		}
		srv.waitStderr("the peer speaks plain, not aes-cbc-hmac")
	})

	t.Run("key file is world-readable", func(t *testing.T) {
		open := filepath.Join(dir, "open.psk")
		data, _ := os.ReadFile(keys[0])
		os.WriteFile(open, data, 0o644)
		os.Chmod(open, 0o644)
		res := runParley(t, "", "join", "--server", "127.0.0.1:1", "--timeout", "1s", "--name", "alice", "--scheme", "aes-cbc-hmac", "--psk", open)
		if !strings.Contains(res.stderr, "readable by other users") {
			t.Errorf("no warning about a world-readable key; stderr:\n%s", res.stderr)
		}
	})
}
