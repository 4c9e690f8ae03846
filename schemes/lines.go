package schemes

import (
	"bytes"
	"fmt"
	"io"
	"net"
)

// lineReader reads newline-terminated lines from r without allocating per
// line. Its buffer starts small, so that idle connections stay cheap, and
// grows up to the line limit only when a long line arrives.
type lineReader struct {
	r          io.Reader
	buf        []byte
	start, end int // unread bytes are buf[start:end]
	max        int
	discarding bool // inside a line that was already reported too long
	err        error
}

const initialLineBuffer = 1024

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: r, max: max}
}

// readLine returns the next line without "\n" or "\r\n". The slice is valid
// until the next call. A line over the limit is discarded up to its newline
// and reported once as an error wrapping ErrMessageTooLong; the reader stays
// usable. A final line without a newline is dropped: the peer never finished
// sending it.
func (lr *lineReader) readLine() ([]byte, error) {
	for {
		if i := bytes.IndexByte(lr.buf[lr.start:lr.end], '\n'); i >= 0 {
			line := lr.buf[lr.start : lr.start+i]
			lr.start += i + 1
			if lr.discarding {
				lr.discarding = false
				return nil, fmt.Errorf("%w (limit %d bytes)", ErrMessageTooLong, lr.max)
			}
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			if len(line) > lr.max {
				return nil, fmt.Errorf("%w (limit %d bytes)", ErrMessageTooLong, lr.max)
			}
			return line, nil
		}
		if lr.err != nil {
			return nil, lr.err
		}
		if lr.discarding || lr.end-lr.start > lr.max+1 {
			// The line cannot fit: drop what we have and skip to its end.
			lr.discarding = true
			lr.start, lr.end = 0, 0
		}
		lr.fill()
	}
}

// fill reads more bytes, compacting or growing the buffer first.
func (lr *lineReader) fill() {
	if lr.start > 0 {
		lr.end = copy(lr.buf, lr.buf[lr.start:lr.end])
		lr.start = 0
	}
	if lr.end == len(lr.buf) {
		size := 2 * len(lr.buf)
		if size < initialLineBuffer {
			size = initialLineBuffer
		}
		if limit := lr.max + 2; size > limit && len(lr.buf) < limit {
			size = limit
		}
		if size > len(lr.buf) {
			nb := make([]byte, size)
			copy(nb, lr.buf[:lr.end])
			lr.buf = nb
		}
	}
	n, err := lr.r.Read(lr.buf[lr.end:])
	lr.end += n
	if err != nil {
		if err == io.EOF && lr.end > lr.start {
			err = io.ErrUnexpectedEOF
		}
		lr.err = err
	}
}

// lineConn frames messages by newline over c. plain uses it directly and
// tls uses it over a *tls.Conn.
type lineConn struct {
	net.Conn
	lr   *lineReader
	peer Peer
}

func newLineConn(c net.Conn, max int, peer Peer) *lineConn {
	return &lineConn{Conn: c, lr: newLineReader(c, max), peer: peer}
}

func (c *lineConn) ReadMessage() ([]byte, error) { return c.lr.readLine() }

func (c *lineConn) WriteLines(b []byte) error {
	_, err := c.Conn.Write(b)
	return err
}

func (c *lineConn) Peer() Peer { return c.peer }

var _ Conn = (*lineConn)(nil)
