package capture

import (
	"strings"
	"testing"
)

func TestWatchLogin(t *testing.T) {
	msg := func(stream int, dir, plaintext string) Event {
		return Event{Type: EventMessage, StreamID: stream, Direction: dir, Scheme: "plain", Plaintext: plaintext, RecoveredBy: RecoveredCleartext, WireBytes: len(plaintext)}
	}
	sig := strings.Repeat("ab", 32)
	tests := []struct {
		name   string
		events []Event
		user   string
		pass   string
	}{
		{"plain lines", []Event{
			msg(1, DirServer, "* choose a name: 1-32 letters, digits, _ - or ."),
			msg(1, DirClient, "alice"),
			msg(1, DirServer, "* password for alice:"),
			msg(1, DirClient, "correct horse"),
		}, "alice", "correct horse"},
		{"records of several lines", []Event{
			msg(1, DirServer, "* parley room lobby (scheme xor)\n* password for bob:\n"),
			msg(1, DirClient, "hunter2\n"),
		}, "bob", "hunter2"},
		{"inside mtls", []Event{
			msg(1, DirServer, "280 "+sig+" * password for carol:\n"),
			msg(1, DirClient, "DATA\n..dotty\n.\n"),
		}, "carol", ".dotty"},
		{"no prompt", []Event{
			msg(1, DirClient, "alice"),
			msg(1, DirClient, "secret"),
		}, "", ""},
		{"the prompt was in another stream", []Event{
			msg(1, DirServer, "* password for alice:"),
			msg(2, DirClient, "not a password"),
		}, "", ""},
		{"a chat line that mentions the prompt", []Event{
			msg(1, DirServer, "bob: * password for alice: is what it asks"),
			msg(1, DirClient, "ok"),
		}, "", ""},
		{"unreadable message", []Event{
			msg(1, DirServer, "* password for alice:"),
			{Type: EventMessage, StreamID: 1, Direction: DirClient, WireBytes: 48, IV: "00"},
		}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd := &reader{}
			var found []Event
			for _, e := range tt.events {
				if c, ok := rd.watchLogin(e); ok {
					found = append(found, c)
				}
			}
			if tt.user == "" {
				if len(found) != 0 {
					t.Fatalf("found %+v, want nothing", found)
				}
				return
			}
			if len(found) != 1 {
				t.Fatalf("found %d credentials, want 1", len(found))
			}
			c := found[0]
			if c.Type != EventCredential || c.User != tt.user || c.Password != tt.pass || c.Direction != DirClient || c.Plaintext != "" || c.WireBytes != 0 {
				t.Errorf("credential %+v, want user %q password %q", c, tt.user, tt.pass)
			}
			var b strings.Builder
			WriteText(&b, c, false)
			if want := `CREDENTIAL FOUND: user "` + tt.user + `" password "`; !strings.Contains(b.String(), want) {
				t.Errorf("text %q lacks %q", b.String(), want)
			}
		})
	}
}
