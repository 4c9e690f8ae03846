package capture

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-edu/parley/schemes"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestTapUpstreamDown checks that a client of a tap whose upstream is down
// is closed, the error is logged, the refusal recorded, and the tap keeps
// serving.
func TestTapUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	var logs syncBuffer
	tap, err := NewTap(TapConfig{Listen: "127.0.0.1:0", Upstream: dead, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Recorder().Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- tap.Serve(ctx) }()
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", tap.Addr().String())
		if err != nil {
			t.Fatalf("dial %d: %v (the tap must keep serving)", i, err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("connection %d: got %d bytes, want the tap to close it", i, n)
		}
		c.Close()
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if !strings.Contains(logs.String(), "upstream unreachable") {
		t.Errorf("got logs %q, want the upstream error reported", logs.String())
	}
	p := filepath.Join(t.TempDir(), "refused.pcapng")
	if err := tap.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	evs, err := ReadFile(p, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(notes(evs), "server reset the connection (RST)"); n != 2 {
		t.Errorf("got %d recorded refusals, want 2; notes:\n%s", n, notes(evs))
	}
}

// TestTapConcurrentConnections relays many connections at once and checks
// that each one's lines are recorded in its own stream.
func TestTapConcurrentConnections(t *testing.T) {
	sc, _ := schemes.New("plain", schemes.Config{})
	up := startRoom(t, sc)
	tap, stop := startTap(t, up, "")
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", tap.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "user%d\nmessage from user%d\n/quit\n", i, i)
			io.Copy(io.Discard, c) // until the room says bye and closes
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	stop()
	p := filepath.Join(t.TempDir(), "many.pcapng")
	if err := tap.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	evs, err := ReadFile(p, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	streamOf := map[string]string{}
	for _, e := range evs {
		if e.Type == EventMessage && strings.HasPrefix(e.Plaintext, "message from ") && e.Direction == DirClient {
			streamOf[strings.TrimPrefix(e.Plaintext, "message from ")] = e.Stream
		}
		if e.Type == EventNote {
			t.Errorf("unexpected note: %s", e.Text)
		}
	}
	if len(streamOf) != n {
		t.Errorf("got lines from %d users, want %d", len(streamOf), n)
	}
	seen := map[string]bool{}
	for _, s := range streamOf {
		if seen[s] {
			t.Errorf("stream %s carries two users' lines", s)
		}
		seen[s] = true
	}
}
