package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/parley-edu/parley/capture"
)

// The columns of a row of bytes: two spaces, the part's label, a space,
// the bytes in hex, two spaces, the bytes as ASCII.
const (
	labelWidth = 11
	hexColumn  = 2 + labelWidth + 1
)

// bytesPerRow is how many bytes a row shows at width.
func bytesPerRow(width int) int {
	for _, n := range []int{16, 8} {
		if hexColumn+3*n-1+2+n <= width {
			return n
		}
	}
	return 4
}

// wireRows renders the wire pane in at most budget rows: what an
// eavesdropper gets from the scheme, then the last units sent and
// received, their parts cut shorter when rows are scarce.
func (m *model) wireRows(width, budget int) []string {
	title := strings.Split(ansi.Wrap(titleStyle.Render("wire: ")+capture.WireSummary(m.cfg.scheme.Name), width, " "), "\n")
	left := budget - len(title)
	if left <= 0 {
		return title[:max(budget, 0)]
	}
	var sent, recv []string
	for _, maxRows := range []int{4, 2, 1} {
		sent = block("→ sent", m.sentAt, m.sent, m.sentDropped, width, maxRows)
		var units []capture.WireUnit
		if m.haveRecv {
			units = []capture.WireUnit{m.recv}
		}
		recv = block("← received", m.recvAt, units, 0, width, maxRows)
		if len(sent)+len(recv) <= left {
			break
		}
	}
	sent = cut(sent, max(left-len(recv), left/2))
	recv = cut(recv, left-len(sent))
	return append(append(title, sent...), recv...)
}

// cut returns at most n rows, marking rows left out.
func cut(rows []string, n int) []string {
	if len(rows) <= n {
		return rows
	}
	if n <= 0 {
		return nil
	}
	return append(rows[:n-1:n-1], faintStyle.Render("  …"))
}

// block renders the units of one direction, each part's bytes in at most
// maxRows rows.
func block(label string, at time.Time, units []capture.WireUnit, dropped, width, maxRows int) []string {
	if len(units) == 0 {
		return []string{titleStyle.Render(label) + faintStyle.Render(": nothing yet")}
	}
	head := titleStyle.Render(label) + " " + at.Format("15:04:05") + "  "
	if len(units) == 1 {
		head += describe(units[0])
	} else {
		total := 0
		for _, u := range units {
			total += u.Size
		}
		head += fmt.Sprintf("%d units, %d bytes", len(units), total)
	}
	if dropped > 0 {
		head += fmt.Sprintf(" (and %d more not shown)", dropped)
	}
	rows := []string{head}
	for _, u := range units {
		if len(units) > 1 {
			rows = append(rows, "  "+describe(u))
		}
		for _, p := range u.Parts {
			rows = append(rows, partRows(u, p, width, maxRows)...)
		}
		rows = append(rows, "  Eve: "+sanitize(u.Reveals))
	}
	return rows
}

func describe(u capture.WireUnit) string {
	return fmt.Sprintf("%s, %d bytes", sanitize(u.Kind), u.Size)
}

// partRows renders one part as rows of hex and ASCII, with its note after
// the first row when the width leaves room for it; a label ending in "…"
// marks a part shown only in part.
func partRows(u capture.WireUnit, p capture.WirePart, width, maxRows int) []string {
	style := lipgloss.NewStyle()
	if c, ok := partColors[p.Name]; ok {
		style = style.Foreground(c)
	}
	if p.Name == "newline" {
		style = faintStyle
	}
	n := bytesPerRow(width)
	b := u.PartBytes(p, n*maxRows)
	label := p.Name
	if len(b) < p.Len {
		label += "…"
	}
	note := sanitize(p.Note)
	var rows []string
	for i := 0; i == 0 || i < len(b); i += n {
		chunk := b[i:min(i+n, len(b))]
		var hx, asc strings.Builder
		for j, c := range chunk {
			if j > 0 {
				hx.WriteByte(' ')
			}
			fmt.Fprintf(&hx, "%02x", c)
			if c >= 0x20 && c < 0x7f {
				asc.WriteByte(c)
			} else {
				asc.WriteByte('.')
			}
		}
		l := ""
		if i == 0 {
			l = label
		}
		row := "  " + style.Render(fmt.Sprintf("%-*s", labelWidth, l)) + " " +
			style.Render(fmt.Sprintf("%-*s", 3*n-1, hx.String())) + "  " + fmt.Sprintf("%-*s", n, asc.String())
		if i == 0 && note != "" && hexColumn+3*n-1+2+n+2+ansi.StringWidth(note) <= width {
			row += "  " + faintStyle.Render(note)
		}
		rows = append(rows, row)
	}
	return rows
}
