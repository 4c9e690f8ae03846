package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// authRoom is a plain room that asks for a password, as 'serve --auth'
// does: after the name it sends "* password for NAME:", reads one line,
// and answers with a welcome or "! login failed: ..." and a close. It
// records every password it was given.
type authRoom struct {
	addr     string
	mu       sync.Mutex
	received []string
}

func (r *authRoom) passwords() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.received...)
}

func startAuthRoom(t *testing.T, password string) *authRoom {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &authRoom{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.serve(c, password)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return r
}

func (r *authRoom) serve(c net.Conn, password string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	sc := bufio.NewScanner(c)
	say := func(line string) { io.WriteString(c, line+"\n") }
	say("* parley room vault (scheme plain)")
	say("* WARNING: plain is INSECURE: every line crosses the network as readable text that anyone on the path can read and rewrite.")
	say("* choose a name: 1-32 letters, digits, _ - or .")
	if !sc.Scan() {
		return
	}
	name := sc.Text()
	say("* password for " + name + ":")
	if !sc.Scan() {
		return
	}
	r.mu.Lock()
	r.received = append(r.received, sc.Text())
	r.mu.Unlock()
	if sc.Text() != password {
		say("! login failed: wrong name or password, or too many attempts; wait and try again")
		return
	}
	say("* welcome, " + name + ". members: " + name + ". type /help for commands")
	say("* history 12:00 bob: you missed this")
	for sc.Scan() {
		switch line := sc.Text(); {
		case line == "/quit":
			say("* bye, " + name)
			return
		case line == "/whoami":
			say("* you are " + name + " in vault, scheme plain")
		default:
			say("* got: " + line)
		}
	}
}

// TestJoinLogin logs in with the line interface from each password
// source, and checks the failures and their hints.
func TestJoinLogin(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file("good", "s3cret pass\r\nsecond line is not read\n")
	tests := []struct {
		name      string
		args      []string
		env       []string
		wantCode  int
		wantOut   string
		wantErr   []string
		wantGiven string // the password the room received, if any
	}{
		{"environment", nil, []string{"PARLEY_PASSWORD=s3cret pass"}, 0, "* got: hello", []string{"parley: warning: plain is insecure: the password crosses the wire readable by anyone watching"}, "s3cret pass"},
		{"file first", []string{"--password-file", good}, []string{"PARLEY_PASSWORD=wrong"}, 0, "* history 12:00 bob: you missed this", nil, "s3cret pass"},
		{"wrong", nil, []string{"PARLEY_PASSWORD=guess"}, 1, "* password for alice:", []string{
			"parley: error: the room refused the login: login failed: wrong name or password, or too many attempts; wait and try again",
			"parley: hint: check the password (--password-file FILE or PARLEY_PASSWORD), or ask the room's host for an account",
		}, "guess"},
		{"no password, no terminal", nil, nil, 1, "", []string{
			"parley: error: the room asks for alice's password and there is no terminal to ask on",
			"parley: hint: use --password-file FILE or PARLEY_PASSWORD",
		}, ""},
		{"missing file", []string{"--password-file", filepath.Join(dir, "nope")}, nil, 1, "", []string{"--password-file: " + filepath.Join(dir, "nope") + " does not exist"}, ""},
		{"empty file", []string{"--password-file", file("empty", "\nsecond\n")}, nil, 1, "", []string{"the first line is empty"}, ""},
		{"too long", nil, []string{"PARLEY_PASSWORD=" + strings.Repeat("p", 1025)}, 1, "", []string{"$PARLEY_PASSWORD: the password is 1025 bytes long; the room takes at most 1024"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			room := startAuthRoom(t, "s3cret pass")
			args := append([]string{"join", "--server", room.addr, "--name", "alice"}, tc.args...)
			res := runParleyEnv(t, "hello\n", tc.env, args...)
			if res.code != tc.wantCode {
				t.Fatalf("got exit %d, want %d; stdout:\n%s\nstderr:\n%s", res.code, tc.wantCode, res.stdout, res.stderr)
			}
			if !strings.Contains(res.stdout, tc.wantOut) {
				t.Errorf("stdout lacks %q:\n%s", tc.wantOut, res.stdout)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
				}
			}
			if strings.Contains(res.stdout+res.stderr, "s3cret") {
				t.Errorf("join printed the password:\n%s\n%s", res.stdout, res.stderr)
			}
			got := room.passwords()
			if tc.wantGiven == "" && len(got) > 0 || tc.wantGiven != "" && (len(got) != 1 || got[0] != tc.wantGiven) {
				t.Errorf("the room received %q, want %q", got, tc.wantGiven)
			}
		})
	}
}

// TestJoinLoginTerminal types the password at the prompts of both
// interfaces on a terminal: it is never shown, and a refusal ends join
// with the room's answer.
func TestJoinLoginTerminal(t *testing.T) {
	tests := []struct {
		name     string
		ui       string
		prompt   string
		password string
		wantCode int
		wantErr  string
	}{
		{"tui", "--tui", "password for alice>", "s3cret pass", 0, ""},
		{"tui refused", "--tui", "password for alice>", "guess", 1, "parley: error: the room refused the login: login failed"},
		{"line", "--plain-ui", "\npassword for alice:", "s3cret pass", 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			room := startAuthRoom(t, "s3cret pass")
			p := startTmux(t, 80, 24, nil, "join", tc.ui, "--server", room.addr, "--name", "alice")
			p.waitScreen(tc.prompt)
			p.keys("-l", tc.password)
			p.keys("Enter")
			if tc.wantCode == 0 {
				screen := p.waitScreen("* history 12:00 bob: you missed this")
				if strings.Contains(screen, tc.password) {
					t.Errorf("the screen shows the password:\n%s", screen)
				}
				if tc.ui == "--tui" && !strings.Contains(screen, "readable by anyone watching") {
					t.Errorf("the screen lacks the warning for an insecure scheme:\n%s", screen)
				}
				p.keys("/quit", "Enter")
			}
			code, stderr := p.exit()
			if code != tc.wantCode || !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("got exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, tc.wantCode, tc.wantErr)
			}
			if got := room.passwords(); len(got) != 1 || got[0] != tc.password {
				t.Errorf("the room received %q, want %q", got, tc.password)
			}
		})
	}
}
