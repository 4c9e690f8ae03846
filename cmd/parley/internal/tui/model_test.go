package tui

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"

	"github.com/parley-edu/parley/schemes"
)

// joined returns a model of scheme at 80x24 that has joined as alice with
// bob in the room, and its link.
func joined(t *testing.T, scheme string) (*model, *fakeLink) {
	t.Helper()
	link := &fakeLink{}
	cfg := testConfig(t, scheme)
	cfg.name = "alice"
	m := newModel(cfg, link)
	m.Init()
	update(m, tea.WindowSizeMsg{Width: 80, Height: 24})
	update(m, lineMsg{text: "* welcome, alice. members: alice, bob. type /help for commands", at: clock})
	return m, link
}

// update runs msgs through m and returns the last command.
func update(m *model, msgs ...tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	for _, msg := range msgs {
		_, cmd = m.Update(msg)
	}
	return cmd
}

func typed(s string) []tea.Msg {
	var msgs []tea.Msg
	for _, r := range s {
		msgs = append(msgs, tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	return msgs
}

func enter(s string) []tea.Msg { return append(typed(s), key(tea.KeyEnter)) }

func isQuit(cmd tea.Cmd) bool {
	if cmd == nil {
		return false
	}
	_, ok := cmd().(tea.QuitMsg)
	return ok
}

func TestClassify(t *testing.T) {
	tests := []struct {
		line string
		kind lineKind
		name string
	}{
		{"bob: hi", kindChat, "bob"},
		{"bob (private): psst", kindPrivate, "bob"},
		{"* bob joined (2 members)", kindNotice, ""},
		{"! unknown command /x; type /help for the list", kindError, ""},
		{"* history 15:00 bob: earlier", kindNotice, ""},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			kind, name := classify(tc.line)
			if kind != tc.kind || name != tc.name {
				t.Errorf("got %v %q, want %v %q", kind, name, tc.kind, tc.name)
			}
		})
	}
}

// TestMembers follows the member list through the room's notices.
func TestMembers(t *testing.T) {
	self := "alice"
	var ms members
	_, names, ok := welcome("* welcome, alice. members: alice, Bob, carol. type /help for commands")
	if !ok {
		t.Fatal("welcome line not recognised")
	}
	ms.set(names)
	steps := []struct {
		line string
		want string
		self string
	}{
		{"* dave joined (4 members)", "alice Bob carol dave", "alice"},
		{"* carol left (quit)", "alice Bob dave", "alice"},
		{"* bob left (disconnected)", "alice dave", "alice"},
		{"* dave is now known as Dan", "alice Dan", "alice"},
		{"* alice is now known as al", "al Dan", "al"},
		{"* 3 in lobby: al, Dan, eve", "al Dan eve", "al"},
		{"* (to eve): x joined (9 members)", "al Dan eve", "al"},
		{"eve: * mallory joined (2 members)", "al Dan eve", "al"},
		{"* 2 in lobby: not a name, Dan", "Dan", "al"},
	}
	for _, st := range steps {
		ms.apply(st.line, &self)
		if got := strings.Join(ms.names, " "); got != st.want || self != st.self {
			t.Fatalf("after %q: got %q (self %q), want %q (self %q)", st.line, got, self, st.want, st.self)
		}
	}
}

func TestCompletions(t *testing.T) {
	names := []string{"alice", "Bob", "bella"}
	tests := []struct {
		value string
		want  []string
	}{
		{"/", []string{"/list", "/msg ", "/nick ", "/whoami", "/quit", "/help", "/history"}},
		{"/h", []string{"/help", "/history"}},
		{"/W", []string{"/whoami"}},
		{"/msg b", []string{"/msg Bob ", "/msg bella "}},
		{"/MSG B", []string{"/MSG Bob ", "/MSG bella "}},
		{"/msg bob hi", nil},
		{"/x", nil},
		{"hello", nil},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			if got := completions(tc.value, names); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTabCycles checks that repeated Tabs cycle through the completions.
func TestTabCycles(t *testing.T) {
	m, _ := joined(t, "plain")
	var got []string
	update(m, typed("/h")...)
	for range 3 {
		update(m, key(tea.KeyTab))
		got = append(got, m.input.Value())
	}
	if want := []string{"/help", "/history", "/help"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	update(m, key(tea.KeyBackspace), key(tea.KeyTab))
	if got, want := m.input.Value(), "/help"; got != want {
		t.Errorf("after editing, Tab gave %q, want %q", got, want)
	}
}

func TestHistory(t *testing.T) {
	m, link := joined(t, "plain")
	update(m, enter("one")...)
	update(m, enter("/list")...)
	update(m, typed("dra")...)
	var got []string
	for _, k := range []rune{tea.KeyUp, tea.KeyUp, tea.KeyUp, tea.KeyDown, tea.KeyDown} {
		update(m, key(k))
		got = append(got, m.input.Value())
	}
	if want := []string{"/list", "one", "one", "/list", "dra"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	want := []outgoing{{"alice", outName}, {"/whoami", outProbe}, {"one", outChat}, {"/list", outCommand}}
	if got := link.lines(); !equalOut(got, want) {
		t.Errorf("sent %+v, want %+v", got, want)
	}
}

// TestLeave checks /quit and Ctrl-C: /quit is sent, the client waits for
// the goodbye, and a second Ctrl-C or the wait's end quits anyway.
func TestLeave(t *testing.T) {
	tests := []struct {
		name  string
		leave []tea.Msg
		then  tea.Msg
	}{
		{"/quit and goodbye", enter("/quit"), lineMsg{text: "* bye, alice", at: clock}},
		{".exit and goodbye", enter(".exit"), lineMsg{text: "* bye, alice", at: clock}},
		{"ctrl-c and goodbye", []tea.Msg{tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}}, lineMsg{text: "* bye, alice", at: clock}},
		{"SIGINT and goodbye", []tea.Msg{leaveOnInterrupt(nil, tea.InterruptMsg{})}, lineMsg{text: "* bye, alice", at: clock}},
		{"no goodbye", enter("/quit"), leaveTimeoutMsg{}},
		{"twice ctrl-c", []tea.Msg{tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}}, tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, link := joined(t, "plain")
			if cmd := update(m, tc.leave...); isQuit(cmd) {
				t.Fatal("quit before the room said goodbye")
			}
			if l := link.lines(); l[len(l)-1] != (outgoing{"/quit", outQuit}) {
				t.Fatalf("last sent %+v, want /quit", l[len(l)-1])
			}
			if !isQuit(update(m, tc.then)) {
				t.Fatal("did not quit")
			}
			if m.end != nil {
				t.Errorf("got end %v, want nil", m.end)
			}
		})
	}
}

// TestEnd checks what Run reports when the room ends the connection.
func TestEnd(t *testing.T) {
	m, _ := joined(t, "plain")
	update(m, lineMsg{text: "* server shutting down", at: clock})
	if !isQuit(update(m, closedMsg{err: io.EOF})) {
		t.Fatal("did not quit")
	}
	var ce *ClosedError
	if !errors.As(m.end, &ce) || ce.Last != "* server shutting down" || ce.Err != io.EOF {
		t.Errorf("got %#v, want a ClosedError after the shutdown line", m.end)
	}
}

// TestLogin runs the password exchange: a masked prompt, the warning on an
// insecure scheme, the password sent but never shown, and a refusal.
func TestLogin(t *testing.T) {
	link := &fakeLink{}
	cfg := testConfig(t, "plain")
	cfg.name = "alice"
	m := newModel(cfg, link)
	m.Init()
	update(m, tea.WindowSizeMsg{Width: 80, Height: 24})
	update(m, lineMsg{text: "* password for alice:", at: clock})
	update(m, typed("s3cret")...)
	if got := ansi.Strip(m.render()); strings.Contains(got, "s3cret") || !strings.Contains(got, "password for alice> ******") {
		t.Fatalf("the password prompt does not mask the password:\n%s", got)
	}
	update(m, key(tea.KeyEnter))
	if got, want := link.lines(), []outgoing{{"alice", outName}, {"s3cret", outPassword}}; !equalOut(got, want) {
		t.Fatalf("sent %+v, want %+v", got, want)
	}
	if got := ansi.Strip(m.render()); strings.Contains(got, "s3cret") || !strings.Contains(got, "readable by anyone watching") {
		t.Errorf("after sending, the screen shows the password or lacks the warning:\n%s", got)
	}
	update(m, lineMsg{text: "! login failed: wrong name or password", at: clock})
	if !isQuit(update(m, closedMsg{err: io.EOF})) {
		t.Fatal("did not quit")
	}
	var le *LoginError
	if !errors.As(m.end, &le) || le.Line != "! login failed: wrong name or password" {
		t.Errorf("got %#v, want a LoginError", m.end)
	}
}

// TestLoginGiven sends the password from --password-file or the
// environment without asking, and joins.
func TestLoginGiven(t *testing.T) {
	link := &fakeLink{}
	cfg := testConfig(t, "tls")
	cfg.name, cfg.password = "alice", "s3cret"
	m := newModel(cfg, link)
	m.Init()
	update(m, tea.WindowSizeMsg{Width: 80, Height: 24})
	update(m, lineMsg{text: "* password for alice:", at: clock})
	update(m, lineMsg{text: "* welcome, alice. members: alice. type /help for commands", at: clock})
	want := []outgoing{{"alice", outName}, {"s3cret", outPassword}, {"/whoami", outProbe}}
	if got := link.lines(); !equalOut(got, want) {
		t.Fatalf("sent %+v, want %+v", got, want)
	}
	if got := ansi.Strip(m.render()); strings.Contains(got, "s3cret") || strings.Contains(got, "WARNING") || !strings.Contains(got, "session: TLS 1.3, TLS_AES_128_GCM_SHA256") {
		t.Errorf("the screen shows the password, warns on tls, or lacks the session:\n%s", got)
	}
	if m.phase != phaseChat {
		t.Errorf("got phase %v, want chat", m.phase)
	}
}

// TestNameRefused asks again when the room refuses the name.
func TestNameRefused(t *testing.T) {
	link := &fakeLink{}
	m := newModel(testConfig(t, "plain"), link)
	update(m, tea.WindowSizeMsg{Width: 80, Height: 24})
	update(m, enter("bob")...)
	update(m, enter("carol")...) // kept in the input while the room decides
	update(m, lineMsg{text: "! the name bob is taken; try another name", at: clock})
	update(m, key(tea.KeyEnter))
	if got, want := link.lines(), []outgoing{{"bob", outName}, {"carol", outName}}; !equalOut(got, want) {
		t.Errorf("sent %+v, want %+v", got, want)
	}
}

// TestProbe checks the round-trip probe: one at a time, its answer hidden,
// the user's own /whoami shown, and the status naming what it measures.
func TestProbe(t *testing.T) {
	m, link := joined(t, "plain")
	update(m, probeMsg{})
	if n := strings.Count(outLines(link), "/whoami"); n != 1 {
		t.Fatalf("sent %d probes while one was unanswered, want 1", n)
	}
	update(m, lineMsg{text: "* you are alice in lobby, scheme plain", at: clock, whoami: &whoamiAnswer{probe: true, rtt: 2500 * time.Microsecond}})
	screen := ansi.Strip(m.render())
	if strings.Contains(screen, "you are alice") || !strings.Contains(screen, "/whoami rtt 2.5ms") {
		t.Fatalf("the probe's answer shows, or the status lacks its rtt:\n%s", screen)
	}
	update(m, probeMsg{})
	update(m, enter("/whoami")...)
	update(m, lineMsg{text: "* you are alice in lobby, scheme plain", at: clock, whoami: &whoamiAnswer{probe: false, rtt: 900 * time.Microsecond}})
	if screen := ansi.Strip(m.render()); !strings.Contains(screen, "you are alice") || !strings.Contains(screen, "rtt 900µs") {
		t.Errorf("the user's /whoami answer is hidden, or its rtt not shown:\n%s", screen)
	}
}

func outLines(l *fakeLink) string {
	var s []string
	for _, o := range l.lines() {
		s = append(s, o.line)
	}
	return strings.Join(s, "\n")
}

// TestSanitized checks that a hostile line cannot reach the terminal raw,
// in the conversation or in the wire pane.
func TestSanitized(t *testing.T) {
	s := newScript(t, "plain")
	m, _ := joined(t, "plain")
	update(m, s.recv("mallory: \x1b]0;owned\x07\x1b[2J\u009b31m"))
	out := m.render()
	if strings.ContainsAny(ansi.Strip(out), "\x1b\x07\u009b") {
		t.Fatalf("control characters reached the screen: %q", out)
	}
	if !strings.Contains(out, "^[]0;owned^G^[[2J<U+009B>31m") {
		t.Errorf("the line is not shown made visible:\n%s", ansi.Strip(out))
	}
}

// TestResize checks that every size gives exactly the terminal's rows,
// none wider than the terminal, with and without the wire pane.
func TestResize(t *testing.T) {
	s := newScript(t, "aes-cbc-hmac")
	m, _ := joined(t, "aes-cbc-hmac")
	update(m, s.recv("bob: "+strings.Repeat("a long line that wraps ", 20)))
	update(m, s.sent(outgoing{line: "hi", kind: outChat}))
	for _, size := range [][2]int{{80, 24}, {40, 12}, {20, 6}, {200, 60}, {81, 25}, {1, 1}} {
		for _, wire := range []bool{true, false} {
			m.showWire = wire
			update(m, tea.WindowSizeMsg{Width: size[0], Height: size[1]})
			rows := strings.Split(m.render(), "\n")
			if len(rows) != size[1] {
				t.Errorf("%dx%d (wire %v): got %d rows", size[0], size[1], wire, len(rows))
			}
			for i, r := range rows {
				if w := ansi.StringWidth(r); w != size[0] {
					t.Errorf("%dx%d (wire %v): row %d is %d wide: %q", size[0], size[1], wire, i, w, ansi.Strip(r))
				}
			}
		}
	}
}

// TestToggleAndScroll checks F2 and PgUp/PgDn.
func TestToggleAndScroll(t *testing.T) {
	m, _ := joined(t, "plain")
	for i := range 40 {
		update(m, lineMsg{text: fmt.Sprintf("bob: line %02d", i), at: clock})
	}
	if !strings.Contains(ansi.Strip(m.render()), "wire: ") {
		t.Fatal("no wire pane at first")
	}
	update(m, tea.KeyPressMsg{Code: tea.KeyF2})
	screen := ansi.Strip(m.render())
	if strings.Contains(screen, "wire: ") || !strings.Contains(screen, "bob: line 39") {
		t.Fatalf("after F2, the wire pane shows or the last line does not:\n%s", screen)
	}
	update(m, tea.KeyPressMsg{Code: tea.KeyPgUp})
	if screen := ansi.Strip(m.render()); strings.Contains(screen, "bob: line 39") {
		t.Fatalf("PgUp did not scroll back:\n%s", screen)
	}
	update(m, lineMsg{text: "bob: while scrolled back", at: clock})
	if screen := ansi.Strip(m.render()); strings.Contains(screen, "while scrolled back") {
		t.Fatalf("a new line moved the view while scrolled back:\n%s", screen)
	}
	update(m, tea.KeyPressMsg{Code: tea.KeyPgDown}, tea.KeyPressMsg{Code: tea.KeyPgDown})
	if screen := ansi.Strip(m.render()); !strings.Contains(screen, "while scrolled back") {
		t.Fatalf("PgDn did not return to the end:\n%s", screen)
	}
}

// TestStyles locks the styling of one session in a golden file with its
// escape sequences: names coloured by a hash, notices, errors, the status.
func TestStyles(t *testing.T) {
	s := newScript(t, "plain")
	m, _ := joined(t, "plain")
	m.showWire = false
	update(m, tea.WindowSizeMsg{Width: 80, Height: 12})
	update(m, s.recv("bob: hi"), s.recv("! unknown command /x; type /help for the list"), s.recv("carol (private): psst"))
	update(m, enter("hello")...)
	golden.RequireEqual(t, m.render()+"\n")
}

// TestSendFailures shows why a line was not delivered.
func TestSendFailures(t *testing.T) {
	m, link := joined(t, "mtls")
	update(m, sentMsg{out: outgoing{"hi", outChat}, at: clock, err: &schemes.ReplyError{Code: 552, Text: "message too long"}})
	link.full = true
	update(m, enter("lost")...)
	screen := ansi.Strip(m.render())
	for _, want := range []string{"! the room refused the message: 552 message too long", "! not sent: too many lines are waiting"} {
		if !strings.Contains(screen, want) {
			t.Errorf("screen lacks %q:\n%s", want, screen)
		}
	}
}

// TestWideNotes checks that a wide terminal shows each part's note.
func TestWideNotes(t *testing.T) {
	s := newScript(t, "aes-cbc-hmac")
	m, _ := joined(t, "aes-cbc-hmac")
	update(m, tea.WindowSizeMsg{Width: 140, Height: 40})
	update(m, s.sent(outgoing{line: "hi", kind: outChat}))
	screen := ansi.Strip(m.render())
	for _, want := range []string{"64 bytes follow", "HMAC-SHA256 over seq 1, length, IV, ciphertext", "AES-256-CBC, 1 block"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the screen lacks %q:\n%s", want, screen)
		}
	}
}
