package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tmuxPane is the real binary running in a tmux pane of its own server,
// driven with send-keys and read with capture-pane.
type tmuxPane struct {
	t        *testing.T
	sock     string
	exitFile string
	errFile  string
}

// startTmux runs parley with args in a width x height tmux pane with NO_COLOR
// set, the test's parley home, and env. stderr goes to a file; when parley
// exits, its exit code goes to another and the pane stays for inspection.
func startTmux(t *testing.T, width, height int, env []string, args ...string) *tmuxPane {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("needs tmux to drive the terminal interface (CI installs it)")
	}
	dir := t.TempDir()
	p := &tmuxPane{
		t:        t,
		sock:     fmt.Sprintf("parley-test-%d-%d", os.Getpid(), time.Now().UnixNano()),
		exitFile: filepath.Join(dir, "exit"),
		errFile:  filepath.Join(dir, "stderr"),
	}
	cmd := []string{"env", "NO_COLOR=1", "PARLEY_HOME=" + testHome(t)}
	cmd = append(append(cmd, env...), parleyBin)
	cmd = append(cmd, args...)
	var quoted []string
	for _, a := range cmd {
		quoted = append(quoted, tmuxQuote(a))
	}
	script := fmt.Sprintf("%s 2>%s; echo $? >%s; sleep 600", strings.Join(quoted, " "), tmuxQuote(p.errFile), tmuxQuote(p.exitFile))
	p.tmux("-f", "/dev/null", "new-session", "-d", "-s", "join", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height), "sh", "-c", script)
	t.Cleanup(func() { exec.Command("tmux", "-L", p.sock, "kill-server").Run() })
	return p
}

func tmuxQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (p *tmuxPane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", p.sock}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// screen returns what the pane shows.
func (p *tmuxPane) screen() string { return p.tmux("capture-pane", "-p", "-t", "join") }

// keys types keys into the pane (tmux key names such as Enter or F2).
func (p *tmuxPane) keys(keys ...string) {
	p.tmux(append([]string{"send-keys", "-t", "join"}, keys...)...)
}

// waitScreen waits until the pane shows want, and returns the screen.
func (p *tmuxPane) waitScreen(want string) string {
	p.t.Helper()
	var s string
	waitFor(p.t, 20*time.Second, fmt.Sprintf("the pane to show %q", want), func() bool {
		s = p.screen()
		return strings.Contains(s, want)
	})
	return s
}

// exit waits for parley to exit and returns its exit code and stderr.
func (p *tmuxPane) exit() (int, string) {
	p.t.Helper()
	var code []byte
	waitFor(p.t, 20*time.Second, "parley to exit; the pane shows:\n"+p.screen(), func() bool {
		b, err := os.ReadFile(p.exitFile)
		code = b
		return err == nil && len(b) > 0
	})
	n, err := strconv.Atoi(strings.TrimSpace(string(code)))
	if err != nil {
		p.t.Fatalf("exit code %q: %v", code, err)
	}
	stderr, _ := os.ReadFile(p.errFile)
	return n, string(stderr)
}

// paneBytes returns the bytes of the wire pane's block that starts with
// the row beginning with head: the hex columns of its rows of bytes (from
// column 14, as the pane lays them out) up to its "Eve:" row.
func paneBytes(t *testing.T, screen, head string) string {
	t.Helper()
	rows := strings.Split(screen, "\n")
	for i, r := range rows {
		if !strings.HasPrefix(r, head) {
			continue
		}
		var hex []string
		for _, row := range rows[i+1:] {
			if strings.HasPrefix(row, "  Eve:") {
				return strings.Join(hex, " ")
			}
			if len(row) < 14 {
				break
			}
			hex = append(hex, strings.Fields(row[14:min(len(row), 14+47)])...)
		}
		break
	}
	t.Fatalf("no complete %q block in the wire pane:\n%s", head, screen)
	return ""
}

var dumpRow = regexp.MustCompile(`^    [0-9a-f]{8}  ([0-9a-f ]+?)\s+\|`)

// captureBytes returns the bytes 'capture read --hex' shows for the first
// message whose summary line contains all of want.
func captureBytes(t *testing.T, read string, want ...string) string {
	t.Helper()
	rows := strings.Split(read, "\n")
	for i, r := range rows {
		match := true
		for _, w := range want {
			match = match && strings.Contains(r, w)
		}
		if !match {
			continue
		}
		var hex []string
		for _, row := range rows[i+1:] {
			m := dumpRow.FindStringSubmatch(row)
			if m == nil {
				break
			}
			hex = append(hex, strings.Fields(m[1])...)
		}
		return strings.Join(hex, " ")
	}
	t.Fatalf("capture read shows no message with %q:\n%s", want, read)
	return ""
}

// TestJoinTUI drives the real binary's terminal interface in tmux against
// a real xor room, through a capture tap: alice types a line that bob
// receives, bob's line reaches alice's screen, and the bytes the wire pane
// shows for both are the bytes 'capture read --hex' shows for the same
// messages on alice's connection. /quit then leaves with the terminal
// restored.
func TestJoinTUI(t *testing.T) {
	_, room := startServe(t, "--scheme", "xor")
	out := filepath.Join(t.TempDir(), "tui.pcapng")
	tap, tapAddr := startTapProc(t, room, out)

	alice := startTmux(t, 80, 24, nil, "join", "--server", tapAddr, "--scheme", "xor", "--name", "alice")
	alice.waitScreen("alice>")
	bob := startParley(t, "join", "--server", tapAddr, "--scheme", "xor", "--name", "bob")
	bob.waitStdout("* welcome, bob")
	alice.waitScreen("bob joined")

	alice.keys("hello bob, this is alice", "Enter")
	bob.waitStdout("alice: hello bob, this is alice")
	fmt.Fprintln(bob.stdin, "hi alice, bob here")
	// The Eve row comes last in the wire pane, so once it shows, the rows of
	// bytes above it are drawn too.
	screen := alice.waitScreen(`Eve: "bob: hi alice, bob here"`)
	for _, want := range []string{
		"xor: INSECURE", "members (2)", "alice: hello bob, this is alice",
		"wire: an eavesdropper reads everything",
		`Eve: "hello bob, this is alice" (key 0x`,
		`Eve: "bob: hi alice, bob here" (key 0x`,
	} {
		if !strings.Contains(screen, want) {
			t.Errorf("the screen lacks %q:\n%s", want, screen)
		}
	}
	// An xor record: a 2-byte length, then the line's bytes.
	sent := paneBytes(t, screen, "→ sent")
	received := paneBytes(t, screen, "← received")
	if n := len(strings.Fields(sent)); n != 2+len("hello bob, this is alice") {
		t.Fatalf("the wire pane shows %d bytes sent, want the whole record", n)
	}
	t.Logf("the TUI at 80x24:\n%s", screen)

	alice.keys("/quit", "Enter")
	code, stderr := alice.exit()
	if code != 0 {
		t.Fatalf("join exited %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "xor is INSECURE") {
		t.Errorf("stderr lacks the scheme's warning:\n%s", stderr)
	}
	if s := alice.screen(); strings.Contains(s, "alice>") || strings.Contains(s, "wire:") {
		t.Errorf("the terminal still shows the interface after join exited:\n%s", s)
	}
	bob.stdin.Close()
	if code := bob.wait(20 * time.Second); code != 0 {
		t.Fatalf("bob's join exited %d; stderr:\n%s", code, bob.Stderr())
	}
	tap.cmd.Process.Signal(os.Interrupt)
	if code := tap.wait(20 * time.Second); code != 0 {
		t.Fatalf("tap exited %d; stderr:\n%s", code, tap.Stderr())
	}

	read := runParley(t, "", "capture", "read", "--hex", out)
	if read.code != 0 {
		t.Fatalf("capture read exited %d; stderr:\n%s", read.code, read.stderr)
	}
	if want := captureBytes(t, read.stdout, "#1 C->S", `"hello bob, this is alice"`); sent != want {
		t.Errorf("the wire pane shows alice's line as\n%s\ncapture read shows\n%s", sent, want)
	}
	if want := captureBytes(t, read.stdout, "#1 S->C", `"bob: hi alice, bob here"`); received != want {
		t.Errorf("the wire pane shows bob's line as\n%s\ncapture read shows\n%s", received, want)
	}
}

// TestJoinUIChoice checks which interface join picks, and the misuse of
// the flags that choose it.
func TestJoinUIChoice(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"tui without a terminal", []string{"join", "--tui", "--name", "a"}, 2, "--tui needs a terminal on stdin and stdout"},
		{"both", []string{"join", "--tui", "--plain-ui", "--name", "a"}, 2, "--tui and --plain-ui exclude each other"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runParley(t, "hi\n", tc.args...)
			if res.code != tc.wantCode || !strings.Contains(res.stderr, "parley: error: "+tc.want) {
				t.Errorf("got exit %d, stderr:\n%s\nwant exit %d and %q", res.code, res.stderr, tc.wantCode, tc.want)
			}
		})
	}
}

// TestJoinPlainUIOnTerminal checks that --plain-ui keeps the line
// interface on a terminal.
func TestJoinPlainUIOnTerminal(t *testing.T) {
	_, room := startServe(t, "--scheme", "plain")
	p := startTmux(t, 80, 24, nil, "join", "--plain-ui", "--server", room, "--name", "alice")
	p.waitScreen("* welcome, alice")
	p.keys("/whoami", "Enter")
	screen := p.waitScreen("* you are alice")
	if strings.Contains(screen, "wire:") || !strings.Contains(screen, "alice> ") {
		t.Errorf("--plain-ui did not give the line interface:\n%s", screen)
	}
	p.keys("/quit", "Enter")
	if code, stderr := p.exit(); code != 0 {
		t.Fatalf("join exited %d; stderr:\n%s", code, stderr)
	}
}

var sgr = regexp.MustCompile(`\x1b\[([0-9;:]*)m`)

// colours returns the colour parameters of the SGR sequences in s, as
// 'tmux capture-pane -e' shows them (39 and 49, back to the default
// colour, are not colours).
func colours(s string) []string {
	var found []string
	for _, m := range sgr.FindAllStringSubmatch(s, -1) {
		for _, p := range strings.FieldsFunc(m[1], func(r rune) bool { return r == ';' || r == ':' }) {
			n, _ := strconv.Atoi(p)
			if n >= 30 && n <= 48 && n != 39 || n >= 90 && n <= 107 {
				found = append(found, p)
			}
		}
	}
	return found
}

// TestJoinTUITerminal checks the terminal side of the interface: no colour
// with NO_COLOR and colour without, a resize, F2, and Ctrl-C leaving the
// room with /quit and restoring the terminal.
func TestJoinTUITerminal(t *testing.T) {
	srv, room := startServe(t, "--scheme", "plain")

	coloured := startTmux(t, 80, 24, []string{"NO_COLOR="}, "join", "--server", room, "--name", "bob")
	coloured.waitScreen("bob>")
	if got := colours(coloured.tmux("capture-pane", "-e", "-p", "-t", "join")); len(got) == 0 {
		t.Error("no colour without NO_COLOR")
	}

	p := startTmux(t, 80, 24, nil, "join", "--server", room, "--name", "alice")
	p.waitScreen("alice>")
	if got := colours(p.tmux("capture-pane", "-e", "-p", "-t", "join")); len(got) != 0 {
		t.Errorf("colours %v with NO_COLOR set", got)
	}

	p.tmux("resize-window", "-t", "join", "-x", "60", "-y", "20")
	waitFor(t, 20*time.Second, "the interface to fit 60x20; the pane shows:\n"+p.screen(), func() bool {
		rows := strings.Split(strings.TrimRight(p.screen(), "\n"), "\n")
		return len(rows) == 20 && strings.HasPrefix(rows[19], "alice>") && strings.Contains(rows[0], "plain: INSECURE")
	})
	if !strings.Contains(p.screen(), "wire:") {
		t.Fatalf("no wire pane at 60x20:\n%s", p.screen())
	}
	p.keys("F2")
	waitFor(t, 20*time.Second, "F2 to hide the wire pane", func() bool { return !strings.Contains(p.screen(), "wire:") })

	p.keys("C-c")
	if code, stderr := p.exit(); code != 0 {
		t.Fatalf("join exited %d after Ctrl-C; stderr:\n%s", code, stderr)
	}
	srv.waitStderr("name=alice reason=quit")
	if s := p.screen(); strings.Contains(s, "alice>") {
		t.Errorf("the terminal still shows the interface after Ctrl-C:\n%s", s)
	}
}
