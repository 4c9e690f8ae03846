package schemes

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// needOpenSSL skips the test when openssl is not on PATH; CI installs it.
func needOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("this test needs openssl on PATH (CI installs it): it checks interoperability with openssl s_client")
	}
	return path
}

// acceptOne accepts one connection on a new loopback listener and runs
// scheme s's Server on it; the result arrives on the returned channel.
func acceptOne(t *testing.T, s Scheme) (addr string, result <-chan side) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan side, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			ch <- side{err: err}
			return
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		conn, err := s.Server(c)
		if err != nil {
			c.Close()
		} else {
			c.SetDeadline(time.Time{})
			t.Cleanup(func() { conn.Close() })
		}
		ch <- side{conn: conn, err: err}
	}()
	return ln.Addr().String(), ch
}

func waitSide(t *testing.T, ch <-chan side) side {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("the server handshake did not finish")
		return side{}
	}
}

// sClient starts openssl s_client against addr with args after the common
// ones, and returns its stdin and a line reader on its stdout.
func sClient(t *testing.T, openssl, addr string, args ...string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	all := append([]string{"s_client", "-connect", addr, "-quiet", "-verify_return_error", "-servername", "localhost", "-verify_hostname", "localhost"}, args...)
	cmd := exec.Command(openssl, all...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("openssl s_client stderr:\n%s", stderr.String())
		}
	})
	return cmd, stdin, bufio.NewReader(stdout)
}

// readWithin reads one line from br, failing the test after a while.
func readWithin(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		line, _ := br.ReadString('\n')
		ch <- strings.TrimRight(line, "\r\n")
	}()
	select {
	case l := <-ch:
		return l
	case <-time.After(20 * time.Second):
		t.Fatal("no line from openssl s_client")
		return ""
	}
}

// TestOpenSSLTLSClient checks that openssl s_client, verifying the chain
// and the host name, is a working client of a tls server.
func TestOpenSSLTLSClient(t *testing.T) {
	openssl := needOpenSSL(t)
	p := newTestPKI(t)
	for _, version := range []string{"-tls1_3", "-tls1_2"} {
		t.Run(version, func(t *testing.T) {
			addr, result := acceptOne(t, newScheme(t, "tls", p.serverConfig(t, "server")))
			_, stdin, out := sClient(t, openssl, addr, "-CAfile", p.path("ca.crt"), version)
			server := waitSide(t, result)
			if server.err != nil {
				t.Fatalf("server handshake: %v", server.err)
			}
			if err := server.conn.WriteLines([]byte("* welcome to lobby (scheme tls)\n")); err != nil {
				t.Fatal(err)
			}
			if got := readWithin(t, out); got != "* welcome to lobby (scheme tls)" {
				t.Errorf("openssl got %q, want the greeting", got)
			}
			io.WriteString(stdin, "alice\n")
			if got, err := readLine(t, server.conn); err != nil || got != "alice" {
				t.Errorf("server got %q, %v, want alice", got, err)
			}
		})
	}
}

// TestOpenSSLRefusesBadServer checks that openssl s_client refuses the bad
// server certificates too: the lab's certificates are bad for everyone,
// not only for parley.
func TestOpenSSLRefusesBadServer(t *testing.T) {
	openssl := needOpenSSL(t)
	p := newTestPKI(t)
	for _, cert := range []string{"expired", "wrong-host", "self-signed", "rogue"} {
		t.Run(cert, func(t *testing.T) {
			addr, result := acceptOne(t, newScheme(t, "tls", p.serverConfig(t, cert)))
			cmd, stdin, _ := sClient(t, openssl, addr, "-CAfile", p.path("ca.crt"))
			stdin.Close()
			server := waitSide(t, result)
			if server.err == nil {
				t.Error("the server handshake succeeded, want openssl to refuse the certificate")
			}
			if err := cmd.Wait(); err == nil {
				t.Error("openssl s_client exited 0, want a verification failure")
			}
		})
	}
}

// opensslHMAC computes HMAC-SHA256 with openssl dgst, independently of the
// Go code.
func opensslHMAC(t *testing.T, openssl string, key []byte, input []byte) string {
	t.Helper()
	cmd := exec.Command(openssl, "dgst", "-sha256", "-mac", "HMAC", "-macopt", "hexkey:"+hex.EncodeToString(key))
	cmd.Stdin = bytes.NewReader(input)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl dgst: %v", err)
	}
	_, sum, ok := strings.Cut(strings.TrimSpace(string(out)), "= ")
	if !ok {
		t.Fatalf("openssl dgst printed %q", out)
	}
	return sum
}

// TestOpenSSLMTLSByHand drives the signature protocol by hand through
// openssl s_client with alice's certificate, and checks the 270 SIG and
// 280 signatures with openssl dgst over the bytes PROTOCOL.md names.
func TestOpenSSLMTLSByHand(t *testing.T) {
	openssl := needOpenSSL(t)
	p := newTestPKI(t)
	addr, result := acceptOne(t, newScheme(t, "mtls", p.serverConfig(t, "server")))
	_, stdin, out := sClient(t, openssl, addr, "-CAfile", p.path("ca.crt"), "-cert", p.path("alice.crt"), "-key", p.path("alice.key"))
	sigkey := p.sigkey(t, "alice")
	seq0 := []byte{0, 0, 0, 0, 0, 0, 0, 0}

	io.WriteString(stdin, "HELLO\n")
	server := waitSide(t, result)
	if server.err != nil {
		t.Fatalf("server handshake: %v", server.err)
	}
	if got := readWithin(t, out); got != "260 OK alice" {
		t.Fatalf("after HELLO: got %q, want \"260 OK alice\"", got)
	}
	if got := server.conn.Peer().Identity; got != "alice" {
		t.Errorf("Peer().Identity: got %q, want alice", got)
	}

	// The server answers DATA from inside ReadMessage, so it must be
	// reading.
	msgs := make(chan string, 1)
	go func() {
		m, err := server.conn.ReadMessage()
		if err != nil {
			msgs <- "error: " + err.Error()
			return
		}
		msgs <- string(m)
	}()
	io.WriteString(stdin, "DATA\nhello by hand\n.\n")
	got := readWithin(t, out)
	want := "270 SIG " + opensslHMAC(t, openssl, sigkey, append(append([]byte(SigContext), seq0...), "hello by hand"...))
	if got != want {
		t.Fatalf("after DATA: got %q, want %q", got, want)
	}
	io.WriteString(stdin, "PASS\n")
	if got := readWithin(t, out); got != "260 OK" {
		t.Errorf("after PASS: got %q, want \"260 OK\"", got)
	}
	if m := <-msgs; m != "hello by hand" {
		t.Errorf("server ReadMessage: got %q, want \"hello by hand\"", m)
	}

	if err := server.conn.WriteLines([]byte("* bob joined\n")); err != nil {
		t.Fatal(err)
	}
	got = readWithin(t, out)
	want = "280 " + opensslHMAC(t, openssl, sigkey, append(append([]byte(DeliverContext), seq0...), "* bob joined"...)) + " * bob joined"
	if got != want {
		t.Errorf("delivery: got %q, want %q", got, want)
	}
	go func() {
		_, err := server.conn.ReadMessage()
		msgs <- fmt.Sprint(err)
	}()
	io.WriteString(stdin, "QUIT\n")
	if got := <-msgs; got != "EOF" {
		t.Errorf("server ReadMessage after QUIT: got %q, want EOF", got)
	}
	if got := readWithin(t, out); got != "221 BYE" {
		t.Errorf("after QUIT: got %q, want \"221 BYE\"", got)
	}
}
