package attack

import (
	"errors"
	"io"
	"net"
	"sync"

	"github.com/parley-edu/parley/capture"
)

// recConn is one leg's TCP connection as Mallory holds it, recording what
// she reads and writes. us is the side Mallory plays on this leg: Server
// towards the member, Client towards the room.
type recConn struct {
	net.Conn
	rc *capture.RecordedConn // nil when not recording
	us capture.Side

	once sync.Once
}

func (c *recConn) them() capture.Side { return 1 - c.us }

func (c *recConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.rc != nil {
		if n > 0 {
			c.rc.Data(c.them(), b[:n])
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			c.rc.Close(c.them())
		case !errors.Is(err, net.ErrClosed) && !isTimeout(err):
			c.rc.Reset(c.them())
		}
	}
	return n, err
}

func (c *recConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if c.rc != nil && n > 0 {
		c.rc.Data(c.us, b[:n])
	}
	return n, err
}

// CloseWrite sends FIN: Mallory will send nothing more on this leg.
func (c *recConn) CloseWrite() error {
	tc, ok := c.Conn.(*net.TCPConn)
	if !ok {
		return errors.ErrUnsupported
	}
	err := tc.CloseWrite()
	if err == nil && c.rc != nil {
		c.rc.Close(c.us)
	}
	return err
}

// Close closes the connection and records Mallory's FIN. It is idempotent.
func (c *recConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		if c.rc != nil {
			c.rc.Close(c.us)
		}
		err = c.Conn.Close()
	})
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
