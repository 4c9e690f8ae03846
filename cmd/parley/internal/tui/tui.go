// Package tui is the full-screen terminal client of parley join: the
// conversation with timestamps and coloured names, the member list, an
// input line with history and Tab completion, a status line with the
// scheme's verdict and the round trip, and a wire pane that shows the exact
// bytes of the last message sent and received, their parts labelled as
// the scheme frames them, and what an eavesdropper gets from them.
//
// The status line's round trip is measured, not guessed: every 15 seconds
// the client asks the room /whoami (the answer is not shown) and times the
// answer, from writing the line until the answer arrived. In mtls that
// includes the signature exchange that delivers the line. The probes cross
// the wire like any line, and an eavesdropper sees them too.
//
// Every line from the room passes through room.AppendSanitized before it
// reaches the terminal, and so does every text the wire pane derives from
// the bytes.
package tui

import (
	"fmt"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/schemes"
)

// Config is what Run needs: a connection whose greeting was read, and how
// to join.
type Config struct {
	// Conn is the room connection, set up over Wire, with its greeting
	// read (the room waits for our name).
	Conn schemes.Conn
	Wire *capture.WireConn
	// Scheme describes Conn's scheme; Greeting holds the lines read.
	Scheme   schemes.Properties
	Greeting []string
	// Name is the name to join under; empty asks for one.
	Name string
	// Password answers the room's request for one; empty asks for it
	// with a masked prompt.
	Password string
	// NoColor draws without colour (NO_COLOR); bold and faint remain.
	NoColor bool
}

// ClosedError reports that the connection ended before the user left:
// Last is the room's last line (sanitised), Err what reading returned.
type ClosedError struct {
	Last string
	Err  error
}

func (e *ClosedError) Error() string {
	return fmt.Sprintf("tui: the connection ended after %q: %v", e.Last, e.Err)
}

func (e *ClosedError) Unwrap() error { return e.Err }

// LoginError reports that the room refused our password; Line is its
// answer, starting "! login failed".
type LoginError struct{ Line string }

func (e *LoginError) Error() string { return "tui: the room refused the login: " + e.Line }

// Run runs the client on the terminal until the user leaves or the
// connection ends, and restores the terminal. It returns nil when the user
// left, a *ClosedError or *LoginError when the room ended the connection,
// and other errors when the terminal failed. Run closes cfg.Conn.
func Run(cfg Config) error {
	s := newSession(cfg.Conn, cfg.Wire)
	done := make(chan struct{})
	m := newModel(modelConfig{
		scheme:   cfg.Scheme,
		peer:     cfg.Conn.Peer(),
		greeting: cfg.Greeting,
		name:     cfg.Name,
		password: cfg.Password,
		now:      time.Now,
		after:    timerCmd(done),
	}, s)
	opts := []tea.ProgramOption{tea.WithFilter(leaveOnInterrupt)}
	if cfg.NoColor {
		opts = append(opts, tea.WithColorProfile(colorprofile.Ascii))
	}
	p := tea.NewProgram(m, opts...)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.readLoop(p.Send)
	}()
	go func() {
		defer wg.Done()
		s.writeLoop(p.Send)
	}()
	final, err := p.Run()
	// The program no longer takes messages (p.Send returns at once), so
	// stopping the writer and closing the connection ends both loops.
	close(done)
	s.stop()
	cfg.Conn.Close()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("tui: %w", err)
	}
	return final.(*model).end
}

// leaveOnInterrupt turns SIGINT (Ctrl-C from outside the terminal, or
// kill -INT) into a clean leave instead of Bubble Tea's abrupt exit.
func leaveOnInterrupt(_ tea.Model, msg tea.Msg) tea.Msg {
	if _, ok := msg.(tea.InterruptMsg); ok {
		return leaveMsg{}
	}
	return msg
}

// timerCmd returns the model's timers: commands that deliver msg after d,
// or nothing once done is closed, so that no timer outlives Run.
func timerCmd(done <-chan struct{}) func(time.Duration, tea.Msg) tea.Cmd {
	return func(d time.Duration, msg tea.Msg) tea.Cmd {
		return func() tea.Msg {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return msg
			case <-done:
				return nil
			}
		}
	}
}
