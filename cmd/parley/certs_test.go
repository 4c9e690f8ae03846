package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-edu/parley/certs"
	"github.com/parley-edu/parley/schemes"
)

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func mustRun(t *testing.T, args ...string) result {
	t.Helper()
	return mustRunHome(t, testHome(t), args...)
}

// mustRunHome runs parley with home as PARLEY_HOME, for subtests that share
// their parent's home.
func mustRunHome(t *testing.T, home string, args ...string) result {
	t.Helper()
	r := runParleyEnv(t, "", []string{"PARLEY_HOME=" + home}, args...)
	if r.code != 0 {
		t.Fatalf("parley %v: exit %d, want 0; stderr:\n%s", args, r.code, r.stderr)
	}
	return r
}

func TestCertsInitIdempotent(t *testing.T) {
	dir := filepath.Join(testHome(t), "certs")
	first := mustRun(t, "certs", "init")
	if !strings.Contains(first.stdout, "Created a new lab CA in "+dir) {
		t.Errorf("first init: got\n%s\nwant it to say it created the CA in %s", first.stdout, dir)
	}
	ca1, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	secret1, _ := os.ReadFile(filepath.Join(dir, "signing.secret"))
	second := mustRun(t, "certs", "init")
	if !strings.Contains(second.stdout, "Found the existing lab CA in "+dir) || !strings.Contains(second.stdout, "Found the existing mtls room signing secret") {
		t.Errorf("second init: got\n%s\nwant it to say it found the CA and the secret", second.stdout)
	}
	ca2, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	secret2, _ := os.ReadFile(filepath.Join(dir, "signing.secret"))
	if !bytes.Equal(ca1, ca2) || !bytes.Equal(secret1, secret2) {
		t.Error("the second init replaced the CA or the signing secret")
	}
	for _, r := range []result{first, second} {
		if got := lastLine(r.stdout); !strings.Contains(got, "next: parley certs issue server") {
			t.Errorf("last line: got %q, want the next step", got)
		}
	}
	for name, mode := range map[string]fs.FileMode{"ca.crt": 0o644, "ca.key": 0o400, "signing.secret": 0o600} {
		path := filepath.Join(dir, name)
		if !strings.Contains(first.stdout, path) {
			t.Errorf("init output does not name %s", path)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: got %v (%v), want mode %o", name, fi.Mode().Perm(), err, mode)
		}
	}
}

func TestCertsIssue(t *testing.T) {
	dir := filepath.Join(testHome(t), "certs")
	mustRun(t, "certs", "init")
	srv := mustRun(t, "certs", "issue", "server", "--host", "localhost,127.0.0.1,::1,room.test", "--days", "30")
	cli := mustRun(t, "certs", "issue", "client", "alice", "--rsa")
	for _, tc := range []struct {
		out   string
		files map[string]fs.FileMode
		last  string
	}{
		{srv.stdout, map[string]fs.FileMode{"server.crt": 0o644, "server.key": 0o600}, "Next: parley serve"},
		{cli.stdout, map[string]fs.FileMode{"alice.crt": 0o644, "alice.key": 0o600, "alice.sigkey": 0o600}, "Next: parley join --scheme mtls --name alice"},
	} {
		for name, mode := range tc.files {
			path := filepath.Join(dir, name)
			if !strings.Contains(tc.out, path) {
				t.Errorf("output does not name %s:\n%s", path, tc.out)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
				t.Errorf("%s: got mode %v (%v), want %o", name, fi.Mode().Perm(), err, mode)
			}
		}
		if !strings.Contains(tc.out, "expires ") {
			t.Errorf("output does not say when the certificate expires:\n%s", tc.out)
		}
		if got := lastLine(tc.out); !strings.HasPrefix(got, tc.last) {
			t.Errorf("last line: got %q, want prefix %q", got, tc.last)
		}
	}

	in := mustRun(t, "certs", "inspect", filepath.Join(dir, "server.crt"))
	for _, want := range []string{
		"names (SANs): localhost, room.test, 127.0.0.1, ::1",
		"issuer:       CN=parley lab CA",
		"(valid now, 29 days left)",
		"key:          ECDSA P-256",
		"usages:       server authentication",
		"SHA-256:      ",
		"lab CA:       signed by the lab CA",
		"Verdict: valid and signed by the lab CA; good for a tls/mtls server for localhost, room.test, 127.0.0.1, ::1.",
	} {
		if !strings.Contains(in.stdout, want) {
			t.Errorf("inspect server.crt: want %q in\n%s", want, in.stdout)
		}
	}
	in = mustRun(t, "certs", "inspect", filepath.Join(dir, "alice.crt"))
	for _, want := range []string{"subject:      CN=alice", "key:          RSA 2048", "usages:       client authentication", "names (SANs): none"} {
		if !strings.Contains(in.stdout, want) {
			t.Errorf("inspect alice.crt: want %q in\n%s", want, in.stdout)
		}
	}

	// The signing key is K_user derived from the room's secret.
	secret, _ := certs.ReadSigningSecret(dir)
	sig, err := certs.ReadSigKey(filepath.Join(dir, "alice.sigkey"))
	if err != nil || !bytes.Equal(sig, schemes.UserKey(secret, "alice")) {
		t.Errorf("alice.sigkey: got %x (%v), want schemes.UserKey(secret, alice)", sig, err)
	}
}

func TestCertsBad(t *testing.T) {
	home := testHome(t)
	dir := filepath.Join(home, "certs")
	mustRun(t, "certs", "init")
	for _, tc := range []struct {
		kind, verdict string
	}{
		{"expired", "Verdict: refused everywhere: it expired on "},
		{"wrong-host", "names (SANs): wrong-host.example"},
		{"self-signed", "Verdict: refused: it is self-signed"},
		{"no-client-auth", "usages:       server authentication\n"},
		{"rogue-ca", "Verdict: refused by parley peers that trust the lab CA: another authority signed it."},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			name := "bad-" + tc.kind
			r := mustRunHome(t, home, "certs", "bad", tc.kind, name)
			for _, f := range []string{name + ".crt", name + ".key"} {
				if !strings.Contains(r.stdout, filepath.Join(dir, f)) {
					t.Errorf("output does not name %s:\n%s", f, r.stdout)
				}
			}
			if got := lastLine(r.stdout); !strings.HasPrefix(got, "Try it: ") {
				t.Errorf("last line: got %q, want a \"Try it:\" line", got)
			}
			in := mustRunHome(t, home, "certs", "inspect", filepath.Join(dir, name+".crt"))
			if !strings.Contains(in.stdout, tc.verdict) {
				t.Errorf("inspect: want %q in\n%s", tc.verdict, in.stdout)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "rogue-ca.crt")); err != nil {
		t.Errorf("rogue-ca.crt: %v", err)
	}
}

func TestCertsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		hint string
	}{
		{"issue before init", []string{"certs", "issue", "server"}, 1, "parley: hint: run 'parley certs init' first"},
		{"client without name", []string{"certs", "issue", "client"}, 2, "parley: hint: e.g. parley certs issue client alice"},
		{"bad client name", []string{"certs", "issue", "client", "../evil"}, 2, "parley: hint: a name is 1-32"},
		{"unknown bad kind", []string{"certs", "bad", "weird", "x"}, 2, "parley: hint: choose one of: expired, wrong-host"},
		{"inspect a missing file", []string{"certs", "inspect", "/nonexistent.crt"}, 1, "parley: error: cannot read /nonexistent.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runParley(t, "", tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.hint) {
				t.Errorf("got exit %d, stderr:\n%s\nwant exit %d and %q", r.code, r.stderr, tc.code, tc.hint)
			}
		})
	}
	t.Run("inspect a key", func(t *testing.T) {
		mustRun(t, "certs", "init")
		r := runParley(t, "", "certs", "inspect", filepath.Join(testHome(t), "certs", "ca.key"))
		if r.code != 1 || !strings.Contains(r.stderr, "not a key") {
			t.Errorf("got exit %d, stderr:\n%s\nwant exit 1 and a hint to give a certificate", r.code, r.stderr)
		}
	})
}
