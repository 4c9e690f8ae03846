package scenario

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestConversationVerdicts checks, for every scheme, that the verdict comes
// from the capture: the eavesdropper recovers the secret exactly for plain
// and xor, the raw file holds it only for plain, and the keyed read finds
// the record that carried it.
func TestConversationVerdicts(t *testing.T) {
	const secret = "the treasure is under the third palm tree"
	home := t.TempDir()
	for _, tc := range []struct {
		scheme   string
		eveReads bool
		inRaw    bool
		keyLog   bool
	}{
		{"plain", true, true, false},
		{"xor", true, false, false},
		{"aes-cbc", false, false, false},
		{"aes-cbc-hmac", false, false, false},
		{"tls", false, false, true},
		{"mtls", false, false, true},
	} {
		t.Run(tc.scheme, func(t *testing.T) {
			path := CaptureName(t.TempDir(), tc.scheme)
			r, err := RunConversation(context.Background(), ConversationOptions{Scheme: tc.scheme, Home: home, CapturePath: path, Secret: secret})
			if err != nil {
				t.Fatalf("RunConversation: %v", err)
			}
			if r.EveReads != tc.eveReads {
				t.Errorf("EveReads: got %v, want %v", r.EveReads, tc.eveReads)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(raw, []byte(secret)); got != tc.inRaw {
				t.Errorf("secret in the raw capture: got %v, want %v", got, tc.inRaw)
			}
			if r.EveRecord == nil {
				t.Fatalf("the record that carried the secret was not located")
			}
			if r.EveRecord.WireBytes < len(secret) {
				t.Errorf("secret record: got %d wire bytes, want at least %d", r.EveRecord.WireBytes, len(secret))
			}
			if r.WireBytes <= int64(len(secret)) {
				t.Errorf("WireBytes: got %d, want more than %d", r.WireBytes, len(secret))
			}
			if got := r.KeyLog != ""; got != tc.keyLog {
				t.Errorf("key log written: got %v, want %v", got, tc.keyLog)
			}
			// The owner, with the keys, reads everything.
			keyed, err := ReadWithKeys(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.keyLog && !Contains(keyed, secret) {
				t.Errorf("the embedded TLS keys did not decrypt the secret")
			}
		})
	}
}

func TestJoinTakenName(t *testing.T) {
	s, err := Start(context.Background(), Options{Scheme: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Join("alice"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Join("ALICE")
	var je *JoinError
	if !errors.As(err, &je) {
		t.Fatalf("second alice: got %v, want a *JoinError", err)
	}
}

func TestBotsSeeEachOther(t *testing.T) {
	s, err := Start(context.Background(), Options{Scheme: "mtls", Tap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bots, err := s.Play(context.Background(), nil, Script("x marks the spot"))
	if err != nil {
		t.Fatal(err)
	}
	if got := bots["alice"].Peer.Identity; got != ServerName {
		t.Errorf("alice's view of the server: got %q, want %q", got, ServerName)
	}
	if err := bots["bob"].Say("/whoami"); err != nil {
		t.Fatal(err)
	}
	if _, err := bots["bob"].WaitFor(context.Background(), "whoami", func(l string) bool { return bytes.Contains([]byte(l), []byte("bob")) && l[0] == '*' }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := bots["alice"].Err(); err == nil {
		t.Errorf("alice's connection: still open after Close")
	}
}

// TestCredentialsReused checks that a second scenario in the same home
// reuses the certificates instead of replacing them.
func TestCredentialsReused(t *testing.T) {
	home := t.TempDir()
	run := func() {
		s, err := Start(context.Background(), Options{Scheme: "mtls", Home: home})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		b, err := s.Join("carol")
		if err != nil {
			t.Fatal(err)
		}
		b.Quit(context.Background())
	}
	run()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(home, "certs", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	server, carol := read("server.crt"), read("carol.crt")
	run()
	if !bytes.Equal(server, read("server.crt")) || !bytes.Equal(carol, read("carol.crt")) {
		t.Errorf("certificates were reissued; want them reused")
	}
}

func TestStripSecrets(t *testing.T) {
	path := CaptureName(t.TempDir(), "tls")
	r, err := RunConversation(context.Background(), ConversationOptions{Scheme: "tls", CapturePath: path})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	stripped, err := StripSecrets(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(stripped) >= len(raw) {
		t.Errorf("stripped: got %d bytes, want fewer than %d", len(stripped), len(raw))
	}
	if bytes.Contains(stripped, []byte("CLIENT_TRAFFIC_SECRET")) {
		t.Errorf("stripped capture still holds the key log")
	}
	if r.EveReads {
		t.Errorf("Eve read TLS without keys")
	}
}

func TestBenchSmall(t *testing.T) {
	for _, sch := range []string{"plain", "mtls"} {
		t.Run(sch, func(t *testing.T) {
			r, err := Bench(context.Background(), BenchOptions{Scheme: sch, Handshakes: 3, Clients: 3, Messages: 20})
			if err != nil {
				t.Fatal(err)
			}
			if want := 3 * 2 * 20; r.Deliveries != want {
				t.Errorf("deliveries: got %d, want %d", r.Deliveries, want)
			}
			if len(r.Wire) != len(DefaultBenchSizes) {
				t.Fatalf("wire costs: got %d, want %d", len(r.Wire), len(DefaultBenchSizes))
			}
			for _, w := range r.Wire {
				if w.Overhead < 1 {
					t.Errorf("size %d: got overhead %d, want at least 1 (the line ending)", w.Size, w.Overhead)
				}
			}
			if sch == "plain" && r.Wire[0].Overhead != 1 {
				t.Errorf("plain overhead: got %d, want 1", r.Wire[0].Overhead)
			}
		})
	}
}
