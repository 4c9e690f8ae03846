package attack

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseFlip(t *testing.T) {
	tests := []struct {
		in      string
		want    Flip
		wantErr bool
	}{
		{"0:0x20", Flip{Offset: 0, Mask: 0x20}, false},
		{"5:32", Flip{Offset: 5, Mask: 32}, false},
		{"16:0xff@3", Flip{Offset: 16, Mask: 0xff, Record: 3}, false},
		{"0:0", Flip{}, true},
		{"0:256", Flip{}, true},
		{"-1:1", Flip{}, true},
		{"1", Flip{}, true},
		{"1:1@0", Flip{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFlip(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseFlip(%q): got error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseFlip(%q): got %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseReplacement(t *testing.T) {
	tests := []struct {
		in      string
		want    Replacement
		wantErr bool
	}{
		{"at 5=at 9", Replacement{"at 5", "at 9"}, false},
		{"a=b=c", Replacement{"a", "b=c"}, false},
		{"gone=", Replacement{"gone", ""}, false},
		{"=x", Replacement{}, true},
		{"none", Replacement{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseReplacement(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseReplacement(%q): got %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestCheckNotes(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // in the one note, or "" for none
	}{
		{"replace on plain", Config{Scheme: "plain", Replace: []Replacement{{"a", "b"}}}, ""},
		{"replace on aes-cbc-hmac", Config{Scheme: "aes-cbc-hmac", Replace: []Replacement{{"a", "b"}}}, "cannot read"},
		{"inject on aes-cbc", Config{Scheme: "aes-cbc", Inject: "x"}, "forged record"},
		{"flip on mtls", Config{Scheme: "mtls", Flip: &Flip{Mask: 1}}, "does not have"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Upstream = "127.0.0.1:1"
			notes, err := tt.cfg.Check()
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" && len(notes) != 0 || tt.want != "" && (len(notes) != 1 || !strings.Contains(notes[0], tt.want)) {
				t.Errorf("notes: got %q, want one containing %q", notes, tt.want)
			}
		})
	}
	if _, err := (Config{Scheme: "rot13", Upstream: "x:1"}).Check(); err == nil {
		t.Error("Check of an unknown scheme: got nil, want an error")
	}
}

func TestEventString(t *testing.T) {
	tests := []struct {
		e    Event
		want string
	}{
		{Event{Kind: KindRead, From: "alice", To: "room", Text: "hi"}, `READ alice→room: "hi"`},
		{Event{Kind: KindRead, From: "alice", To: "room", Record: 2, Text: "hi"}, `READ alice→room: "hi" (record 2)`},
		{Event{Kind: KindRewrote, From: "alice", To: "room", Old: "5", Text: "9"}, `REWROTE alice→room: "5" → "9"`},
		{Event{Kind: KindDetected, From: "alice", To: "room", Detail: "bad record MAC"}, `DETECTED by the room: bad record MAC`},
		{Event{Kind: KindBlocked, Detail: "client 1 rejected our certificate (unknown authority)"}, `BLOCKED: client 1 rejected our certificate (unknown authority)`},
		{Event{Kind: KindDropped, From: "bob", To: "room", Record: 2, Text: "x", Size: 4}, `DROPPED bob→room record 2 (4 bytes) "x"`},
		{Event{Kind: KindRead, From: "room", To: "bob", Text: "\x1b[2J"}, `READ room→bob: "\x1b[2J"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.e.String(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	b, err := json.Marshal(Event{Kind: KindRead, Conn: 1, From: "alice", To: "room", Record: 2, Text: "hi"})
	if err != nil || !strings.Contains(string(b), `"kind":"read"`) || !strings.Contains(string(b), `"record":2`) {
		t.Errorf("JSON: got %s, %v", b, err)
	}
}

func TestBruteForceXOR(t *testing.T) {
	msg := "* parley room lobby (scheme xor)"
	for _, key := range []byte{0, 0x2a, 0xff} {
		body := []byte(msg)
		for i := range body {
			body[i] ^= key
		}
		got, ok := bruteForceXOR(body)
		if !ok || got != key {
			t.Errorf("key 0x%02x: got 0x%02x, %v", key, got, ok)
		}
	}
	if _, ok := bruteForceXOR([]byte("short")); ok {
		t.Error("a short record: got a key, want none")
	}
}
