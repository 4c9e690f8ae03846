package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// labHome is a parley home with a lab CA, a server certificate, alice and
// bob as mtls clients, and one certificate of each bad kind named after it
// (rogue-ca's leaf is "rogue").
func labHome(t *testing.T) string {
	t.Helper()
	home := testHome(t)
	mustRunHome(t, home, "certs", "init")
	mustRunHome(t, home, "certs", "issue", "server")
	mustRunHome(t, home, "certs", "issue", "client", "alice")
	mustRunHome(t, home, "certs", "issue", "client", "bob")
	for _, kind := range []string{"expired", "wrong-host", "self-signed", "no-client-auth"} {
		mustRunHome(t, home, "certs", "bad", kind, kind)
	}
	mustRunHome(t, home, "certs", "bad", "rogue-ca", "rogue")
	return home
}

func joinHome(t *testing.T, home, stdin string, args ...string) result {
	t.Helper()
	return runParleyEnv(t, stdin, []string{"PARLEY_HOME=" + home}, append([]string{"join", "--timeout", "10s"}, args...)...)
}

func TestTLSServeJoin(t *testing.T) {
	home := labHome(t)
	keylog := filepath.Join(t.TempDir(), "keys.log")
	for _, tc := range []struct {
		scheme string
		extra  []string
	}{
		{"tls", nil},
		{"tls", []string{"--tls-version", "1.2"}},
		{"mtls", nil},
	} {
		t.Run(tc.scheme+strings.Join(tc.extra, ""), func(t *testing.T) {
			srv, addr := startServeHome(t, home, append([]string{"--scheme", tc.scheme}, tc.extra...)...)
			r := joinHome(t, home, "hello over "+tc.scheme+"\n/whoami\n", append([]string{"--scheme", tc.scheme, "--name", "alice", "--server", addr, "--keylog", keylog}, tc.extra...)...)
			if r.code != 0 {
				t.Fatalf("join: exit %d, stderr:\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "* welcome, alice") {
				t.Errorf("join stdout: got\n%s\nwant a welcome", r.stdout)
			}
			if !strings.Contains(r.stderr, "writing TLS secrets to "+keylog) {
				t.Errorf("join stderr: got\n%s\nwant the key log warning", r.stderr)
			}
			srv.waitStderr("joined")
		})
	}
	if data, err := os.ReadFile(keylog); err != nil || !strings.Contains(string(data), "CLIENT_HANDSHAKE_TRAFFIC_SECRET ") || !strings.Contains(string(data), "CLIENT_RANDOM ") {
		t.Errorf("key log: got %q (%v), want TLS 1.3 and TLS 1.2 secrets", data, err)
	}
}

// TestTLSJoinRefusesBadServer checks that join refuses each bad server
// certificate and says why in words.
func TestTLSJoinRefusesBadServer(t *testing.T) {
	home := labHome(t)
	dir := filepath.Join(home, "certs")
	for _, tc := range []struct {
		cert, want string
	}{
		{"expired", "the server's certificate (expired) expired on "},
		{"wrong-host", "the server's certificate (wrong-host) is for wrong-host.example, not 127.0.0.1"},
		{"self-signed", "is self-signed, so no trusted authority vouches for it — a possible man-in-the-middle"},
		{"rogue", "is signed by an unknown authority (\"parley ROGUE CA (trusted by nobody)\") — a possible man-in-the-middle"},
	} {
		t.Run(tc.cert, func(t *testing.T) {
			_, addr := startServeHome(t, home, "--scheme", "tls", "--cert", filepath.Join(dir, tc.cert+".crt"))
			r := joinHome(t, home, "hi\n", "--scheme", "tls", "--name", "alice", "--server", addr)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("join: got exit %d, stderr:\n%s\nwant exit 1 and %q", r.code, r.stderr, tc.want)
			}
			if strings.Contains(r.stdout, "welcome") {
				t.Errorf("join got into the room:\n%s", r.stdout)
			}
		})
	}
	t.Run("insecure-skip-verify", func(t *testing.T) {
		_, addr := startServeHome(t, home, "--scheme", "tls", "--cert", filepath.Join(dir, "self-signed.crt"))
		r := joinHome(t, home, "hi\n", "--scheme", "tls", "--name", "alice", "--server", addr, "--insecure-skip-verify")
		if r.code != 0 || !strings.Contains(r.stderr, "parley: warning: --insecure-skip-verify is INSECURE") {
			t.Errorf("join: got exit %d, stderr:\n%s\nwant exit 0 and the loud warning", r.code, r.stderr)
		}
	})
}

// TestMTLSJoinRefusedClient checks that an mtls room refuses clients
// without a proper certificate, and both sides say why.
func TestMTLSJoinRefusedClient(t *testing.T) {
	home := labHome(t)
	dir := filepath.Join(home, "certs")
	srv, addr := startServeHome(t, home, "--scheme", "mtls")
	sigkey := filepath.Join(dir, "alice.sigkey")
	for _, tc := range []struct {
		name      string
		args      []string
		code      int
		want, log string
	}{
		{"no certificate", []string{"--name", "carol"}, 1,
			"the server requires a client certificate, and " + filepath.Join(dir, "carol.crt") + " does not exist\nparley: hint: run 'parley certs issue client carol'", ""},
		{"no client-auth usage", []string{"--name", "x", "--cert", filepath.Join(dir, "no-client-auth.crt"), "--sigkey", sigkey}, 1,
			"lacks the client-authentication usage", "lacks the client-authentication usage"},
		{"expired", []string{"--name", "x", "--cert", filepath.Join(dir, "expired.crt"), "--sigkey", sigkey}, 1,
			"the client certificate (expired) expired on ", "the client certificate (expired) expired on "},
		{"rogue CA", []string{"--name", "x", "--cert", filepath.Join(dir, "rogue.crt"), "--sigkey", sigkey}, 1,
			"signed by an unknown authority", "signed by an unknown authority"},
		// With someone else's signing key not even the greeting checks.
		{"wrong signing key", []string{"--name", "alice", "--sigkey", filepath.Join(dir, "bob.sigkey")}, 1,
			"schemes: bad signature on a line from the server: \"* parley room lobby (scheme mtls)\"", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := joinHome(t, home, "secret plan\n", append([]string{"--scheme", "mtls", "--server", addr}, tc.args...)...)
			out := r.stderr + r.stdout
			if r.code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("join: got exit %d, output:\n%s\nwant exit %d and %q", r.code, out, tc.code, tc.want)
			}
			if tc.log != "" {
				srv.waitStderr(tc.log)
			}
		})
	}
	if strings.Contains(srv.Stderr(), "secret plan") {
		t.Errorf("a refused or FAILed message reached the room:\n%s", srv.Stderr())
	}
}

func TestTLSFlagErrors(t *testing.T) {
	empty := testHome(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no CA", []string{"join", "--scheme", "tls", "--name", "a", "--server", "127.0.0.1:1"}, 1, "parley: hint: run 'parley certs init'"},
		{"no server certificate", []string{"serve", "--scheme", "tls", "--listen", "127.0.0.1:0"}, 1, "parley: hint: parley certs init && parley certs issue server"},
		{"bad version", []string{"join", "--scheme", "tls", "--tls-version", "1.1", "--name", "a"}, 2, "--tls-version \"1.1\" is not 1.2 or 1.3"},
		{"cert with plain", []string{"join", "--scheme", "plain", "--cert", "x.crt", "--name", "a"}, 2, "--cert only applies to --scheme tls or mtls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runParleyEnv(t, "", []string{"PARLEY_HOME=" + empty}, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("got exit %d, stderr:\n%s\nwant exit %d and %q", r.code, r.stderr, tc.code, tc.want)
			}
		})
	}
}

// startServeHome starts 'parley serve' with home as PARLEY_HOME.
func startServeHome(t *testing.T, home string, args ...string) (*proc, string) {
	t.Helper()
	p := startParleyEnv(t, []string{"PARLEY_HOME=" + home}, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	return p, p.listenAddr()
}
