package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// parleyBin is the real binary, built once by TestMain, that the
// end-to-end tests run.
var parleyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parley-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	parleyBin = filepath.Join(dir, "parley")
	build := exec.Command("go", "build", "-race", "-o", parleyBin, ".")
	if !raceEnabled {
		build = exec.Command("go", "build", "-o", parleyBin, ".")
	}
	build.Env = append(os.Environ(), "CGO_ENABLED="+cgoFor(raceEnabled))
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building parley: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func cgoFor(race bool) string {
	if race {
		return "1" // the race detector needs cgo; the shipped binary does not
	}
	return "0"
}

// result is what one finished parley process did.
type result struct {
	stdout, stderr string
	code           int
}

// runParley runs the binary to completion with stdin and a fresh home, and
// fails the test if it takes longer than a minute.
func runParley(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runParleyEnv(t, stdin, nil, args...)
}

func runParleyEnv(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(parleyBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(testEnv(t), env...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting parley %v: %v", args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("parley %v did not finish within a minute; stderr:\n%s", args, errb.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running parley %v: %v", args, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// testEnv is the environment for child processes: PARLEY_HOME points at a
// per-test directory unless the test sets its own.
func testEnv(t testing.TB) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PARLEY_HOME=") && !strings.HasPrefix(kv, "SSLKEYLOGFILE=") {
			env = append(env, kv)
		}
	}
	return append(env, "PARLEY_HOME="+testHome(t))
}

var homes sync.Map // testing.TB -> string

// testHome is a parley home directory private to t.
func testHome(t testing.TB) string {
	if h, ok := homes.Load(t); ok {
		return h.(string)
	}
	h := t.TempDir()
	homes.Store(t, h)
	t.Cleanup(func() { homes.Delete(t) })
	return h
}

// proc is a running parley process whose output is collected.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	stdin  io.WriteCloser
	done   chan struct{}
	err    error
}

// startParley starts the binary in the background. The process is killed
// when the test ends, if it still runs.
func startParley(t testing.TB, args ...string) *proc {
	t.Helper()
	return startParleyEnv(t, nil, args...)
}

func startParleyEnv(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(parleyBin, args...), done: make(chan struct{})}
	p.cmd.Env = append(testEnv(t), env...)
	p.cmd.Stdout = lockedWriter{&p.mu, &p.stdout}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting parley %v: %v", args, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// Stdout and Stderr return what the process printed so far.
func (p *proc) Stdout() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stdout.String() }
func (p *proc) Stderr() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stderr.String() }

// waitFor polls until cond holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStdout waits until the process's stdout contains s.
func (p *proc) waitStdout(s string) {
	p.t.Helper()
	waitFor(p.t, 20*time.Second, fmt.Sprintf("stdout to contain %q; stdout so far:\n%s\nstderr:\n%s", s, p.Stdout(), p.Stderr()),
		func() bool { return strings.Contains(p.Stdout(), s) })
}

// waitStderr waits until the process's stderr contains s.
func (p *proc) waitStderr(s string) {
	p.t.Helper()
	waitFor(p.t, 20*time.Second, fmt.Sprintf("stderr to contain %q; stderr so far:\n%s", s, p.Stderr()),
		func() bool { return strings.Contains(p.Stderr(), s) })
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("parley %v did not exit within %s; stderr:\n%s", p.cmd.Args[1:], timeout, p.Stderr())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

// startServe starts 'parley serve' on a free loopback port with extra args
// and returns the process and the address it listens on.
func startServe(t testing.TB, args ...string) (*proc, string) {
	t.Helper()
	p := startParley(t, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	return p, p.listenAddr()
}

// listenAddr waits until the process says "... listening on ADDR" on
// stderr (serve, mitm and capture tap all do) and returns ADDR. It fails
// the test if the process exits first.
func (p *proc) listenAddr() string {
	p.t.Helper()
	const marker = " listening on "
	var addr string
	waitFor(p.t, 20*time.Second, fmt.Sprintf("parley %v to listen", p.cmd.Args[1:]), func() bool {
		select {
		case <-p.done:
			p.t.Fatalf("parley %v exited early; stderr:\n%s", p.cmd.Args[1:], p.Stderr())
		default:
		}
		_, rest, ok := strings.Cut(p.Stderr(), marker)
		if !ok {
			return false
		}
		end := strings.IndexAny(rest, ",\n")
		if end < 0 {
			return false
		}
		addr = rest[:end]
		return true
	})
	return addr
}

// rawClient is a TCP client that behaves like nc: raw lines in and out.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, r: bufio.NewReaderSize(c, 1<<20)}
}

func (c *rawClient) send(line string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.conn, line+"\n"); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// line reads the next line, failing the test after 10 s.
func (c *rawClient) line() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading a line: %v (partial %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// until reads lines until one has the prefix, and returns it.
func (c *rawClient) until(prefix string) string {
	c.t.Helper()
	for {
		l := c.line()
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
}

// joinRaw connects and joins under name, returning after the welcome.
func joinRaw(t *testing.T, addr, name string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	c.until("* choose a name")
	c.send(name)
	c.until("* welcome, ")
	return c
}
