package labs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/room"
	"github.com/parley-edu/parley/schemes"
)

// botTimeout bounds every step of a scripted bot: connecting, the
// handshake, joining and waiting for an expected line.
const botTimeout = 10 * time.Second

// recordedRoom is a room on 127.0.0.1 behind a capture tap: bots that join
// through Addr are recorded as an eavesdropper on the wire would see them.
type recordedRoom struct {
	room     *room.Room
	tap      *capture.Tap
	roomDone chan struct{}
	tapDone  chan struct{}
	cancel   context.CancelFunc
}

// startRecordedRoom serves a room over sch on a free loopback port with a
// tap in front of it. keyLogPath, when set, is the room's TLS key log that
// the tap embeds in its capture.
func startRecordedRoom(sch schemes.Scheme, keyLogPath string, log *slog.Logger) (*recordedRoom, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("labs: cannot listen for the lab's room: %w", err)
	}
	rm, err := room.New(room.Config{Scheme: sch, Logger: log})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("labs: cannot create the lab's room: %w", err)
	}
	tap, err := capture.NewTap(capture.TapConfig{Listen: "127.0.0.1:0", Upstream: ln.Addr().String(), KeyLogPath: keyLogPath, Logger: log})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("labs: cannot start the capture tap: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &recordedRoom{room: rm, tap: tap, roomDone: make(chan struct{}), tapDone: make(chan struct{}), cancel: cancel}
	go func() { defer close(r.roomDone); rm.Serve(ln) }()
	go func() { defer close(r.tapDone); tap.Serve(ctx) }()
	return r, nil
}

// Addr is the tap's address, where bots join.
func (r *recordedRoom) Addr() string { return r.tap.Addr().String() }

// stop shuts the room down (members see "* server shutting down"), then
// the tap, and waits for both.
func (r *recordedRoom) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), botTimeout)
	defer cancel()
	r.room.Shutdown(ctx)
	<-r.roomDone
	r.cancel()
	<-r.tapDone
}

// close stops everything and releases the recording.
func (r *recordedRoom) close() {
	r.stop()
	r.tap.Recorder().Close()
}

// A bot is a scripted room member.
type bot struct {
	name string
	conn schemes.Conn
}

// joinBot connects to addr over sch and joins the room as name.
func joinBot(addr string, sch schemes.Scheme, name string) (*bot, error) {
	c, err := net.DialTimeout("tcp", addr, botTimeout)
	if err != nil {
		return nil, fmt.Errorf("labs: bot %s cannot connect to %s: %w", name, addr, err)
	}
	c.SetDeadline(time.Now().Add(botTimeout))
	sc, err := sch.Client(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("labs: bot %s: %s handshake with %s failed: %w", name, sch.Name(), addr, err)
	}
	b := &bot{name: name, conn: sc}
	if _, err := b.expect("* choose a name"); err != nil {
		sc.Close()
		return nil, err
	}
	if err := b.say(name); err != nil {
		sc.Close()
		return nil, err
	}
	if _, err := b.expect("* welcome, "); err != nil {
		sc.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return b, nil
}

// say sends one line.
func (b *bot) say(line string) error {
	b.conn.SetWriteDeadline(time.Now().Add(botTimeout))
	if err := b.conn.WriteLines([]byte(line + "\n")); err != nil {
		return fmt.Errorf("labs: bot %s cannot send: %w", b.name, err)
	}
	return nil
}

// expect reads lines until one contains s and returns it.
func (b *bot) expect(s string) (string, error) {
	b.conn.SetReadDeadline(time.Now().Add(botTimeout))
	defer b.conn.SetReadDeadline(time.Time{})
	for {
		m, err := b.conn.ReadMessage()
		if errors.Is(err, schemes.ErrMessageTooLong) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("labs: bot %s waiting for %q: %w", b.name, s, err)
		}
		if line := string(m); strings.Contains(line, s) {
			return line, nil
		}
	}
}

// quit leaves the room and closes the connection.
func (b *bot) quit() {
	b.say("/quit")
	b.expect("") // the server's goodbye, or the close; either is fine
	b.conn.Close()
}

// exchange has from send line and waits until to receives a line that
// contains want, so that the bytes have crossed the tap before the script
// goes on.
func exchange(from, to *bot, line, want string) error {
	if err := from.say(line); err != nil {
		return err
	}
	_, err := to.expect(want)
	return err
}
