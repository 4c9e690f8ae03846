package capture

import (
	"bytes"
	"time"
)

// maxLine bounds a line the line dissectors buffer; a longer run of bytes
// without a newline is shown in pieces.
const maxLine = 64<<10 + 2

// lineSplitter splits one direction's bytes into lines.
type lineSplitter struct {
	buf []byte
}

// add appends b and calls f for every complete line (without "\n" or
// "\r\n"), passing its wire length.
func (ls *lineSplitter) add(b []byte, f func(line []byte, wire int)) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			ls.buf = append(ls.buf, b...)
			if len(ls.buf) > maxLine {
				f(ls.buf, len(ls.buf))
				ls.buf = ls.buf[:0]
			}
			return
		}
		var line []byte
		if len(ls.buf) > 0 {
			ls.buf = append(ls.buf, b[:i]...)
			line = ls.buf
		} else {
			line = b[:i]
		}
		wire := len(line) + 1
		b = b[i+1:]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		f(line, wire)
		ls.buf = ls.buf[:0]
	}
}

// rest returns and clears a final line that never got its newline.
func (ls *lineSplitter) rest() []byte {
	b := ls.buf
	ls.buf = nil
	return b
}

// plainDissector shows the room's lines as they cross the wire: the
// eavesdropper reads everything.
type plainDissector struct {
	s     *stream
	lines [2]lineSplitter
	skip  [2]bool // after a gap: the first line is partial
}

func newPlainDissector(s *stream) *plainDissector {
	d := &plainDissector{s: s}
	if s.midStream {
		d.skip = [2]bool{true, true}
	}
	return d
}

func (d *plainDissector) data(side Side, t time.Time, b []byte) {
	d.lines[side].add(b, func(line []byte, wire int) {
		e := d.s.event(EventMessage, side, t)
		if d.skip[side] {
			d.skip[side] = false
			e.Text = "(line cut by the start of the capture or a gap)"
		}
		e.WireBytes = wire
		e.Plaintext = string(line)
		e.RecoveredBy = RecoveredCleartext
		e.Wire = append([]byte(nil), line...)
		d.s.rd.send(e)
	})
}

func (d *plainDissector) gap(side Side, t time.Time, n int) {
	d.s.note(side, t, gapText(side, n))
	d.lines[side].rest()
	d.skip[side] = true
}

func (d *plainDissector) end(t time.Time) {
	for _, side := range []Side{Client, Server} {
		if rest := d.lines[side].rest(); len(rest) > 0 {
			e := d.s.event(EventMessage, side, t)
			e.WireBytes = len(rest)
			e.Plaintext = string(rest)
			e.RecoveredBy = RecoveredCleartext
			e.Text = "(no newline before the end of the stream)"
			e.Wire = rest
			d.s.rd.send(e)
		}
	}
}
