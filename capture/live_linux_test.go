//go:build linux

package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/parley-edu/parley/capture/internal/pcapfile"
	"github.com/parley-edu/parley/schemes"
)

// TestLiveCapture sniffs a real conversation on lo: every line must be
// seen, no packet twice, none dropped. It needs root or CAP_NET_RAW.
func TestLiveCapture(t *testing.T) {
	sc, _ := schemes.New("plain", schemes.Config{})
	up := startRoom(t, sc)
	_, portStr, _ := net.SplitHostPort(up)
	port, _ := strconv.Atoi(portStr)
	live, err := OpenLive(LiveConfig{Interface: "lo", Ports: []int{port}})
	if errors.Is(err, ErrLivePermission) {
		t.Skip("live capture needs root or CAP_NET_RAW; skipping (CI runs it as root)")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- live.Capture(ctx, 0) }()

	converse(t, up, sc)
	want := []string{"alice", "bob", aliceLine, "alice: " + aliceLine, bobLine, "bob: " + bobLine, "* bye, alice"}
	path := filepath.Join(t.TempDir(), "live.pcapng")
	// Poll until the kernel has handed over the whole conversation.
	var evs []Event
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := live.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		evs, err = ReadFile(path, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if missing := missingPlaintexts(evs, want); len(missing) == 0 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after 10s the live capture still lacks %q", missing)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Capture: %v", err)
	}
	if st := live.Stats(); st.Dropped != 0 {
		t.Errorf("got %d packets dropped by the kernel, want 0", st.Dropped)
	}
	if n := countDuplicates(t, path); n != 0 {
		t.Errorf("got %d duplicated packets, want 0 (PACKET_IGNORE_OUTGOING)", n)
	}
	for _, e := range evs {
		if e.Type == EventNote {
			t.Errorf("unexpected note: %s", e.Text)
		}
		if e.Type == EventStream && e.Scheme != "plain" {
			t.Errorf("stream %s recognised as %s, want plain", e.Stream, e.Scheme)
		}
	}
}

func missingPlaintexts(evs []Event, want []string) []string {
	seen := map[string]bool{}
	for _, e := range evs {
		if e.Type == EventMessage {
			seen[e.Plaintext] = true
		}
	}
	var missing []string
	for _, w := range want {
		if !seen[w] {
			missing = append(missing, w)
		}
	}
	return missing
}

// countDuplicates counts packets whose bytes (IP header on) repeat an
// earlier packet's.
func countDuplicates(t *testing.T, path string) int {
	t.Helper()
	evsFile, err := openFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer evsFile.Close()
	pr, err := pcapfile.NewReader(evsFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	dups := 0
	for {
		p, err := pr.Next()
		if err != nil {
			break
		}
		_, l3 := linkPayload(p.LinkType, p.Data)
		k := fmt.Sprintf("%x", l3)
		if seen[k] {
			dups++
		}
		seen[k] = true
	}
	if len(seen) < 20 {
		t.Errorf("got %d packets, want a whole conversation", len(seen))
	}
	return dups
}
