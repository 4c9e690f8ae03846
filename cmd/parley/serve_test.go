package main

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// TestRoomProtocolThroughBinary drives a real 'parley serve' with raw TCP
// clients that behave like nc.
func TestRoomProtocolThroughBinary(t *testing.T) {
	srv, addr := startServe(t, "--room", "class", "--max-line", "4096")
	alice := dialRaw(t, addr)
	if got, want := alice.line(), "* parley room class (scheme plain)"; got != want {
		t.Fatalf("greeting: got %q, want %q", got, want)
	}
	alice.until("* choose a name")
	alice.send("")
	if got := alice.line(); !strings.HasPrefix(got, "! a name cannot be empty") {
		t.Errorf("empty name: got %q", got)
	}
	alice.send("alice")
	alice.until("* welcome, alice")

	bob := joinRaw(t, addr, "bob")
	alice.until("* bob joined")
	bob.send("hello from bob")
	if got, want := alice.line(), "bob: hello from bob"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	bob.send(strings.Repeat("x", 5000))
	if got := bob.line(); !strings.HasPrefix(got, "! line too long") {
		t.Errorf("long line: got %q", got)
	}
	bob.send("\x1b]0;pwned\x07title")
	if got, want := alice.line(), "bob: ^[]0;pwned^Gtitle"; got != want {
		t.Errorf("escape: got %q, want %q", got, want)
	}
	bob.send("/quit")
	bob.until("* bye, bob")
	if got, want := alice.line(), "* bob left (quit)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	// SIGTERM: members are told, the server exits 0.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	alice.until("* server shutting down")
	if code := srv.wait(20 * time.Second); code != 0 {
		t.Errorf("serve exited %d after SIGTERM, want 0; stderr:\n%s", code, srv.Stderr())
	}
	if !strings.Contains(srv.Stderr(), "parley: room closed") {
		t.Errorf("serve did not say it closed; stderr:\n%s", srv.Stderr())
	}
}

func TestJoinPiped(t *testing.T) {
	_, addr := startServe(t)
	watcher := joinRaw(t, addr, "watcher")
	res := runParley(t, "first line\nsecond line\n", "join", "--server", addr, "--name", "alice")
	if res.code != 0 {
		t.Fatalf("join exited %d; stderr:\n%s", res.code, res.stderr)
	}
	for _, want := range []string{"* parley room lobby (scheme plain)", "* welcome, alice", "* bye, alice"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, res.stdout)
		}
	}
	if !strings.Contains(res.stderr, "plain is INSECURE") {
		t.Errorf("no insecure-scheme warning on stderr:\n%s", res.stderr)
	}
	watcher.until("* alice joined")
	for _, want := range []string{"alice: first line", "alice: second line", "* alice left (quit)"} {
		if got := watcher.line(); got != want {
			t.Errorf("watcher got %q, want %q", got, want)
		}
	}
}

func TestJoinSeesOthersAsTheyArrive(t *testing.T) {
	_, addr := startServe(t)
	j := startParley(t, "join", "--server", addr, "--name", "alice")
	j.waitStdout("* welcome, alice")
	bob := joinRaw(t, addr, "bob")
	bob.send("are you there?")
	// Lines are written as they arrive, not when join exits.
	j.waitStdout("bob: are you there?")
	j.stdin.Close()
	if code := j.wait(20 * time.Second); code != 0 {
		t.Errorf("join exited %d; stderr:\n%s", code, j.Stderr())
	}
}

func TestJoinErrors(t *testing.T) {
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := l.Addr().String()
	l.Close()

	// A server that is not parley.
	notParley, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer notParley.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := notParley.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, "SSH-2.0-OpenSSH_9.2\r\n")
			c.Close()
		}
	}()

	// A server that closes the connection on a member: the room shuts down.
	srv, addr := startServe(t)

	tests := []struct {
		name     string
		args     []string
		code     int
		stderrIn string
	}{
		{"refused", []string{"join", "--server", closedAddr, "--name", "a"}, 1, "nothing is listening on " + closedAddr},
		{"not parley", []string{"join", "--server", notParley.Addr().String(), "--name", "a"}, 1, "is not a parley room"},
		{"bad address", []string{"join", "--server", "localhost", "--name", "a"}, 2, `--server "localhost" is not an address`},
		{"no name", []string{"join", "--server", addr}, 2, "join needs --name"},
		{"unknown scheme", []string{"join", "--server", addr, "--name", "a", "--scheme", "rot13"}, 2, `--scheme "rot13" is not a scheme`},
		{"unknown flag", []string{"join", "--nmae", "a"}, 2, "flag provided but not defined"},
		{"unknown command", []string{"jion"}, 2, `unknown command "jion"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runParley(t, "", tt.args...)
			if res.code != tt.code {
				t.Errorf("exit code: got %d, want %d; stderr:\n%s", res.code, tt.code, res.stderr)
			}
			if !strings.Contains(res.stderr, tt.stderrIn) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderrIn, res.stderr)
			}
			if !strings.Contains(res.stderr, "parley: error: ") {
				t.Errorf("stderr lacks the error prefix:\n%s", res.stderr)
			}
		})
	}

	t.Run("name taken", func(t *testing.T) {
		joinRaw(t, addr, "taken")
		res := runParley(t, "hi\n", "join", "--server", addr, "--name", "TAKEN")
		if res.code != 1 || !strings.Contains(res.stderr, "the name TAKEN is taken") {
			t.Errorf("got exit %d, stderr:\n%s", res.code, res.stderr)
		}
	})

	t.Run("server shuts down", func(t *testing.T) {
		j := startParley(t, "join", "--server", addr, "--name", "stayer")
		j.waitStdout("* welcome, stayer")
		srv.cmd.Process.Signal(os.Interrupt)
		if code := j.wait(20 * time.Second); code != 1 {
			t.Errorf("join exited %d, want 1", code)
		}
		if !strings.Contains(j.Stderr(), "the room shut down") {
			t.Errorf("join did not say why:\n%s", j.Stderr())
		}
	})
}

func TestServeErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name     string
		args     []string
		code     int
		stderrIn string
	}{
		{"port in use", []string{"serve", "--listen", busy.Addr().String()}, 1, "cannot listen on " + busy.Addr().String() + ": the address is already in use"},
		{"bad listen", []string{"serve", "--listen", "5050"}, 2, `--listen "5050" is not an address`},
		{"bad port", []string{"serve", "--listen", "127.0.0.1:99999"}, 2, "bad port"},
		{"stray argument", []string{"serve", "now"}, 2, "serve takes no arguments"},
		{"bad log format", []string{"--log-format", "xml", "serve"}, 2, `--log-format "xml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runParley(t, "", tt.args...)
			if res.code != tt.code || !strings.Contains(res.stderr, tt.stderrIn) {
				t.Errorf("got exit %d (want %d), stderr:\n%s\nwant it to contain %q", res.code, tt.code, res.stderr, tt.stderrIn)
			}
		})
	}
}

func TestServeIPv6AndJSONLogs(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	l.Close()
	p := startParley(t, "serve", "--listen", "[::1]:0", "--log-format", "json")
	addr := p.listenAddr()
	if !strings.HasPrefix(addr, "[::1]:") {
		t.Fatalf("got address %q, want [::1]:PORT", addr)
	}
	joinRaw(t, addr, "six")
	p.waitStderr(`"msg":"joined"`)
}

func TestHelpEverywhere(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"join", "-h"}, {"help", "join"}, {"version"}} {
		res := runParley(t, "", args...)
		if res.code != 0 || res.stdout == "" {
			t.Errorf("parley %v: exit %d, stdout %q, stderr %q", args, res.code, res.stdout, res.stderr)
		}
	}
	res := runParley(t, "", "completion", "bash")
	if res.code != 0 || !strings.Contains(res.stdout, "complete -o bashdefault") {
		t.Errorf("completion bash: exit %d, stdout %q", res.code, res.stdout)
	}
	res = runParley(t, "", "--generate-bash-completion")
	if !strings.Contains(res.stdout, "serve") || !strings.Contains(res.stdout, "join") {
		t.Errorf("bash completion candidates lack commands: %q", res.stdout)
	}
}

func TestReorderArgs(t *testing.T) {
	app := &cli.App{
		Flags: []cli.Flag{&cli.StringFlag{Name: "home"}},
		Commands: []*cli.Command{{
			Name: "capture",
			Subcommands: []*cli.Command{{
				Name: "read",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "json"},
					&cli.StringFlag{Name: "psk"},
				},
			}},
		}},
	}
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"flags after positional", []string{"p", "capture", "read", "F", "--json"}, []string{"p", "capture", "read", "--json", "F"}},
		{"value flag after positional", []string{"p", "capture", "read", "F", "--psk", "k", "G"}, []string{"p", "capture", "read", "--psk", "k", "F", "G"}},
		{"global after command", []string{"p", "capture", "read", "F", "--home", "/h"}, []string{"p", "--home", "/h", "capture", "read", "F"}},
		{"equals form", []string{"p", "capture", "read", "F", "--psk=k"}, []string{"p", "capture", "read", "--psk=k", "F"}},
		{"double dash stops", []string{"p", "capture", "read", "--", "--json"}, []string{"p", "capture", "read", "--", "--json"}},
		{"positional named like a command", []string{"p", "capture", "read", "capture"}, []string{"p", "capture", "read", "capture"}},
		{"already in order", []string{"p", "--home", "h", "capture", "read", "--json", "F"}, []string{"p", "--home", "h", "capture", "read", "--json", "F"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reorderArgs(app, tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
