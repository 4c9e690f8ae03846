// Package store is parley's database: user accounts and the room's history,
// in one embedded SQLite file (modernc.org/sqlite, so the binary needs no
// cgo), by default parley.db in the parley home.
//
// # The file
//
// Open never creates a database over anything: a file that exists must be a
// parley database, identified by its SQLite application_id (0x50726c79,
// "Prly") and a schema version it knows (PRAGMA user_version); anything
// else is an error that names the file, and the file is left as it was. The
// database runs in WAL mode with a busy timeout, so a server and the
// 'parley users' command can use it at the same time, with foreign keys on.
// The file and its -wal and -shm companions are private to their owner
// (mode 0600): Open creates the file that way before SQLite touches it,
// tightens an existing file that others could read, and checks the
// companions after SQLite has made them.
//
// # The schema
//
// The tables are plain on purpose, so that a lab can send students to them
// with the sqlite3 command line:
//
//	users(name TEXT PRIMARY KEY COLLATE NOCASE, -- 1-32 letters, digits, _ - .
//	      hash TEXT,      -- argon2id in the PHC string format (see AddUser)
//	      created TEXT,   -- RFC 3339, UTC
//	      changed TEXT)   -- when the password was last set
//
//	messages(id INTEGER PRIMARY KEY AUTOINCREMENT,
//	         room TEXT, sender TEXT,
//	         time TEXT,   -- RFC 3339 with nanoseconds, UTC
//	         text TEXT,   -- the message, in plaintext mode only; else NULL
//	         nonce BLOB,  -- sealed mode: the 12-byte AES-GCM nonce
//	         sealed BLOB) -- sealed mode: the AES-256-GCM ciphertext and tag
//
//	meta(key TEXT PRIMARY KEY, value BLOB) -- history_key_id: see History
//
// In sealed mode the room, sender and time stay readable: they are
// authenticated, not hidden (SELECT room, sender, time FROM messages shows
// who spoke when). In plaintext mode everything is readable:
// SELECT sender, text FROM messages.
//
// # Concurrency
//
// A DB is safe for concurrent use. Password hashing, the expensive part of
// AddUser, SetPassword and Verify, runs at most runtime.NumCPU() at a time
// per DB, so a burst of logins cannot allocate the hash memory of every one
// at once.
package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// DefaultFile is the database's name in the parley home.
const DefaultFile = "parley.db"

// applicationID marks a SQLite file as a parley database ("Prly").
const applicationID = 0x50726c79

// busyTimeout is how long a statement waits for another connection or
// process (a running server, 'parley users') to release its lock.
const busyTimeout = 5 * time.Second

// Errors that Open wraps; each error also names the file.
var (
	// ErrNotParley reports a file that is not a parley database: not
	// SQLite, or SQLite without parley's schema.
	ErrNotParley = errors.New("store: not a parley database")
	// ErrCorrupt reports a parley database that SQLite cannot read
	// consistently: a damaged header, a truncated file, broken pages.
	ErrCorrupt = errors.New("store: the database is damaged")
	// ErrTooNew reports a database written by a newer parley, with a
	// schema version this one does not know.
	ErrTooNew = errors.New("store: the database is from a newer parley")
)

// Options are the choices of Open.
type Options struct {
	// Create creates the database when the file does not exist (or is
	// empty). Without it, a missing file is an error that wraps
	// fs.ErrNotExist.
	Create bool
}

// A DB is an open parley database. Close it after every History opened on
// it.
type DB struct {
	sql       *sql.DB
	path      string
	tightened fs.FileMode
	// hashSlots bounds the argon2id computations running at once; each
	// holds a slot while it runs.
	hashSlots chan struct{}
}

// Open opens the parley database at path, or creates it if opts.Create is
// set and there is no file (or an empty one) at path. It checks that the
// file is a parley database in one piece (SQLite's quick_check), brings its
// schema up to date and makes the file and its companions private. Errors
// wrap fs.ErrNotExist, ErrNotParley, ErrCorrupt or ErrTooNew when they are
// about the file rather than the system; a file that Open refuses is left
// as it was, contents and mode.
func Open(path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: no database file given")
	}
	if err := prepareFile(path, opts.Create); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	pool, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("store: cannot open %s: %w", path, err)
	}
	// A few readers beside the writer; each connection has its own page
	// cache, so the pool is bounded.
	pool.SetMaxOpenConns(8)
	pool.SetMaxIdleConns(8)
	db := &DB{
		sql:       pool,
		path:      path,
		hashSlots: make(chan struct{}, runtime.NumCPU()),
	}
	if err := db.setUp(opts.Create); err != nil {
		pool.Close()
		return nil, err
	}
	if db.tightened, err = db.makePrivate(); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// dsn is the driver's name for the database at the absolute path abs:
// mode=rw so that SQLite never creates the file (prepareFile does, with the
// right mode), and immediate transactions, which take the write lock when
// they begin, so that two writers wait for each other (busy_timeout)
// instead of failing when one upgrades a read lock.
func dsn(abs string) string {
	u := url.URL{Path: filepath.ToSlash(abs)}
	path := u.EscapedPath()
	if !strings.HasPrefix(path, "/") { // a Windows drive letter
		path = "/" + path
	}
	return fmt.Sprintf("file://%s?mode=rw&_txlock=immediate&_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)",
		path, busyTimeout.Milliseconds())
}

// prepareFile makes sure a file that SQLite may open exists at path, made
// with mode 0600 if it is new, and checks that an existing one starts like
// a SQLite database that is not truncated.
func prepareFile(path string, create bool) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return fmt.Errorf("store: there is no parley database at %s ('parley users add NAME' creates one): %w", path, fs.ErrNotExist)
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			// The umask may have taken bits away; set exactly 0600.
			err = f.Chmod(0o600)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(path)
				return fmt.Errorf("store: cannot create %s: %w", path, err)
			}
			return nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			// Not wrapped: the database is not missing, its folder is.
			return fmt.Errorf("store: cannot create %s: the folder %s does not exist", path, filepath.Dir(path))
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("store: cannot create %s: %w", path, err)
		}
		// Another process created it just now: treat it as existing.
		st, err = os.Stat(path)
	}
	if err != nil {
		return fmt.Errorf("store: cannot open %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file (%s); name a database file", ErrNotParley, path, st.Mode().Type())
	}
	if st.Size() == 0 {
		if !create {
			return fmt.Errorf("%w: %s is empty", ErrNotParley, path)
		}
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("store: cannot read %s: %w", path, err)
	}
	defer f.Close()
	header := make([]byte, 100)
	n, err := io.ReadFull(f, header)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("store: cannot read %s: %w", path, err)
	}
	_, walErr := os.Stat(path + "-wal")
	return checkHeader(path, header[:n], st.Size(), walErr == nil)
}

// sqliteMagic starts every SQLite 3 database file.
const sqliteMagic = "SQLite format 3\x00"

// checkHeader checks the 100-byte SQLite database header (the "Database
// File Format" page of sqlite.org, §1.3) of a file of size bytes, before
// SQLite reads it, so that a file that is not SQLite, and one whose header
// is damaged or whose end is missing, get an error that says so. A file
// with a -wal companion may legitimately be shorter than its header says
// until SQLite recovers it, so its length is not checked.
func checkHeader(path string, h []byte, size int64, hasWAL bool) error {
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s %s; restore it from a backup or move it away (parley will not overwrite it)",
			ErrCorrupt, path, fmt.Sprintf(format, args...))
	}
	if !bytes.HasPrefix(h, []byte(sqliteMagic)) {
		if len(h) < len(sqliteMagic) && bytes.HasPrefix([]byte(sqliteMagic), h) {
			return damaged("is truncated (%d bytes)", size)
		}
		return fmt.Errorf("%w: %s is not a SQLite database; parley will not overwrite it: name another file or move it away", ErrNotParley, path)
	}
	if len(h) < 100 {
		return damaged("is truncated (%d bytes, less than a database header)", size)
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return damaged("has a bad header (page size %d)", pageSize)
	}
	if h[21] != 64 || h[22] != 32 || h[23] != 32 {
		return damaged("has a bad header (payload fractions %d, %d, %d)", h[21], h[22], h[23])
	}
	pages := int64(binary.BigEndian.Uint32(h[28:32]))
	// The page count is valid only when "version-valid-for" matches the
	// change counter (header offsets 92 and 24).
	valid := bytes.Equal(h[92:96], h[24:28])
	if !hasWAL && valid && size < pages*pageSize {
		return damaged("is truncated (%d bytes; its header says %d)", size, pages*pageSize)
	}
	return nil
}

// migrations are the schema versions, in order: migrations[i] brings a
// database from user_version i to i+1. Never edit one that has shipped;
// append a new one.
var migrations = []string{
	`CREATE TABLE users (
		name    TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
		hash    TEXT NOT NULL,
		created TEXT NOT NULL,
		changed TEXT NOT NULL
	);
	CREATE TABLE messages (
		id     INTEGER PRIMARY KEY AUTOINCREMENT,
		room   TEXT NOT NULL,
		sender TEXT NOT NULL,
		time   TEXT NOT NULL,
		text   TEXT,
		nonce  BLOB,
		sealed BLOB,
		CHECK ((text IS NULL) = (sealed IS NOT NULL)),
		CHECK ((nonce IS NULL) = (sealed IS NULL))
	);
	CREATE INDEX messages_room ON messages(room, id);
	CREATE TABLE meta (
		key   TEXT NOT NULL PRIMARY KEY,
		value BLOB NOT NULL
	);`,
}

// setUp identifies the database, checks it, migrates it and turns on WAL.
// A file that holds no tables yet is initialised only if create is set.
func (db *DB) setUp(create bool) error {
	ctx := context.Background()
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return db.fileError("cannot open", err)
	}
	defer conn.Close()

	var appID, version, tables int64
	err = conn.QueryRowContext(ctx, `PRAGMA application_id`).Scan(&appID)
	if err == nil {
		err = conn.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version)
	}
	if err == nil {
		err = conn.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&tables)
	}
	if err != nil {
		return db.fileError("cannot read", err)
	}
	switch {
	case appID == 0 && version == 0 && tables == 0:
		if !create {
			return fmt.Errorf("%w: %s is an empty SQLite database", ErrNotParley, db.path)
		}
	case appID != applicationID:
		return fmt.Errorf("%w: %s is a SQLite database of another program (application_id %#x); parley will not change it: name another file",
			ErrNotParley, db.path, appID)
	case version > int64(len(migrations)):
		return fmt.Errorf("%w: %s has schema version %d, this parley knows up to %d; use a newer parley",
			ErrTooNew, db.path, version, len(migrations))
	case version < 1:
		return fmt.Errorf("%w: %s is marked as a parley database but has no schema version", ErrCorrupt, db.path)
	}

	rows, err := conn.QueryContext(ctx, `PRAGMA quick_check`)
	if err != nil {
		return db.fileError("cannot check", err)
	}
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return db.fileError("cannot check", err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return db.fileError("cannot check", err)
	}
	rows.Close()
	if len(problems) > 0 {
		if len(problems) > 3 {
			problems = append(problems[:3], fmt.Sprintf("and %d more", len(problems)-3))
		}
		return fmt.Errorf("%w: %s fails SQLite's integrity check (%s); restore it from a backup or move it away (parley will not overwrite it)",
			ErrCorrupt, db.path, strings.Join(problems, "; "))
	}

	for v := version; v < int64(len(migrations)); v++ {
		if err := migrate(ctx, conn, v); err != nil {
			return fmt.Errorf("store: cannot bring %s to schema version %d: %w", db.path, v+1, err)
		}
	}

	var mode string
	if err := conn.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode); err != nil {
		return fmt.Errorf("store: cannot switch %s to WAL mode: %w", db.path, err)
	}
	if mode != "wal" {
		return fmt.Errorf("store: cannot switch %s to WAL mode: SQLite kept journal mode %q", db.path, mode)
	}
	return nil
}

// migrate applies migrations[from] in one transaction.
func migrate(ctx context.Context, conn *sql.Conn, from int64) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, migrations[from]); err != nil {
		return err
	}
	// PRAGMA takes no bound parameters; both values are integers.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA application_id = %d; PRAGMA user_version = %d`, applicationID, from+1)); err != nil {
		return err
	}
	return tx.Commit()
}

// makePrivate makes the database file and its -wal and -shm companions
// private (mode 0600) and returns the permission bits the database file had
// if others could read it, else 0. It runs once the file is known to be a
// parley database, so that Open changes nothing about a file it refuses.
// SQLite gives the companions the database file's mode when it makes them;
// this covers those made before the file was tightened, and files left by
// an earlier run.
func (db *DB) makePrivate() (tightened fs.FileMode, err error) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		name := db.path + suffix
		st, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("store: cannot check %s: %w", name, err)
		}
		perm := st.Mode().Perm()
		if perm&0o077 == 0 {
			continue
		}
		if err := os.Chmod(name, 0o600); err != nil {
			return 0, fmt.Errorf("store: %s is readable by other users (mode %04o) and cannot be made private: %w", name, perm, err)
		}
		if suffix == "" {
			tightened = perm
		}
	}
	return tightened, nil
}

// fileError describes a failure to read the database, telling a damaged
// file from other failures.
func (db *DB) fileError(doing string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("%w: %s: %v; restore it from a backup or move it away (parley will not overwrite it)", ErrCorrupt, db.path, err)
		}
	}
	return fmt.Errorf("store: %s %s: %w", doing, db.path, err)
}

// Path returns the database's file name as given to Open.
func (db *DB) Path() string { return db.path }

// Tightened reports the permission bits the file had when Open found it
// readable by other users and made it private (mode 0600), or 0 if it did
// not have to. A caller may warn that the file was exposed until then.
func (db *DB) Tightened() fs.FileMode { return db.tightened }

// Close closes the database. Close every History opened on it first.
func (db *DB) Close() error {
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("store: closing %s: %w", db.path, err)
	}
	return nil
}

// timeLayout is how times are stored: RFC 3339 in UTC with as many
// fractional digits as needed, readable in the sqlite3 command line.
const timeLayout = time.RFC3339Nano

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }
