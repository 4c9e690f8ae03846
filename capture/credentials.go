package capture

import (
	"bytes"
	"strings"

	"github.com/parley-edu/parley/room"
)

// watchLogin looks for the room's login exchange in a message whose
// plaintext was recovered: the server's password prompt, then the client's
// next line. It returns the credential event when e completes one.
func (rd *reader) watchLogin(e Event) (Event, bool) {
	if e.Type != EventMessage || e.RecoveredBy == "" {
		return Event{}, false
	}
	lines := roomLines(e.Direction, []byte(e.Plaintext))
	if e.Direction == DirServer {
		for _, l := range lines {
			if name, ok := strings.CutPrefix(l, room.PasswordPrompt); ok && strings.HasSuffix(name, ":") {
				if rd.logins == nil {
					rd.logins = map[int]string{}
				}
				rd.logins[e.StreamID] = strings.TrimSuffix(name, ":")
			}
		}
		return Event{}, false
	}
	name, waiting := rd.logins[e.StreamID]
	if !waiting || len(lines) == 0 {
		return Event{}, false
	}
	delete(rd.logins, e.StreamID)
	c := e
	c.Type = EventCredential
	c.User, c.Password = name, lines[0]
	c.Text = ""
	c.WireBytes, c.Plaintext, c.Record, c.Wire = 0, "", "", nil
	c.IV, c.CiphertextBytes, c.TagBytes, c.PlaintextSize = "", 0, 0, ""
	return c, true
}

// roomLines returns the room's lines in a message's plaintext. Inside mtls
// they are wrapped in the signature protocol: the server's deliveries are
// "280 <signature> LINE", the client's lines "DATA\nLINE\n.\n" with dots
// stuffed.
func roomLines(dir string, plaintext []byte) []string {
	raw := strings.Split(strings.TrimSuffix(string(plaintext), "\n"), "\n")
	if dir == DirClient && len(raw) >= 3 && raw[0] == "DATA" && raw[len(raw)-1] == "." {
		line := raw[1]
		if strings.HasPrefix(line, "..") {
			line = line[1:]
		}
		return []string{line}
	}
	lines := raw[:0]
	for _, l := range raw {
		l = strings.TrimSuffix(l, "\r")
		if dir == DirServer && strings.HasPrefix(l, "280 ") {
			if _, rest, ok := strings.Cut(l[4:], " "); ok && isHex([]byte(l[4:len(l)-len(rest)-1])) {
				l = rest
			}
		}
		lines = append(lines, l)
	}
	return lines
}

func isHex(b []byte) bool {
	return len(b) > 0 && bytes.IndexFunc(b, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F')
	}) < 0
}
