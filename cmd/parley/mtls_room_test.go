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
	for _, args := range [][]string{
		{"certs", "init"},
		{"certs", "issue", "server", "--host", "127.0.0.1,localhost"},
		{"certs", "issue", "client", "alice"},
	} {
		if res := runParley(t, "", args...); res.code != 0 {
			t.Fatalf("parley %v: exit %d\n%s", args, res.code, res.stderr)
		}
	}
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
