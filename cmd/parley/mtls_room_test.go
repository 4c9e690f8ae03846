package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestMTLSNamesAreBoundToCertificates: in an mtls room the certificate, not
// the name line, decides who a member is; /nick is refused and /whoami
// shows the verified identity.
func TestMTLSNamesAreBoundToCertificates(t *testing.T) {
	issueAliceCerts(t)
	_, addr := startServe(t, "--scheme", "mtls")
	dir := filepath.Join(testHome(t), "certs")
	res := runParley(t, "/nick teacher\n/whoami\n", "join", "--scheme", "mtls", "--server", addr, "--name", "teacher",
		"--cert", filepath.Join(dir, "alice.crt"), "--key", filepath.Join(dir, "alice.key"), "--sigkey", filepath.Join(dir, "alice.sigkey"))
	if res.code != 0 {
		t.Fatalf("join exited %d; stderr:\n%s", res.code, res.stderr)
	}
	for _, want := range []string{
		"* your certificate names you alice; joining as alice",
		"* welcome, alice.",
		"! your name is bound to your client certificate; /nick is not available on mtls",
		"identity verified by client certificate: alice",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, res.stdout)
		}
	}
}

// TestMTLSWithLoginIsTwoFactors: in an mtls room with --auth the
// certificate names the member and the password is a second factor; the
// right certificate with a wrong password does not get in.
func TestMTLSWithLoginIsTwoFactors(t *testing.T) {
	issueAliceCerts(t)
	addUser(t, testHome(t), "alice", "second factor")
	srv, addr := startServe(t, "--scheme", "mtls", "--auth")
	if strings.Contains(srv.Stderr(), "passwords cross the wire") {
		t.Errorf("serve warns about passwords over mtls:\n%s", srv.Stderr())
	}
	dir := filepath.Join(testHome(t), "certs")
	join := func(password string) result {
		return runParleyEnv(t, "/whoami\n", []string{"PARLEY_PASSWORD=" + password}, "join", "--scheme", "mtls", "--server", addr, "--name", "alice",
			"--cert", filepath.Join(dir, "alice.crt"), "--key", filepath.Join(dir, "alice.key"), "--sigkey", filepath.Join(dir, "alice.sigkey"))
	}
	res := join("second factor")
	if res.code != 0 || !strings.Contains(res.stdout, "identity verified by client certificate (alice) and by password") {
		t.Errorf("right certificate and password: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	res = join("guess")
	if res.code != 1 || !strings.Contains(res.stderr, "login failed") || strings.Contains(res.stdout, "* welcome") {
		t.Errorf("right certificate, wrong password: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
}

// issueAliceCerts makes the lab CA, a server certificate for loopback and
// alice's client certificate in the test's home.
func issueAliceCerts(t *testing.T) {
	t.Helper()
	for _, args := range [][]string{
		{"certs", "init"},
		{"certs", "issue", "server", "--host", "127.0.0.1,localhost"},
		{"certs", "issue", "client", "alice"},
	} {
		if res := runParley(t, "", args...); res.code != 0 {
			t.Fatalf("parley %v: exit %d\n%s", args, res.code, res.stderr)
		}
	}
}
