package labs

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/parley-edu/parley/labs/scenario"
	"github.com/parley-edu/parley/schemes"
)

// joinThrough is how a lab's scripted member reaches the room through an
// address the student controls (a relay position): it dials addr, runs
// sch's client handshake and joins as name. Nothing listening at addr yet
// returns a nil Conn and a nil error; any other failure a nil Conn and an
// error that reads as the member's sentence (a handshake error wraps the
// scheme's, e.g. a *schemes.CertificateError). On success the caller calls
// done, which also runs when ctx ends, to close the connection.
func joinThrough(ctx context.Context, sch schemes.Scheme, addr, name string) (conn schemes.Conn, done func(), err error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, nil
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	done = func() {
		stop()
		c.Close()
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	conn, err = sch.Client(c)
	if err != nil {
		done()
		return nil, nil, fmt.Errorf("the %s handshake through %s failed: %w", sch.Name(), addr, err)
	}
	if err := readUntil(conn, "* choose a name"); err != nil {
		done()
		return nil, nil, fmt.Errorf("the room did not greet me: %w", err)
	}
	conn.WriteLines([]byte(name + "\n"))
	if err := readUntil(conn, "* welcome, "); err != nil {
		done()
		return nil, nil, fmt.Errorf("the room did not let me in: %w", err)
	}
	return conn, done, nil
}

// readUntil reads messages from conn until one contains want.
func readUntil(conn schemes.Conn, want string) error {
	for {
		m, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		if strings.Contains(string(m), want) {
			return nil
		}
	}
}

// onPrivate calls answer with the sender of every private message bot
// receives, once each and in order, until ctx ends or bot's connection
// does.
func onPrivate(ctx context.Context, bot *scenario.Bot, answer func(from string)) {
	handled := 0
	for {
		i := 0
		line, err := bot.WaitFor(ctx, "a private message", func(l string) bool {
			i++
			return i > handled && strings.Contains(l, " (private): ")
		})
		if err != nil {
			if ctx.Err() != nil || bot.Err() != nil {
				return
			}
			continue
		}
		handled = i
		from, _, _ := strings.Cut(line, " (private): ")
		answer(from)
	}
}
