package labs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/parley-edu/parley/labs/scenario"
	"github.com/parley-edu/parley/room/store"
)

// The data-at-rest room and its members.
const darRoom = "night-shift"

var darMembers = []string{"dana", "erik", "fay"}

func init() {
	register(&Lab{
		ID:       "data-at-rest",
		Title:    "Read a room's stored history: in clear, then sealed",
		Schemes:  []string{"plain"},
		Minutes:  20,
		Concepts: []string{"encryption at rest", "what sealing hides and what it does not", "metadata"},
		FileOnly: true,
		answer:   func(seed []byte) string { return code(seed, "safe") + " " + darTalker(seed) },
		check: func(seed []byte, got string) error {
			safe, talker := code(seed, "safe"), darTalker(seed)
			f := strings.Fields(got)
			switch {
			case got == safe+" "+talker:
				return nil
			case len(f) == 1 && f[0] == safe:
				return notYet("that is the safe code from the plaintext history; now add who sent the most messages in the sealed one, as \"CODE NAME\"")
			case len(f) == 2 && f[0] == safe:
				return notYet("the safe code is right, but %s did not send the most messages in history-sealed.db: count the rows per sender", f[1])
			case len(f) == 2 && f[1] == talker:
				return notYet("the name is right, but that is not the safe code in history-plain.db")
			}
			return notYet("give the safe code from history-plain.db and the name of the member who sent the most messages in history-sealed.db, as \"CODE NAME\"")
		},
		demonstrated: "you read a secret straight out of a history stored in clear, and saw that the sealed history " +
			"hides what was said but not who spoke, when, or how much.",
		start: func(ctx context.Context, e *env) (*Session, error) {
			plain, sealed := e.path("history-plain.db"), e.path("history-sealed.db")
			err := recordHistory(ctx, e, plain, nil, []say{
				chat("dana", "evening all, who has the safe code tonight?"),
				chat("erik", "not me, it changed on monday"),
				chat("fay", "the safe code is "+code(e.seed, "safe")+", don't write it down"),
				chat("dana", "thanks fay, memorised"),
			})
			if err != nil {
				return nil, err
			}
			// The sealed history's key is drawn here and thrown away:
			// the student never has it.
			key := make([]byte, store.KeySize)
			rand.Read(key)
			err = recordHistory(ctx, e, sealed, key, darSealedTalk(e.seed))
			clear(key)
			if err != nil {
				return nil, err
			}
			return &Session{Files: []string{plain, sealed}}, nil
		},
	})
}

// darTalker is the member who sends the most messages in the sealed
// history.
func darTalker(seed []byte) string { return darMembers[pick(seed, "talker", len(darMembers))] }

// darSealedTalk is this month's conversation: the talker sends five
// messages, the others three and two, and the safe code has changed.
func darSealedTalk(seed []byte) []say {
	talker := darTalker(seed)
	var others []string
	for _, m := range darMembers {
		if m != talker {
			others = append(others, m)
		}
	}
	return []say{
		chat(others[0], "history is sealed now, the audit asked for it"),
		chat(talker, "good, last month's was readable by anyone with the file"),
		chat(others[1], "new safe code this month?"),
		chat(talker, "yes: "+code(seed, "new-safe")),
		chat(others[0], "got it"),
		chat(talker, "and please stop pasting it in the room"),
		chat(others[1], "sorry"),
		chat(talker, "the sealed history still shows who talked and when"),
		chat(others[0], "but not what we said"),
		chat(talker, "right"),
	}
}

// recordHistory runs a room that keeps its history in a new database at
// path (sealed under key, or in clear when key is nil), plays lines and
// closes everything, so that the file is complete.
func recordHistory(ctx context.Context, e *env, path string, key []byte, lines []say) (err error) {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("labs: cannot replace %s: %w", p, err)
		}
	}
	db, err := store.Open(path, store.Options{Create: true})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	h, err := db.History(darRoom, key)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, h.Close()) }()
	sc, err := scenario.Start(ctx, scenario.Options{Scheme: "plain", RoomName: darRoom, History: h.ForRoom(), Logger: e.log})
	if err != nil {
		return err
	}
	perr := play(ctx, sc, nil, lines)
	return errors.Join(perr, sc.Close())
}
