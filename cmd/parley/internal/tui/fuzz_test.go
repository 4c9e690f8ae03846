package tui

import (
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// FuzzRoomLine feeds arbitrary lines from the room to a joined client: the
// screen keeps its size, shows no control character from the line, and
// the member list holds only valid names.
func FuzzRoomLine(f *testing.F) {
	for _, s := range []string{
		"bob: hi", "* bob joined (2 members)", "* bob left (quit)", "* bob is now known as rob",
		"* 2 in lobby: alice, bob", "* welcome, alice. members: alice. type /help for commands",
		"! login failed", "* bye, alice", "carol (private): \x1b[2J", "\xff\xfe\u009b", strings.Repeat("w", 300),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, _ := joined(t, "plain")
		update(m, lineMsg{text: line, at: clock})
		rows := strings.Split(m.render(), "\n")
		if len(rows) != 24 {
			t.Fatalf("got %d rows", len(rows))
		}
		for _, r := range rows {
			plain := ansi.Strip(r)
			if ansi.StringWidth(r) != 80 || strings.ContainsFunc(plain, func(c rune) bool { return c < 0x20 || c == 0x7f || c >= 0x80 && c < 0xa0 }) {
				t.Fatalf("row %q", plain)
			}
		}
		for _, n := range m.members.names {
			if !validName.MatchString(n) {
				t.Fatalf("member list holds %q", n)
			}
		}
		update(m, tea.KeyPressMsg{Code: tea.KeyF2})
		if rows := strings.Split(m.render(), "\n"); len(rows) != 24 {
			t.Fatalf("got %d rows without the wire pane", len(rows))
		}
	})
}
