package tui

import (
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/parley-edu/parley/schemes"
)

// fakeLink records what the model sends.
type fakeLink struct {
	mu   sync.Mutex
	sent []outgoing
	full bool
}

func (l *fakeLink) send(o outgoing) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.full {
		return false
	}
	l.sent = append(l.sent, o)
	return true
}

func (l *fakeLink) lines() []outgoing {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]outgoing(nil), l.sent...)
}

// testConfig is the model configuration of a scripted session of scheme:
// the fixed clock, no timers, the greeting the room sends.
func testConfig(t *testing.T, scheme string) modelConfig {
	t.Helper()
	p, err := schemes.Describe(scheme)
	if err != nil {
		t.Fatal(err)
	}
	cfg := modelConfig{
		scheme:   p,
		greeting: []string{"* parley room lobby (scheme " + scheme + ")"},
		now:      func() time.Time { return clock },
		after:    func(time.Duration, tea.Msg) tea.Cmd { return nil },
	}
	if p.Insecure {
		cfg.greeting = append(cfg.greeting, "* WARNING: "+p.Warning)
	}
	cfg.greeting = append(cfg.greeting, "* choose a name: 1-32 letters, digits, _ - or .")
	switch scheme {
	case "tls":
		cfg.peer = schemes.Peer{Identity: "localhost", Detail: "TLS 1.3, TLS_AES_128_GCM_SHA256"}
	case "mtls":
		cfg.peer = schemes.Peer{Identity: "localhost", Detail: "TLS 1.3, TLS_AES_128_GCM_SHA256, signed in as alice"}
	}
	return cfg
}

func key(k rune) tea.KeyPressMsg { return tea.KeyPressMsg{Code: k} }

// screen renders the model as the terminal shows it without colour.
func screen(m *model) string { return ansi.Strip(m.render()) + "\n" }

// TestScreens runs the same scripted session over every scheme through a
// real Bubble Tea program at 80x24, and compares the final screen with
// testdata/TestScreens/SCHEME.golden (go test -update rewrites them): the
// name prompt, joining, completion, chat both ways, a member joining, and
// the wire pane with the last message each way.
func TestScreens(t *testing.T) {
	for _, scheme := range schemes.Names() {
		t.Run(scheme, func(t *testing.T) {
			s := newScript(t, scheme)
			link := &fakeLink{}
			m := newModel(testConfig(t, scheme), link)
			tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(80, 24))

			tm.Type("alice")
			tm.Send(key(tea.KeyEnter))
			tm.Send(s.sent(outgoing{line: "alice", kind: outName}))
			tm.Send(s.recv("* welcome, alice. members: alice, bob. type /help for commands"))
			// The welcome starts the round-trip probe; its answer is not shown.
			s.sent(outgoing{line: "/whoami", kind: outProbe})
			answer := s.recv("* you are alice in lobby, scheme " + scheme)
			answer.whoami = &whoamiAnswer{probe: true, rtt: 1234 * time.Microsecond}
			tm.Send(answer)
			tm.Send(s.recv("bob: hi alice, can you read me?"))

			tm.Type("/m")
			tm.Send(key(tea.KeyTab))
			tm.Type("b")
			tm.Send(key(tea.KeyTab))
			tm.Type("psst")
			tm.Send(key(tea.KeyEnter))
			tm.Send(s.sent(outgoing{line: "/msg bob psst", kind: outCommand}))
			tm.Send(s.recv("* (to bob): psst"))

			tm.Type("loud and clear")
			tm.Send(key(tea.KeyEnter))
			tm.Send(s.sent(outgoing{line: "loud and clear", kind: outChat}))
			tm.Send(s.recv("* carol joined (3 members)"))
			tm.Send(s.recv("bob: the wire pane shows it all"))
			// The program takes messages in order, so the quit comes last.
			tm.Quit()
			final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*model)

			want := []outgoing{
				{line: "alice", kind: outName},
				{line: "/whoami", kind: outProbe},
				{line: "/msg bob psst", kind: outCommand},
				{line: "loud and clear", kind: outChat},
			}
			if got := link.lines(); !equalOut(got, want) {
				t.Errorf("sent %+v, want %+v", got, want)
			}
			golden.RequireEqual(t, screen(final))
		})
	}
}

func equalOut(a, b []outgoing) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
