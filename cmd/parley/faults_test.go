package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startRelay starts a relay command (capture tap or mitm) and returns it
// with the address it listens on.
func startRelay(t *testing.T, args ...string) (*proc, string) {
	t.Helper()
	p := startParley(t, args...)
	return p, p.listenAddr()
}

// TestRelayUpstreamDisappears kills the room behind 'capture tap' and
// 'mitm' in the middle of a conversation. The members are told the
// connection is gone (exit 1, a clear error, no hang); the relay keeps
// running, refuses newcomers with one log line, and on Ctrl-C writes what
// it captured before the room died.
func TestRelayUpstreamDisappears(t *testing.T) {
	tests := []struct {
		name string
		args func(upstream, out string) []string
	}{
		{"capture tap", func(up, out string) []string {
			return []string{"capture", "tap", "--listen", "127.0.0.1:0", "--upstream", up, "-w", out}
		}},
		{"mitm", func(up, out string) []string {
			return []string{"mitm", "--scheme", "plain", "--listen", "127.0.0.1:0", "--upstream", up, "--handshake-timeout", "2s", "-w", out}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, room := startServe(t)
			out := filepath.Join(t.TempDir(), "room.pcapng")
			relay, addr := startRelay(t, tt.args(room, out)...)

			alice := startParley(t, "join", "--server", addr, "--name", "alice")
			alice.waitStdout("* welcome, alice")
			bob := startParley(t, "join", "--server", addr, "--name", "bob")
			bob.waitStdout("* welcome, bob")
			fmt.Fprintln(alice.stdin, "before the crash")
			bob.waitStdout("alice: before the crash")

			srv.cmd.Process.Kill()
			srv.wait(20 * time.Second)
			for _, p := range []*proc{alice, bob} {
				if code := p.wait(20 * time.Second); code != 1 {
					t.Errorf("join exited %d when the room died, want 1; stderr:\n%s", code, p.Stderr())
				}
				if s := p.Stderr(); !strings.Contains(s, "parley: error: ") || !strings.Contains(s, "closed the connection") && !strings.Contains(s, "lost") {
					t.Errorf("join did not say the connection was lost; stderr:\n%s", s)
				}
			}

			// A newcomer gets a clear error, and the relay stays up.
			res := runParley(t, "", "join", "--server", addr, "--name", "carol", "--timeout", "5s")
			if res.code != 1 || !strings.Contains(res.stderr, "parley: error: ") {
				t.Errorf("a join through the relay to a dead room: got exit %d, want 1 with an error; stderr:\n%s", res.code, res.stderr)
			}
			select {
			case <-relay.done:
				t.Fatalf("the relay exited when its upstream died; stderr:\n%s", relay.Stderr())
			default:
			}

			relay.cmd.Process.Signal(os.Interrupt)
			if code := relay.wait(20 * time.Second); code != 0 {
				t.Errorf("the relay exited %d after Ctrl-C, want 0; stderr:\n%s", code, relay.Stderr())
			}
			for _, bad := range []string{"panic", "goroutine "} {
				if strings.Contains(relay.Stderr(), bad) {
					t.Errorf("the relay's stderr contains %q:\n%s", bad, relay.Stderr())
				}
			}
			read := runParley(t, "", "capture", "read", out)
			if read.code != 0 || !strings.Contains(read.stdout, `"before the crash"`) {
				t.Errorf("capture read of what the relay saw: exit %d, want 0 and the line before the crash; stdout:\n%s\nstderr:\n%s", read.code, read.stdout, read.stderr)
			}
		})
	}
}

// unwritableDir returns a folder in which no file can be created, even by
// root.
func unwritableDir(t *testing.T) string {
	t.Helper()
	if os.Getuid() == 0 {
		// Root ignores file modes; sysfs refuses new files to everyone.
		if f, err := os.CreateTemp("/sys", "parley-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			t.Skip("running as root and /sys accepts new files: no unwritable folder to test with")
		}
		return "/sys"
	}
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestCaptureOutputUnwritable: a capture whose output cannot be written is
// refused before anything is captured, with an error that names the file
// and the flag.
func TestCaptureOutputUnwritable(t *testing.T) {
	out := filepath.Join(unwritableDir(t), "room.pcapng")
	_, room := startServe(t)
	for _, args := range [][]string{
		{"capture", "tap", "--listen", "127.0.0.1:0", "--upstream", room, "-w", out},
		{"mitm", "--listen", "127.0.0.1:0", "--upstream", room, "-w", out},
	} {
		t.Run(args[0], func(t *testing.T) {
			p := startParley(t, args...)
			code := p.wait(20 * time.Second)
			if code == 0 || !strings.Contains(p.Stderr(), "parley: error: ") || !strings.Contains(p.Stderr(), out) {
				t.Errorf("got exit %d, want a failure naming %s; stderr:\n%s", code, out, p.Stderr())
			}
			if strings.Contains(p.Stderr(), "listening on") {
				t.Errorf("started listening before refusing the output; stderr:\n%s", p.Stderr())
			}
		})
	}
}

// TestCaptureWriteFailsAtTheEnd removes the output folder while 'capture
// tap' and 'mitm' record: when they stop, they say the capture could not be
// written (exit 1), and never claim to have written it.
func TestCaptureWriteFailsAtTheEnd(t *testing.T) {
	_, room := startServe(t)
	tests := []struct {
		name string
		args func(out string) []string
	}{
		{"capture tap", func(out string) []string {
			return []string{"capture", "tap", "--listen", "127.0.0.1:0", "--upstream", room, "-w", out}
		}},
		{"mitm", func(out string) []string {
			return []string{"mitm", "--listen", "127.0.0.1:0", "--upstream", room, "-w", out}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "gone")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "room.pcapng")
			relay, addr := startRelay(t, tt.args(out)...)
			res := runParley(t, "captured, then lost\n", "join", "--server", addr, "--name", "alice")
			if res.code != 0 {
				t.Fatalf("join through the relay exited %d; stderr:\n%s", res.code, res.stderr)
			}
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			relay.cmd.Process.Signal(os.Interrupt)
			code := relay.wait(20 * time.Second)
			s := relay.Stderr()
			if code != 1 || !strings.Contains(s, "parley: error: ") || !strings.Contains(s, out) {
				t.Errorf("got exit %d, want 1 with an error naming %s; stderr:\n%s", code, out, s)
			}
			if strings.Contains(s, "wrote ") {
				t.Errorf("claims to have written the capture; stderr:\n%s", s)
			}
		})
	}
}

// TestServeSIGTERMUnderLoad sends SIGTERM to 'parley serve' while 20
// members send 200 lines a second each: every member is told "* server
// shutting down" before its connection closes, serve exits 0, and nothing
// listens on the port afterwards.
func TestServeSIGTERMUnderLoad(t *testing.T) {
	srv, addr := startServe(t, "--rate", "0")
	const members = 20
	type member struct {
		conn net.Conn
		told bool
		err  error
	}
	ms := make([]*member, members)
	for i := range ms {
		c := joinRaw(t, addr, fmt.Sprintf("m%02d", i))
		// joinRaw's reader may hold lines already: read through it.
		ms[i] = &member{conn: readerConn{c.conn, c.r}}
	}
	var wg sync.WaitGroup
	traffic := make(chan struct{}) // closed once every member has received traffic
	var seen sync.WaitGroup
	seen.Add(members)
	for _, m := range ms {
		wg.Add(2)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			line := []byte(fmt.Sprintf("%s %s\n", strings.Repeat("x", 50), "load"))
			for range tick.C {
				m.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := m.conn.Write(line); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			m.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			sc := bufio.NewScanner(m.conn)
			got := false
			for sc.Scan() {
				if !got && strings.HasSuffix(sc.Text(), " load") {
					got = true
					seen.Done()
				}
				if sc.Text() == "* server shutting down" {
					m.told = true
				}
			}
			if !got {
				seen.Done()
			}
			m.err = sc.Err()
		}()
	}
	go func() { seen.Wait(); close(traffic) }()
	<-traffic

	srv.cmd.Process.Signal(syscall.SIGTERM)
	if code := srv.wait(30 * time.Second); code != 0 {
		t.Errorf("serve exited %d after SIGTERM, want 0; stderr:\n%s", code, srv.Stderr())
	}
	wg.Wait()
	for i, m := range ms {
		if !m.told {
			t.Errorf("member %d was not told the server is shutting down (read ended with %v)", i, m.err)
		}
		var ne net.Error
		if errors.As(m.err, &ne) && ne.Timeout() {
			t.Errorf("member %d: the connection stayed open after serve exited", i)
		}
	}
	for _, want := range []string{fmt.Sprintf("telling %d members", members), "parley: room closed"} {
		if !strings.Contains(srv.Stderr(), want) {
			t.Errorf("serve's stderr lacks %q:\n%s", want, srv.Stderr())
		}
	}
	if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on %s after serve exited", addr)
	}
}

// readerConn is a net.Conn whose reads go through a bufio.Reader that may
// already hold bytes.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(b []byte) (int, error) { return c.r.Read(b) }
