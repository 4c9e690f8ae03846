package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startMitm starts 'parley mitm' on a free loopback port in front of
// upstream and returns it and the address members join.
func startMitm(t *testing.T, upstream string, args ...string) (*proc, string) {
	t.Helper()
	p := startParley(t, append([]string{"mitm", "--listen", "127.0.0.1:0", "--upstream", upstream, "--handshake-timeout", "5s"}, args...)...)
	return p, p.listenAddr()
}

// schemeSetup makes, in t's parley home, what scheme needs (a PSK, a lab
// CA with a server certificate and client certificates for alice and bob)
// and returns the flags that serve and join both take.
func schemeSetup(t *testing.T, scheme string) []string {
	t.Helper()
	run := func(args ...string) {
		t.Helper()
		if res := runParley(t, "", args...); res.code != 0 {
			t.Fatalf("parley %v exited %d; stderr:\n%s", args, res.code, res.stderr)
		}
	}
	flags := []string{"--scheme", scheme}
	switch scheme {
	case "aes-cbc", "aes-cbc-hmac":
		psk := filepath.Join(testHome(t), "room.psk")
		run("keys", "gen", "--out", psk)
		flags = append(flags, "--psk", psk)
	case "tls", "mtls":
		run("certs", "init")
		run("certs", "issue", "server")
		if scheme == "mtls" {
			run("certs", "issue", "client", "alice")
			run("certs", "issue", "client", "bob")
		}
	}
	return flags
}

// say writes lines to a piped join and closes its stdin, so that it sends
// /quit after them.
func (p *proc) say(lines ...string) {
	p.t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(p.stdin, l+"\n"); err != nil {
			p.t.Fatalf("writing %q to join: %v", l, err)
		}
	}
	p.stdin.Close()
}

// TestMitmThroughBinary runs a real 'parley serve', 'parley mitm' and two
// real 'parley join' processes per scheme and action: bob joins the room
// directly, alice through Mallory. It checks what the members saw, and what
// the relay said.
func TestMitmThroughBinary(t *testing.T) {
	tests := []struct {
		name      string
		scheme    string
		mitm      []string // relay flags
		join      []string // alice's extra join flags
		say       []string // alice's lines
		bobSees   []string // in order
		bobNot    []string // checked once bob saw bobSees
		aliceFail string   // alice's join exits 1 with this on stderr; "" means it exits 0
		relay     []string // lines on the relay's stdout
		warning   string   // on the relay's stderr
	}{
		{name: "plain replace", scheme: "plain", mitm: []string{"--replace", "at 5=at 9"},
			say: []string{"meet at 5"}, bobSees: []string{"alice: meet at 9", "* alice left (quit)"}, bobNot: []string{"alice: meet at 5"},
			relay: []string{`READ alice→room: "meet at 5" (record 2)`, `REWROTE alice→room: "meet at 5" → "meet at 9"`}},
		{name: "xor replay and inject", scheme: "xor", mitm: []string{"--replay", "2", "--inject", "mallory was here"},
			say: []string{"pay bob 5", "done"}, bobSees: []string{"alice: mallory was here", "alice: pay bob 5", "alice: pay bob 5", "alice: done"},
			relay: []string{"KEY: xor key", "REPLAYED alice→room record 2", "INJECTED Mallory→room"}},
		{name: "xor drop", scheme: "xor", mitm: []string{"--drop", "2"},
			say: []string{"pay bob 5", "done"}, bobSees: []string{"alice: done"}, bobNot: []string{"alice: pay bob 5"},
			relay: []string{`DROPPED alice→room record 2 (11 bytes) "pay bob 5"`}},
		{name: "xor flip, key by brute force", scheme: "xor", mitm: []string{"--flip", "0:0x20@2", "--xor-brute-force"},
			say: []string{"Pay bob 5", "done"}, bobSees: []string{"alice: pay bob 5", "alice: done"}, bobNot: []string{"alice: Pay bob 5"},
			relay: []string{"found by trying all 256 keys", `"Pay bob 5" → "pay bob 5"`}},
		{name: "aes-cbc flip the IV", scheme: "aes-cbc", mitm: []string{"--flip", "0:0x20@2"},
			say: []string{"Pay bob 5", "done"}, bobSees: []string{"alice: pay bob 5", "alice: done"}, bobNot: []string{"alice: Pay bob 5"},
			relay: []string{"FLIPPED client 1→room record 2", "flipped byte 0 of the IV: plaintext byte 0 XOR 0x20"}},
		{name: "aes-cbc-hmac flip", scheme: "aes-cbc-hmac", mitm: []string{"--flip", "0:0x20"},
			say: []string{"pay bob 5"}, bobSees: []string{"* alice left (protocol error)"}, bobNot: []string{"alice: "},
			aliceFail: "closed the connection", relay: []string{"DETECTED by the room: bad record MAC", "Mallory flipped record 2"}},
		{name: "aes-cbc-hmac replay", scheme: "aes-cbc-hmac", mitm: []string{"--replay", "2"},
			say: []string{"pay bob 5"}, bobSees: []string{"alice: pay bob 5", "* alice left (protocol error)"},
			aliceFail: "closed the connection", relay: []string{"DETECTED by the room: bad record MAC", "Mallory replayed record 2"}},
		{name: "aes-cbc-hmac drop", scheme: "aes-cbc-hmac", mitm: []string{"--drop", "2"},
			say: []string{"pay bob 5", "done"}, bobSees: []string{"* alice left (protocol error)"}, bobNot: []string{"alice: "},
			aliceFail: "closed the connection", relay: []string{"DETECTED by the room: bad record MAC", "Mallory dropped record 2"}},
		{name: "aes-cbc-hmac inject", scheme: "aes-cbc-hmac", mitm: []string{"--inject", "mallory was here"},
			say: []string{"pay bob 5"}, bobSees: []string{"* alice left ("}, bobNot: []string{"alice: "},
			aliceFail: "closed the connection", relay: []string{"DETECTED by the room: bad record MAC", "Mallory injected"},
			warning: "cannot encrypt"},
		{name: "aes-cbc-hmac replace runs in show mode", scheme: "aes-cbc-hmac", mitm: []string{"--replace", "5=9"},
			say: []string{"pay bob 5"}, bobSees: []string{"alice: pay bob 5", "* alice left (quit)"},
			relay: []string{"OPAQUE client 1→room record 2"}, warning: "--replace makes no sense on aes-cbc-hmac: Mallory cannot read"},
		{name: "tls member verifies", scheme: "tls", mitm: []string{"--replace", "5=9"},
			aliceFail: "unknown authority", relay: []string{"BLOCKED: client 1 rejected our certificate (unknown authority)"}},
		{name: "tls member skips verification", scheme: "tls", mitm: []string{"--replace", "5=9"}, join: []string{"--insecure-skip-verify"},
			say: []string{"pay bob 5"}, bobSees: []string{"alice: pay bob 9", "* alice left (quit)"}, bobNot: []string{"alice: pay bob 5"},
			relay: []string{"INTERCEPTED", `READ alice→room: "pay bob 5"`, `REWROTE alice→room: "pay bob 5" → "pay bob 9"`}},
		{name: "mtls member verifies", scheme: "mtls",
			aliceFail: "unknown authority", relay: []string{"BLOCKED: client 1 rejected our certificate (unknown authority)"}},
		{name: "mtls member skips verification", scheme: "mtls", join: []string{"--insecure-skip-verify"}, aliceFail: "parley: error:",
			relay: []string{"INTERCEPTED", "CN=alice", "BLOCKED: the room rejected our client certificate (unknown authority)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags := schemeSetup(t, tt.scheme)
			serve, room := startServe(t, append(flags, "--log-level", "debug")...)
			mitm, addr := startMitm(t, room, append([]string{"--scheme", tt.scheme}, tt.mitm...)...)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("relay's stdout:\n%s\nroom's stderr:\n%s", mitm.Stdout(), serve.Stderr())
				}
			})
			bob := startParley(t, append([]string{"join", "--server", room, "--name", "bob"}, flags...)...)
			bob.waitStdout("* welcome, bob")

			alice := startParley(t, append(append([]string{"join", "--server", addr, "--name", "alice"}, flags...), tt.join...)...)
			alice.say(tt.say...)
			code := alice.wait(30 * time.Second)
			switch {
			case tt.aliceFail == "" && code != 0:
				t.Errorf("alice's join exited %d, want 0; stderr:\n%s", code, alice.Stderr())
			case tt.aliceFail != "" && (code != 1 || !strings.Contains(alice.Stderr(), tt.aliceFail)):
				t.Errorf("alice's join exited %d, want 1 with %q; stderr:\n%s", code, tt.aliceFail, alice.Stderr())
			}
			for _, want := range tt.relay {
				mitm.waitStdout(want)
			}
			seen := 0
			for _, want := range tt.bobSees {
				want := want
				waitFor(t, 20*time.Second, fmt.Sprintf("bob to see %q; bob's stdout:\n%s", want, bob.Stdout()), func() bool {
					return strings.Count(bob.Stdout(), want) > countIn(tt.bobSees[:seen], want)
				})
				seen++
			}
			for _, not := range tt.bobNot {
				if strings.Contains(bob.Stdout(), not) {
					t.Errorf("bob saw %q; bob's stdout:\n%s", not, bob.Stdout())
				}
			}
			if tt.warning != "" && !strings.Contains(mitm.Stderr(), tt.warning) {
				t.Errorf("mitm's stderr lacks %q:\n%s", tt.warning, mitm.Stderr())
			}
		})
	}
}

func countIn(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// TestMitmUpstreamDown: with the room down the relay says so per connection
// and keeps listening; once the room is up, members get through.
func TestMitmUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	room := ln.Addr().String()
	ln.Close()
	mitm, addr := startMitm(t, room)
	res := runParley(t, "", "join", "--server", addr, "--name", "alice")
	if res.code != 1 {
		t.Errorf("join with the room down: exited %d, want 1; stderr:\n%s", res.code, res.stderr)
	}
	mitm.waitStdout(fmt.Sprintf("ERROR: the room at %s is down (connection refused); closed the member's connection and still listening", room))

	startServe(t, "--listen", room)
	res = runParley(t, "hello\n", "join", "--server", addr, "--name", "alice")
	if res.code != 0 || !strings.Contains(res.stdout, "* welcome, alice") {
		t.Errorf("join with the room up: exited %d, want 0 and a welcome; stdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	mitm.waitStdout(`READ alice→room: "hello" (record 2)`)
}

// TestMitmSchemeMismatch: a relay whose scheme is not the room's says so in
// one sentence.
func TestMitmSchemeMismatch(t *testing.T) {
	_, room := startServe(t, "--scheme", "xor")
	mitm, addr := startMitm(t, room, "--scheme", "plain")
	res := runParley(t, "", "join", "--server", addr, "--name", "alice")
	if res.code != 1 {
		t.Errorf("join: exited %d, want 1; stderr:\n%s", res.code, res.stderr)
	}
	mitm.waitStdout("MISMATCH: the room speaks xor, not plain; start the relay with --scheme xor")
}

// TestMitmJSONAndCapture: --json prints one object per event, and -w
// writes a pcapng of both legs when the relay stops.
func TestMitmJSONAndCapture(t *testing.T) {
	_, room := startServe(t)
	out := filepath.Join(t.TempDir(), "mitm.pcapng")
	mitm, addr := startMitm(t, room, "--json", "-w", out, "--replace", "5=9")
	res := runParley(t, "pay 5\n", "join", "--server", addr, "--name", "alice")
	if res.code != 0 {
		t.Fatalf("join: exited %d; stderr:\n%s", res.code, res.stderr)
	}
	mitm.waitStdout(`"kind":"rewrote"`)
	mitm.cmd.Process.Signal(os.Interrupt)
	if code := mitm.wait(20 * time.Second); code != 0 {
		t.Fatalf("mitm exited %d after Ctrl-C; stderr:\n%s", code, mitm.Stderr())
	}
	var kinds []string
	for _, line := range strings.Split(strings.TrimSpace(mitm.Stdout()), "\n") {
		var e struct {
			Kind string `json:"kind"`
			From string `json:"from"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("stdout line %q is not JSON: %v", line, err)
		}
		kinds = append(kinds, e.Kind)
	}
	if got := strings.Join(kinds, " "); !strings.Contains(got, "connect") || !strings.Contains(got, "read") || !strings.Contains(got, "closed") {
		t.Errorf("event kinds: got %s, want connect, read, rewrote and closed among them", got)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		t.Fatalf("%s does not start with a pcapng section header", out)
	}
	read := runParley(t, "", "capture", "read", out)
	if read.code != 0 {
		t.Fatalf("capture read exited %d; stderr:\n%s", read.code, read.stderr)
	}
	for _, want := range []string{"pay 5", "pay 9"} {
		if !strings.Contains(read.stdout, want) {
			t.Errorf("capture read lacks %q (both legs):\n%s", want, read.stdout)
		}
	}
}

// TestMitmMisuse: bad flags exit 2 with a hint.
func TestMitmMisuse(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--scheme", "rot13"}, `--scheme "rot13" is not a scheme`},
		{[]string{"--flip", "3"}, "is not OFFSET:MASK"},
		{[]string{"--replace", "noequals"}, "is not OLD=NEW"},
		{[]string{"--upstream", "nowhere"}, `--upstream "nowhere" is not an address`},
		{[]string{"--scheme", "plain", "--cert", "x.crt"}, "--cert and --key only apply to --scheme tls or mtls"},
		{[]string{"--replay", "2", "--drop", "2"}, "cannot both replay and drop record 2"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			res := runParley(t, "", append([]string{"mitm"}, tt.args...)...)
			if res.code != 2 || !strings.Contains(res.stderr, tt.want) || !strings.Contains(res.stderr, "parley: ") {
				t.Errorf("got exit %d, stderr:\n%s\nwant exit 2 with %q", res.code, res.stderr, tt.want)
			}
		})
	}
}
