package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Over plain and xor, capture read finds the password on the wire; over
// tls only with the key log, which the capture embeds.
func TestLoginCredentialOnTheWire(t *testing.T) {
	home := testHome(t)
	mustRunHome(t, home, "certs", "init")
	mustRunHome(t, home, "certs", "issue", "server")
	addUser(t, home, "alice", "s3cret-pass")
	for _, scheme := range []string{"plain", "xor", "tls"} {
		t.Run(scheme, func(t *testing.T) {
			_, addr := startServeHome(t, home, "--scheme", scheme, "--auth")
			dir := t.TempDir()
			out := filepath.Join(dir, "login.pcapng")
			var keys []string // for tls, the client's key log, which the tap embeds
			if scheme == "tls" {
				keys = []string{"--keylog", filepath.Join(dir, "client.keys")}
			}
			tap := startParley(t, append([]string{"capture", "tap", "--listen", "127.0.0.1:0", "--upstream", addr, "-w", out}, keys...)...)
			tapAddr := tap.listenAddr()
			r := runParleyEnv(t, "hello\n", []string{"PARLEY_HOME=" + home, "PARLEY_PASSWORD=s3cret-pass"},
				append([]string{"join", "--scheme", scheme, "--server", tapAddr, "--name", "alice"}, keys...)...)
			if r.code != 0 || !strings.Contains(r.stdout, "* welcome, alice") {
				t.Fatalf("join: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			tap.cmd.Process.Signal(os.Interrupt)
			tap.wait(20 * time.Second)

			read := runParley(t, "", "capture", "read", out)
			if read.code != 0 {
				t.Fatalf("capture read: %d\n%s", read.code, read.stderr)
			}
			if want := `CREDENTIAL FOUND: user "alice" password "s3cret-pass"`; !strings.Contains(read.stdout, want) {
				t.Errorf("capture read lacks %s:\n%s", want, read.stdout)
			}
			if scheme == "tls" {
				eve := runParley(t, "", "capture", "read", "--no-keys", out)
				if strings.Contains(eve.stdout, "CREDENTIAL") || strings.Contains(eve.stdout, "s3cret") {
					t.Errorf("without the keys, Eve still reads the login:\n%s", eve.stdout)
				}
			}
		})
	}
}
