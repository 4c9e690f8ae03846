package room

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// History keeps the room's chat lines, so that a member who joins late can
// read what was said. Config.History is optional.
type History interface {
	// Append stores one chat line. It may queue the line and report a
	// failure to store it on a later call.
	Append(sender string, t time.Time, text string) error
	// Last returns the last n lines, oldest first, including every line
	// whose Append has returned.
	Last(ctx context.Context, n int) ([]Message, error)
}

// Message is one stored chat line.
type Message struct {
	ID     int64
	Sender string
	Time   time.Time
	Text   string
	// Err is set when the stored line failed its integrity check; Text is
	// then empty and the line is reported, not shown.
	Err error
}

// Replay limits.
const (
	DefaultHistoryReplay = 20  // lines replayed to a member who joins
	MaxHistoryRequest    = 500 // most lines one /history returns
)

const historyTimeLayout = "2006-01-02 15:04:05"

// record stores a chat line of m's in the room's history, if it keeps one.
func (m *member) record(t time.Time, text []byte) {
	h := m.room.cfg.History
	if h == nil {
		return
	}
	if err := h.Append(m.name, t, string(text)); err != nil {
		m.room.historyFailed(err)
	}
}

// historyFailed logs a failure to store history, once per kind of error
// in a row, so that a full disk does not log every chat line.
func (r *Room) historyFailed(err error) {
	r.histMu.Lock()
	defer r.histMu.Unlock()
	if r.histErr == err.Error() {
		return
	}
	r.histErr = err.Error()
	r.log.Error("cannot store the room's history", "err", err)
}

// historyLines formats the last n stored lines for m, oldest first: a
// header, the lines, and a report for each line that failed its integrity
// check. Lines at or after before are left out (m received those live);
// zero before leaves none out.
func (m *member) historyLines(n int, before time.Time) []byte {
	r := m.room
	msgs, err := r.cfg.History.Last(r.ctx, n)
	if err != nil {
		r.log.Error("cannot read the room's history", "err", err)
		return errorLine("history unavailable: the server cannot read it")
	}
	if !before.IsZero() {
		for len(msgs) > 0 && !msgs[len(msgs)-1].Time.Before(before) {
			msgs = msgs[:len(msgs)-1]
		}
	}
	// Newest first, so that when the lines do not all fit in half of m's
	// queue it is the oldest that are left out.
	var lines [][]byte
	size, budget := 0, r.cfg.MaxQueue/2
	for i := len(msgs) - 1; i >= 0; i-- {
		line := historyLine(msgs[i])
		if size+len(line) > budget {
			break
		}
		size += len(line)
		lines = append(lines, line)
	}
	slices.Reverse(lines)
	var out bytes.Buffer
	switch len(lines) {
	case 0:
		out.Write(noticeLine("history: nothing has been said here yet"))
	case 1:
		out.Write(noticeLine("history: the last message"))
	default:
		out.Write(noticeLine(fmt.Sprintf("history: the last %d messages", len(lines))))
	}
	for _, l := range lines {
		out.Write(l)
	}
	if len(lines) > 0 {
		out.Write(noticeLine("history: end"))
	}
	return out.Bytes()
}

// historyLine formats one stored line: "* history [TIME] NAME: TEXT", or
// an error line for a line that failed its integrity check.
func historyLine(msg Message) []byte {
	if msg.Err != nil {
		return errorLine(fmt.Sprintf("history: message %d from %s at %s failed its integrity check (tampered or corrupt); not shown",
			msg.ID, sanitizeString(msg.Sender), msg.Time.Local().Format(historyTimeLayout)))
	}
	var b bytes.Buffer
	b.WriteString("* history [")
	b.WriteString(msg.Time.Local().Format(historyTimeLayout))
	b.WriteString("] ")
	AppendSanitized(&b, []byte(msg.Sender))
	b.WriteString(": ")
	AppendSanitized(&b, []byte(msg.Text))
	b.WriteByte('\n')
	return b.Bytes()
}

// historyCommand is /history [N].
func (m *member) historyCommand(arg string) {
	if m.room.cfg.History == nil {
		m.enqueue(errorLine("this room keeps no history"))
		return
	}
	n := DefaultHistoryReplay
	if arg != "" {
		v, err := strconv.Atoi(strings.TrimSpace(arg))
		if err != nil || v < 1 {
			m.enqueue(errorLine("usage: /history [N], N a number of messages from 1 to " + strconv.Itoa(MaxHistoryRequest)))
			return
		}
		n = min(v, MaxHistoryRequest)
	}
	m.enqueue(m.historyLines(n, time.Time{}))
}
