package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/parley-edu/parley/room"
	"github.com/parley-edu/parley/room/store"
	"github.com/parley-edu/parley/schemes"
)

// historyKeyFile is the history key's name in the parley home, made on
// first use when --history-key is not given.
const historyKeyFile = "history.key"

// storeFlags are serve's flags for logins and history, which live in the
// accounts database.
func storeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "auth", Usage: "members log in with a password after their name (accounts: 'parley users add NAME')"},
		&cli.BoolFlag{Name: "history", Usage: "store the room's messages, sealed with AES-256-GCM, and replay the last ones to whoever joins"},
		&cli.StringFlag{Name: "history-key", Usage: "32-byte key file that seals the history (default: history.key in the parley home, made if missing)"},
		&cli.BoolFlag{Name: "history-insecure-plaintext", Usage: "INSECURE teaching switch: store the history in clear, readable by anyone who can read the database"},
		&cli.IntFlag{Name: "history-replay", Value: room.DefaultHistoryReplay, Usage: "messages replayed to a member who joins (0 for none)"},
		&cli.StringFlag{Name: "db", Usage: "accounts and history database (default: " + store.DefaultFile + " in the parley home)"},
	}
}

// roomStore is what serve opened of the database: accounts, history or both.
type roomStore struct {
	db      *store.DB
	auth    bool
	history *store.History
	replay  int
}

// openRoomStore opens the database for --auth and --history, or returns
// nil when neither is asked for. It prints what the room will do with it.
func openRoomStore(c *cli.Context, roomName string, props schemes.Properties) (*roomStore, error) {
	auth, history, plaintext := c.Bool("auth"), c.Bool("history"), c.Bool("history-insecure-plaintext")
	switch {
	case plaintext && !history:
		return nil, misuse("--history-insecure-plaintext needs --history")
	case c.IsSet("history-key") && !history:
		return nil, misuse("--history-key needs --history")
	case plaintext && c.IsSet("history-key"):
		return nil, misuse("--history-insecure-plaintext stores the history in clear: it takes no --history-key",
			"drop one of the two flags")
	case c.IsSet("history-replay") && !history:
		return nil, misuse("--history-replay needs --history")
	case c.Int("history-replay") < 0:
		return nil, misuse("--history-replay must be 0 (none) or more messages")
	case c.IsSet("db") && !auth && !history:
		return nil, misuse("--db needs --auth or --history")
	}
	if !auth && !history {
		return nil, nil
	}
	// The key first, so that a mistake in it leaves no new database behind.
	var key []byte
	var keyPath string
	var err error
	if history && !plaintext {
		if key, keyPath, err = historyKey(c); err != nil {
			return nil, err
		}
	}
	// A room with logins needs accounts, so it never creates the database;
	// a room that only keeps history makes one on first use.
	db, path, err := openUsersDB(c, !auth)
	if err != nil {
		return nil, err
	}
	s := &roomStore{db: db, auth: auth, replay: c.Int("history-replay")}
	w := c.App.ErrWriter
	if auth {
		users, err := db.Users(c.Context)
		if err != nil {
			db.Close()
			return nil, fail(fmt.Errorf("cannot read the accounts in %s: %w", path, err))
		}
		if len(users) == 0 {
			db.Close()
			return nil, fail(fmt.Errorf("%s holds no accounts, so nobody could log in", path),
				"add one first: parley users add NAME")
		}
		accounts := "1 account"
		if len(users) > 1 {
			accounts = fmt.Sprintf("%d accounts", len(users))
		}
		fmt.Fprintf(w, "parley: logins on: %s in %s\n", accounts, path)
		if props.Insecure {
			fmt.Fprintf(w, "parley: warning: --auth over %s: passwords cross the wire where anyone capturing the traffic can read or tamper with them; use tls or mtls for real logins\n", props.Name)
		}
	}
	if history {
		if s.history, err = db.History(roomName, key); err != nil {
			db.Close()
			return nil, historyOpenError(path, keyPath, err)
		}
		if plaintext {
			fmt.Fprintf(w, "parley: warning: --history-insecure-plaintext: messages are stored in clear in %s; anyone who can read the file reads them all\n", path)
		} else {
			fmt.Fprintf(w, "parley: history on: sealed with AES-256-GCM in %s\n", path)
		}
	}
	return s, nil
}

// configure sets the room's accounts and history.
func (s *roomStore) configure(cfg *room.Config) {
	if s.auth {
		cfg.Accounts = s.db
	}
	if s.history != nil {
		cfg.History = s.history.ForRoom()
		cfg.HistoryReplay = s.replay
		if s.replay == 0 {
			cfg.HistoryReplay = -1 // room.Config: negative replays nothing
		}
	}
}

// Close stores what is still queued of the history, then closes the
// database.
func (s *roomStore) Close() error {
	var err error
	if s.history != nil {
		err = s.history.Close()
	}
	return errors.Join(err, s.db.Close())
}

// historyOpenError explains why the history did not open.
func historyOpenError(path, keyPath string, err error) error {
	switch {
	case errors.Is(err, store.ErrWrongKey):
		return fail(fmt.Errorf("wrong history key: the history in %s was sealed with another key than %s", path, keyPath),
			"give the --history-key it was written with, or keep this room's history in another --db")
	case errors.Is(err, store.ErrPlaintext):
		return fail(fmt.Errorf("%s holds history stored in clear (--history-insecure-plaintext), so sealing new messages beside it would protect nothing", path),
			"keep this room's sealed history in another --db, or go on with --history-insecure-plaintext")
	case errors.Is(err, store.ErrSealed):
		return fail(fmt.Errorf("%s holds sealed history, so it cannot take plaintext history too", path),
			"drop --history-insecure-plaintext and give the --history-key it was sealed with, or use another --db")
	}
	return fail(err)
}

// historyKey reads --history-key and returns the key and its file.
// Without the flag it uses history.key in the parley home, making a new key
// there on first use.
func historyKey(c *cli.Context) (key []byte, path string, err error) {
	path = c.String("history-key")
	if path == "" {
		home, err := homeDir(c)
		if err != nil {
			return nil, "", err
		}
		path = filepath.Join(home, historyKeyFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if err := writeNewKey(path, false); err != nil {
				return nil, "", fail(err)
			}
			fmt.Fprintf(c.App.ErrWriter, "parley: made a new history key at %s (mode 0600); keep it safe: without it the history cannot be read\n", path)
		}
	} else if err := checkInputFile("history-key", path, "make one with 'parley keys gen --out "+path+"'"); err != nil {
		return nil, "", err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fail(fmt.Errorf("cannot read the history key: %w", err))
	}
	if key, err = schemes.ParsePSK(data); err != nil {
		return nil, "", fail(fmt.Errorf("%s is not a history key: %w", path, err), "make one with 'parley keys gen --out FILE'")
	}
	return key, path, nil
}
