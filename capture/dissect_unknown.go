package capture

import (
	"fmt"
	"time"
)

// unknownDissector shows bytes of an unrecognised stream as a hex and
// ASCII preview, one message per reassembled chunk.
type unknownDissector struct{ s *stream }

func newUnknownDissector(s *stream) *unknownDissector { return &unknownDissector{s: s} }

const previewLen = 32

func (d *unknownDissector) data(side Side, t time.Time, b []byte) {
	e := d.s.event(EventMessage, side, t)
	e.WireBytes = len(b)
	e.Text = preview(b)
	e.Wire = append([]byte(nil), b...)
	d.s.rd.send(e)
}

func (d *unknownDissector) gap(side Side, t time.Time, n int) { d.s.note(side, t, gapText(side, n)) }

func (d *unknownDissector) end(time.Time) {}

// preview renders the first bytes of b as hex and as ASCII with dots for
// anything unprintable.
func preview(b []byte) string {
	p := b[:min(len(b), previewLen)]
	ascii := make([]byte, len(p))
	for i, c := range p {
		if c >= 0x20 && c < 0x7f {
			ascii[i] = c
		} else {
			ascii[i] = '.'
		}
	}
	more := ""
	if len(b) > len(p) {
		more = " ..."
	}
	return fmt.Sprintf("% x%s |%s|", p, more, ascii)
}
