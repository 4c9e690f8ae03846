package tui

import (
	"bytes"
	"strings"
	"time"

	"charm.land/bubbles/v2/textinput"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/room"
	"github.com/parley-edu/parley/schemes"
)

// phase is where the client is in the room's protocol.
type phase int

const (
	phaseName     phase = iota // choosing a name
	phasePassword              // the room asked for a password
	phaseChat                  // in the room
	phaseLeaving               // /quit sent, waiting for "* bye, NAME"
)

const (
	// probeEvery is how often the client asks /whoami to measure the
	// round trip shown in the status line.
	probeEvery = 15 * time.Second
	// leaveWait bounds the wait for the room's goodbye after /quit.
	leaveWait = 2 * time.Second
	// maxEntries bounds the conversation kept for scrolling back.
	maxEntries = 1000
)

// Timer messages.
type (
	probeMsg        struct{}
	leaveTimeoutMsg struct{}
	// leaveMsg asks the client to leave as /quit does (sent for SIGINT).
	leaveMsg struct{}
)

// entry is one line of the conversation, sanitised.
type entry struct {
	at   time.Time
	kind lineKind
	name string // who speaks, for chat lines
	text string
}

// modelConfig is what the model is given; now and after are the clock and
// the timers, replaced in tests.
type modelConfig struct {
	scheme   schemes.Properties
	peer     schemes.Peer
	greeting []string
	name     string // to send at once; empty to ask
	password string // to send when asked; empty to ask
	now      func() time.Time
	// after returns a command that delivers msg after d.
	after func(d time.Duration, msg tea.Msg) tea.Cmd
}

// model is the Bubble Tea model of the client. Its methods run on the
// program's goroutine only; lines reach the room through link.
type model struct {
	cfg    modelConfig
	link   link
	width  int
	height int

	phase    phase
	waiting  bool   // a name or password was sent and its answer is awaited
	password string // cfg.password until it is sent
	name     string
	room     string
	members  members
	last     string // the room's last line
	login    string // the room's "! login failed" line
	bye      bool
	end      error // what Run returns

	entries []entry
	// rows are the entries laid out at rowsWidth (0 before the first
	// layout), rowCounts how many rows each entry took.
	rows      []string
	rowCounts []int
	rowsWidth int
	vp        viewport.Model
	input     textinput.Model
	hist      history
	comp      completer

	showWire    bool
	sent        []capture.WireUnit
	sentDropped int
	sentAt      time.Time
	recv        capture.WireUnit
	haveRecv    bool
	recvAt      time.Time

	rtt     time.Duration
	haveRTT bool
	probing bool // a probe is waiting for its answer
}

var _ tea.Model = (*model)(nil)

func newModel(cfg modelConfig, l link) *model {
	m := &model{cfg: cfg, link: l, password: cfg.password, showWire: true}
	m.input = textinput.New()
	// Bold and faint read on dark and light terminals alike.
	st := m.input.Styles()
	st.Focused.Prompt, st.Focused.Placeholder = lipgloss.NewStyle().Bold(true), faintStyle
	m.input.SetStyles(st)
	m.input.SetVirtualCursor(false)
	m.input.Focus()
	m.vp = viewport.New()
	m.vp.KeyMap = viewport.KeyMap{} // the input line owns the keys; PgUp/PgDn are handled here
	for _, g := range cfg.greeting {
		text := sanitize(g)
		if r := greetingLine.FindStringSubmatch(text); r != nil && m.room == "" {
			m.room = r[1]
		}
		m.add(entry{at: cfg.now(), kind: kindNotice, text: text})
	}
	if d := cfg.peer.Detail; d != "" {
		m.add(entry{at: cfg.now(), kind: kindLocal, text: "session: " + sanitize(d)})
	}
	m.add(entry{at: cfg.now(), kind: kindLocal, text: "F2 shows or hides the wire pane; PgUp/PgDn scroll; Up/Down recall; Tab completes; /quit or Ctrl-C leaves"})
	m.add(entry{at: cfg.now(), kind: kindLocal, text: "rtt is the round trip of a /whoami that parley sends every 15 s, answer hidden"})
	m.setPrompt()
	return m
}

// sanitize makes a line from the network safe for the terminal.
func sanitize(s string) string {
	var b bytes.Buffer
	room.AppendSanitized(&b, []byte(s))
	return b.String()
}

func (m *model) Init() tea.Cmd {
	if m.cfg.name != "" {
		m.sendName(m.cfg.name)
	}
	return nil
}

func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return m, nil
	case tea.KeyPressMsg:
		return m, m.key(msg)
	case lineMsg:
		return m, m.line(msg)
	case localMsg:
		m.add(entry{at: msg.at, kind: kindError, text: sanitize(msg.text)})
		return m, nil
	case sentMsg:
		m.onSent(msg)
		return m, nil
	case closedMsg:
		return m, m.closed(msg)
	case probeMsg:
		return m, m.probe()
	case leaveMsg:
		return m, m.leave()
	case leaveTimeoutMsg:
		if m.phase == phaseLeaving {
			return m, tea.Quit
		}
		return m, nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

func (m *model) key(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "ctrl+c":
		return m.leave()
	case "f2":
		m.showWire = !m.showWire
		m.layout()
		return nil
	case "pgup":
		m.vp.PageUp()
		return nil
	case "pgdown":
		m.vp.PageDown()
		return nil
	case "enter":
		m.comp.reset()
		return m.submit()
	case "tab":
		if m.phase == phaseChat {
			if v, ok := m.comp.next(m.input.Value(), m.members.names); ok {
				m.setInput(v)
			}
		}
		return nil
	case "up":
		m.comp.reset()
		if v, ok := m.hist.up(m.input.Value()); ok && m.phase == phaseChat {
			m.setInput(v)
		}
		return nil
	case "down":
		m.comp.reset()
		if v, ok := m.hist.down(); ok && m.phase == phaseChat {
			m.setInput(v)
		}
		return nil
	}
	m.comp.reset()
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(k)
	return cmd
}

func (m *model) setInput(v string) {
	m.input.SetValue(v)
	m.input.CursorEnd()
}

// submit acts on Enter.
func (m *model) submit() tea.Cmd {
	value := m.input.Value()
	if strings.TrimSpace(value) == "" || m.waiting {
		return nil
	}
	m.input.Reset()
	switch m.phase {
	case phaseName:
		m.sendName(strings.TrimSpace(value))
	case phasePassword:
		m.sendPassword(value)
	case phaseChat:
		m.hist.add(value)
		return m.say(value)
	}
	return nil
}

// say sends a line typed in the room: chat, a command, or /quit.
func (m *model) say(line string) tea.Cmd {
	word, _, _ := strings.Cut(strings.TrimSpace(line), " ")
	word = strings.ToLower(word)
	o := outgoing{line: line, kind: outChat}
	switch {
	case word == "/quit" || word == ".quit" || word == ".exit":
		return m.leave()
	case strings.HasPrefix(word, "/") || word == ".list":
		o.kind = outCommand
	}
	if !m.link.send(o) {
		m.add(entry{at: m.cfg.now(), kind: kindLocal, text: "! not sent: too many lines are waiting for the connection"})
		return nil
	}
	if o.kind == outChat {
		// The room does not echo our own lines back to us.
		m.add(entry{at: m.cfg.now(), kind: kindOwn, name: m.name, text: m.name + ": " + sanitize(line)})
	}
	return nil
}

func (m *model) sendName(name string) {
	m.name = name
	m.waiting = m.link.send(outgoing{line: name, kind: outName})
}

func (m *model) sendPassword(pw string) {
	if m.cfg.scheme.Insecure {
		m.add(entry{at: m.cfg.now(), kind: kindError, text: "! WARNING: " + m.cfg.scheme.Name + " is insecure: your password crosses the wire readable by anyone watching"})
	}
	m.waiting = m.link.send(outgoing{line: pw, kind: outPassword})
}

// leave starts leaving: /quit, then wait briefly for the room's goodbye.
// Before joining, or on a second request, it quits at once.
func (m *model) leave() tea.Cmd {
	if m.phase != phaseChat {
		return tea.Quit
	}
	m.phase = phaseLeaving
	m.setPrompt()
	if !m.link.send(outgoing{line: "/quit", kind: outQuit}) {
		return tea.Quit
	}
	return m.cfg.after(leaveWait, leaveTimeoutMsg{})
}

// probe sends /whoami unless one is still unanswered, and schedules the
// next.
func (m *model) probe() tea.Cmd {
	if m.phase != phaseChat {
		return nil
	}
	if !m.probing {
		m.probing = m.link.send(outgoing{line: "/whoami", kind: outProbe})
	}
	return m.cfg.after(probeEvery, probeMsg{})
}

// line handles a line from the room.
func (m *model) line(msg lineMsg) tea.Cmd {
	text := sanitize(msg.text)
	if a := msg.whoami; a != nil {
		m.rtt, m.haveRTT = a.rtt, true
		if a.probe {
			m.probing = false
			return nil
		}
	}
	m.last = text
	if msg.hasWire {
		m.recv, m.haveRecv, m.recvAt = msg.wire, true, msg.at
	}
	kind, name := classify(text)
	m.add(entry{at: msg.at, kind: kind, name: name, text: text})
	switch m.phase {
	case phaseName, phasePassword:
		return m.joining(text)
	case phaseLeaving:
		if strings.HasPrefix(text, byePrefix) {
			m.bye = true
			return tea.Quit
		}
	}
	m.members.apply(text, &m.name)
	m.setPrompt()
	return nil
}

// joining reads the room's answers to our name and password.
func (m *model) joining(text string) tea.Cmd {
	if name, names, ok := welcome(text); ok {
		m.phase, m.waiting, m.name = phaseChat, false, name
		m.members.set(names)
		m.setPrompt()
		return m.probe()
	}
	switch {
	case strings.HasPrefix(text, room.PasswordPrompt):
		m.phase = phasePassword
		m.waiting = false
		if m.password != "" {
			m.sendPassword(m.password)
			m.password = ""
		}
		m.setPrompt()
	case strings.HasPrefix(text, loginFailed):
		m.login = text
	case strings.HasPrefix(text, "! ") && m.phase == phaseName:
		m.waiting = false // the name was refused; the room asks again
	}
	return nil
}

func (m *model) onSent(msg sentMsg) {
	if msg.err != nil && m.phase != phaseLeaving {
		text := sendError(msg.err)
		if text == "" {
			text = "! could not send: " + msg.err.Error()
		}
		m.add(entry{at: msg.at, kind: kindError, text: sanitize(text)})
	}
	if len(msg.wire) > 0 {
		m.sent, m.sentDropped, m.sentAt = msg.wire, msg.dropped, msg.at
	}
}

func (m *model) closed(msg closedMsg) tea.Cmd {
	switch {
	case m.login != "":
		m.end = &LoginError{Line: m.login}
	case !m.bye:
		m.end = &ClosedError{Last: m.last, Err: msg.err}
	}
	return tea.Quit
}

// add appends to the conversation, laying out only the new entry.
func (m *model) add(e entry) {
	m.entries = append(m.entries, e)
	if m.rowsWidth > 0 {
		rows := m.formatEntry(e, m.rowsWidth)
		m.rows = append(m.rows, rows...)
		m.rowCounts = append(m.rowCounts, len(rows))
	}
	if len(m.entries) > maxEntries {
		m.entries = m.entries[1:]
		if m.rowsWidth > 0 {
			m.rows, m.rowCounts = m.rows[m.rowCounts[0]:], m.rowCounts[1:]
		}
	}
	m.show()
}

// setPrompt sets the input line's prompt and echo for the phase.
func (m *model) setPrompt() {
	m.input.EchoMode = textinput.EchoNormal
	switch m.phase {
	case phaseName:
		m.input.Prompt = "name> "
		m.input.Placeholder = "your name: 1-32 letters, digits, _ - ."
	case phasePassword:
		m.input.Prompt = "password for " + m.name + "> "
		m.input.Placeholder = ""
		m.input.EchoMode = textinput.EchoPassword
	case phaseChat:
		m.input.Prompt = m.name + "> "
		m.input.Placeholder = ""
	case phaseLeaving:
		m.input.Prompt = "leaving... "
		m.input.Placeholder = ""
	}
	m.input.SetWidth(max(1, m.width-len(m.input.Prompt)-1))
}
