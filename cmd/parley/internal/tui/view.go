package tui

import (
	"fmt"
	"hash/fnv"
	"image/color"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/parley-edu/parley/schemes"
)

// Layout.
const (
	membersWidth = 18 // the member list, right of the conversation
	minConv      = 5  // conversation rows kept when the wire pane is shown
	stampWidth   = len("15:04 ")
)

// Styles. Colour only helps: every distinction also shows without it
// (NO_COLOR), through prefixes, labels, bold and faint text.
var (
	statusStyle   = lipgloss.NewStyle().Reverse(true)
	insecureStyle = lipgloss.NewStyle().Reverse(true).Bold(true).Foreground(lipgloss.Red)
	stampStyle    = lipgloss.NewStyle().Faint(true)
	noticeStyle   = lipgloss.NewStyle().Italic(true).Foreground(lipgloss.BrightBlack)
	errorStyle    = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Red)
	localStyle    = lipgloss.NewStyle().Faint(true)
	titleStyle    = lipgloss.NewStyle().Bold(true)
	faintStyle    = lipgloss.NewStyle().Faint(true)

	// namePalette colours names by a hash, so that a name keeps its colour
	// across lines and sessions. Red is left for errors.
	namePalette = []color.Color{
		lipgloss.Green, lipgloss.Yellow, lipgloss.Blue, lipgloss.Magenta, lipgloss.Cyan,
		lipgloss.BrightGreen, lipgloss.BrightYellow, lipgloss.BrightBlue, lipgloss.BrightMagenta, lipgloss.BrightCyan,
	}

	// partColors colour the parts of a unit on the wire by their role.
	partColors = map[string]color.Color{
		"length": lipgloss.Yellow, "header": lipgloss.Yellow, "key byte": lipgloss.Yellow,
		"IV": lipgloss.Cyan, "nonce": lipgloss.Cyan, "magic": lipgloss.Cyan, "version": lipgloss.Cyan, "scheme id": lipgloss.Cyan,
		"ciphertext": lipgloss.Magenta, "body": lipgloss.Magenta, "encrypted": lipgloss.Magenta,
		"tag": lipgloss.Green,
	}
)

func nameStyle(name string) lipgloss.Style {
	h := fnv.New32a()
	h.Write([]byte(strings.ToLower(name)))
	return lipgloss.NewStyle().Foreground(namePalette[h.Sum32()%uint32(len(namePalette))])
}

func (m *model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "parley " + m.room
	if c := m.input.Cursor(); c != nil && m.height > 0 {
		c.Position.Y = m.height - 1
		v.Cursor = c
	}
	return v
}

// sizes returns the size of the conversation and of the wire pane.
func (m *model) sizes() (convW, convH, wireH int) {
	convW = m.width
	if m.width >= 60 {
		convW = m.width - membersWidth - 1
	}
	body := m.height - 2 // the status and input lines
	if m.showWire {
		// A fixed share, so that the conversation keeps its place while
		// the units shown grow and shrink.
		if wireH = min(body-minConv, max(body/2+2, 10)); wireH < 6 {
			wireH = 0
		}
	}
	return max(convW, 1), max(body-wireH, 0), wireH
}

// layout sizes the conversation and input after a resize or a toggle.
func (m *model) layout() {
	convW, convH, _ := m.sizes()
	m.vp.SetWidth(convW)
	m.vp.SetHeight(convH)
	m.setPrompt()
	if m.width > 0 && convW != m.rowsWidth {
		m.rows, m.rowCounts, m.rowsWidth = nil, nil, convW
		for _, e := range m.entries {
			rows := m.formatEntry(e, convW)
			m.rows = append(m.rows, rows...)
			m.rowCounts = append(m.rowCounts, len(rows))
		}
	}
	m.show()
}

// show gives the viewport the conversation, staying at the bottom when it
// was there.
func (m *model) show() {
	if m.rowsWidth == 0 {
		return
	}
	follow := m.vp.AtBottom()
	m.vp.SetContentLines(m.rows)
	if follow {
		m.vp.GotoBottom()
	}
}

// formatEntry renders one conversation line, wrapped under its
// timestamp. Each row is styled on its own, so that a row scrolled to the
// top keeps its style.
func (m *model) formatEntry(e entry, width int) []string {
	stamp := stampStyle.Render(e.at.Format("15:04")) + " "
	indent := strings.Repeat(" ", stampWidth)
	textW := width - stampWidth
	if textW < 8 {
		stamp, indent, textW = "", "", width
	}
	lines := strings.Split(ansi.Wrap(e.text, textW, " "), "\n")
	for i, l := range lines {
		switch e.kind {
		case kindChat, kindOwn, kindPrivate:
			if i == 0 {
				st := nameStyle(e.name)
				head := e.name
				if e.kind == kindPrivate {
					head += " (private)"
					st = st.Italic(true)
				} else if e.kind == kindOwn {
					st = st.Bold(true)
				}
				if rest, ok := strings.CutPrefix(l, head); ok {
					l = st.Render(head) + rest
				}
			}
		case kindNotice:
			l = noticeStyle.Render(l)
		case kindError:
			l = errorStyle.Render(l)
		case kindLocal:
			l = localStyle.Render(l)
		}
		if i == 0 {
			lines[i] = stamp + l
		} else {
			lines[i] = indent + l
		}
	}
	return lines
}

func (m *model) render() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	convW, convH, wireH := m.sizes()
	rows := []string{m.statusLine()}
	conv := fit(strings.Split(m.vp.View(), "\n"), convW, convH)
	if convW < m.width {
		side := fit(m.memberLines(convH), membersWidth, convH)
		for i := range conv {
			conv[i] += faintStyle.Render("│") + side[i]
		}
	}
	rows = append(rows, conv...)
	if wireH > 0 {
		rows = append(rows, fit(m.wireRows(m.width, wireH), m.width, wireH)...)
	}
	rows = append(rows, fit([]string{m.input.View()}, m.width, 1)...)
	return strings.Join(rows[:min(len(rows), m.height)], "\n")
}

// fit returns exactly h lines, each exactly w cells wide.
func fit(lines []string, w, h int) []string {
	out := make([]string, h)
	for i := range out {
		var l string
		if i < len(lines) {
			l = ansi.Truncate(lines[i], w, "…")
		}
		out[i] = l + strings.Repeat(" ", max(0, w-ansi.StringWidth(l)))
	}
	return out
}

// statusLine shows the room, the scheme and its verdict, the verified
// server, who we are, and the round trip; in fewer words when the full
// ones do not fit.
func (m *model) statusLine() string {
	line := m.status(true)
	if ansi.StringWidth(line) > m.width {
		line = m.status(false)
	}
	pad := statusStyle.Render(strings.Repeat(" ", max(0, m.width-ansi.StringWidth(line))))
	return fit([]string{line + pad}, m.width, 1)[0]
}

func (m *model) status(long bool) string {
	p := m.cfg.scheme
	vs := statusStyle
	if p.Insecure {
		vs = insecureStyle
	}
	room := " " + m.room + " "
	if long {
		room = " parley" + room
	}
	segs := []string{statusStyle.Render(room), vs.Render(" " + p.Name + ": " + verdict(p, m.cfg.peer) + " ")}
	if id := m.cfg.peer.Identity; id != "" && long {
		segs = append(segs, statusStyle.Render(" server "+id+" ✓ "))
	}
	who := m.name
	switch {
	case m.phase == phaseName || m.phase == phasePassword:
		who = "joining..."
	case p.ClientAuth:
		who += " (certificate)"
	}
	rtt := "rtt …"
	if m.haveRTT {
		rtt = "rtt " + roundTrip(m.rtt)
		if long {
			rtt = "/whoami " + rtt
		}
	}
	segs = append(segs, statusStyle.Render(" "+who+" "), statusStyle.Render(" "+rtt+" "))
	return strings.Join(segs, statusStyle.Render("│"))
}

// verdict sums up a scheme's protection in a few words.
func verdict(p schemes.Properties, peer schemes.Peer) string {
	switch {
	case p.Insecure:
		return "INSECURE"
	case p.ServerAuth && peer.Identity == "":
		return "server NOT verified"
	case p.ClientAuth:
		return "secure, both verified"
	case p.ServerAuth:
		return "secure, server verified"
	case p.Confidentiality && p.Integrity:
		return "sealed, shared key"
	}
	return "no integrity"
}

// roundTrip prints d to two significant figures or so.
func roundTrip(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(time.Millisecond).String()
}

// memberLines lists the members, and the keys when there is room.
func (m *model) memberLines(h int) []string {
	lines := []string{titleStyle.Render(fmt.Sprintf(" members (%d)", len(m.members.names)))}
	for _, n := range m.members.names {
		label := n
		if strings.EqualFold(n, m.name) {
			label += " (you)"
		}
		lines = append(lines, " "+nameStyle(n).Render(label))
	}
	keys := []string{"", faintStyle.Render(" F2    wire pane"), faintStyle.Render(" PgUp  scroll"), faintStyle.Render(" Tab   complete"), faintStyle.Render(" ^C    leave")}
	if len(lines)+len(keys) <= h {
		for len(lines)+len(keys) < h {
			lines = append(lines, "")
		}
		lines = append(lines, keys...)
	}
	return lines
}
