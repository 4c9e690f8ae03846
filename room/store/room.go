package store

import (
	"context"
	"time"

	"github.com/parley-edu/parley/room"
)

// ForRoom returns h as a room's history (room.Config.History).
func (h *History) ForRoom() room.History { return roomHistory{h} }

type roomHistory struct{ h *History }

func (r roomHistory) Append(sender string, t time.Time, text string) error {
	return r.h.Append(sender, t, text)
}

func (r roomHistory) Last(ctx context.Context, n int) ([]room.Message, error) {
	msgs, err := r.h.Last(ctx, n)
	out := make([]room.Message, len(msgs))
	for i, m := range msgs {
		out[i] = room.Message{ID: m.ID, Sender: m.Sender, Time: m.Time, Text: m.Text, Err: m.Err}
	}
	return out, err
}
