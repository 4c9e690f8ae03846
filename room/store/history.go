package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"
)

// KeySize is the length of a history key: an AES-256 key, as written by
// 'parley keys gen'.
const KeySize = 32

// History errors. ErrWrongKey, ErrSealed and ErrPlaintext come from
// DB.History; ErrTampered is wrapped by Message.Err.
var (
	// ErrWrongKey reports a key other than the one the database's sealed
	// history was written with.
	ErrWrongKey = errors.New("store: wrong history key")
	// ErrTampered reports a stored message that failed authentication.
	ErrTampered = errors.New("store: message failed its integrity check")
	// ErrSealed reports a plaintext-mode open of a database that keeps
	// sealed history.
	ErrSealed = errors.New("store: the history is sealed")
	// ErrPlaintext reports a sealed-mode open of a database that holds
	// messages stored in plaintext.
	ErrPlaintext = errors.New("store: the history holds plaintext messages")
	// ErrClosed reports an Append to a closed History.
	ErrClosed = errors.New("store: history closed")
)

// Key derivation (HKDF-SHA256, RFC 5869) from the history key: one key to
// seal messages, and one value stored in the meta table that tells the
// right key from a wrong one without revealing anything about it.
const (
	sealKeyInfo = "parley history seal key v1"
	keyIDInfo   = "parley history key id v1"
	keyIDMeta   = "history_key_id"
	adLabel     = "parley history v1"
)

// Writer limits: Append blocks once queueSize messages wait, and the
// writer stores at most maxBatch messages per transaction.
const (
	queueSize = 1024
	maxBatch  = 256
)

// A Message is one stored chat message.
type Message struct {
	ID     int64
	Room   string
	Sender string
	Time   time.Time // UTC
	Text   string
	// Err is non-nil when the message cannot be shown: it wraps
	// ErrTampered when the row failed its integrity check (Text is then
	// empty, and Room, Sender and Time are as stored, unproven), or
	// ErrSealed for a sealed row read in plaintext mode.
	Err error
}

// A History is the stored history of one room. Append queues messages for
// a writer goroutine that the History owns; Close stores what is queued
// and ends it. Its methods are safe for concurrent use.
//
// In sealed mode each message's text is sealed with AES-256-GCM (NIST SP
// 800-38D) under a key derived from the history key, with a fresh random
// 12-byte nonce per message, and with the room, sender, time and the row's
// id as additional authenticated data: changing any of them, or moving a
// sealed text to another row, makes the row fail its check. What sealing
// does not give: the room, sender and time are stored in clear, and a
// deleted row leaves no trace. Random nonces limit a key to about 2^32
// messages.
//
// In plaintext mode (the insecure teaching switch) the text is stored as
// it is, with no integrity check: anyone who can read the file reads the
// history, and anyone who can write it rewrites it unnoticed.
type History struct {
	db   *DB
	room string
	aead cipher.AEAD // nil in plaintext mode

	// mu guards closed and the closing of queue. Senders on queue hold it
	// for reading, so that Close (which holds it for writing) never closes
	// the channel under them; the writer keeps draining meanwhile, so a
	// blocked sender always gets through.
	mu     sync.RWMutex
	closed bool
	queue  chan request
	done   chan struct{} // closed when the writer goroutine has returned

	errMu   sync.Mutex
	lastErr error // first failed write not yet reported
	lost    int   // messages in failed writes not yet reported
}

// request is a message to store, or, if flushed is not nil, a request to
// close flushed once everything queued before it is stored.
type request struct {
	sender  string
	time    time.Time
	text    string
	flushed chan struct{}
}

// History opens the history of room. key is the KeySize-byte history key,
// or nil for the insecure plaintext mode.
//
// A database is bound to one key by the first sealed open. A sealed open
// with another key fails with ErrWrongKey; a plaintext open of a database
// bound to a key, or one holding sealed messages, fails with ErrSealed.
// A sealed open of a database that holds messages stored in plaintext
// (and is bound to no key yet) fails with ErrPlaintext rather than mix
// authenticated and unauthenticated messages in one history; once a
// database is bound to a key, a plaintext row in it is reported as
// tampered. Close the History before the DB.
func (db *DB) History(room string, key []byte) (*History, error) {
	if room == "" || !utf8.ValidString(room) {
		return nil, fmt.Errorf("store: bad room name %q", room)
	}
	h := &History{
		db:    db,
		room:  room,
		queue: make(chan request, queueSize),
		done:  make(chan struct{}),
	}
	ctx := context.Background()
	if key == nil {
		if err := db.checkPlaintext(ctx); err != nil {
			return nil, err
		}
	} else {
		if len(key) != KeySize {
			return nil, fmt.Errorf("store: a history key has %d bytes, not %d", KeySize, len(key))
		}
		sealKey, err := hkdf.Key(sha256.New, key, nil, sealKeyInfo, KeySize)
		if err != nil {
			return nil, fmt.Errorf("store: cannot derive the history keys: %w", err)
		}
		keyID, err := hkdf.Key(sha256.New, key, nil, keyIDInfo, sha256.Size)
		if err != nil {
			return nil, fmt.Errorf("store: cannot derive the history keys: %w", err)
		}
		if err := db.bindKey(ctx, keyID); err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(sealKey)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if h.aead, err = cipher.NewGCM(block); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	go h.write()
	return h, nil
}

// checkPlaintext refuses plaintext mode on a database with sealed history.
func (db *DB) checkPlaintext(ctx context.Context) error {
	var keyed, sealed bool
	err := db.sql.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM meta WHERE key = ?), EXISTS (SELECT 1 FROM messages WHERE sealed IS NOT NULL)`,
		keyIDMeta).Scan(&keyed, &sealed)
	if err != nil {
		return fmt.Errorf("store: cannot read the history in %s: %w", db.path, err)
	}
	if keyed || sealed {
		return fmt.Errorf("%w: the history in %s is sealed with a key; open it with that key (or keep plaintext history in another database)", ErrSealed, db.path)
	}
	return nil
}

// bindKey checks keyID against the one the database is bound to, or binds
// the database to it.
func (db *DB) bindKey(ctx context.Context, keyID []byte) error {
	stored, err := db.keyID(ctx)
	if err != nil {
		return err
	}
	if stored == nil {
		var plain, sealed int64
		err := db.sql.QueryRowContext(ctx,
			`SELECT count(*) FILTER (WHERE sealed IS NULL), count(*) FILTER (WHERE sealed IS NOT NULL) FROM messages`).Scan(&plain, &sealed)
		if err != nil {
			return fmt.Errorf("store: cannot read the history in %s: %w", db.path, err)
		}
		switch {
		case sealed > 0:
			return fmt.Errorf("%w: %s holds %d sealed messages but no record of their key; it has been tampered with", ErrTampered, db.path, sealed)
		case plain > 0:
			return fmt.Errorf("%w: %s holds %d messages stored in plaintext; keep sealed history in another database, or delete them first (DELETE FROM messages WHERE sealed IS NULL)",
				ErrPlaintext, db.path, plain)
		}
		// Another process may bind a key at the same moment: insert only
		// if there is none, then compare with whatever is there.
		if _, err := db.sql.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING`, keyIDMeta, keyID); err != nil {
			return fmt.Errorf("store: cannot record the history key in %s: %w", db.path, err)
		}
		if stored, err = db.keyID(ctx); err != nil {
			return err
		}
	}
	if !hmac.Equal(stored, keyID) {
		return fmt.Errorf("%w: the history in %s was sealed with a different key; give the key it was written with", ErrWrongKey, db.path)
	}
	return nil
}

// keyID returns the key id the database is bound to, or nil.
func (db *DB) keyID(ctx context.Context) ([]byte, error) {
	var id []byte
	err := db.sql.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, keyIDMeta).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: cannot read the history key record in %s: %w", db.path, err)
	}
	return id, nil
}

// Append queues a message by sender at t for storing. It blocks only while
// the queue is full (back-pressure: nothing is dropped). The message is
// stored before a later Last reads and before Close returns.
//
// A non-nil error reports messages that an earlier write failed to store
// (they are lost), once; the message given to this call is queued all the
// same. After Close, Append returns ErrClosed and queues nothing.
func (h *History) Append(sender string, t time.Time, text string) error {
	if sender == "" {
		return errors.New("store: a message needs a sender")
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return ErrClosed
	}
	h.queue <- request{sender: sender, time: t.Round(0).UTC(), text: text}
	return h.takeErr()
}

// Close stores every queued message, ends the writer goroutine and
// reports messages that could not be stored. It does not close the DB.
// Calling it again returns nil.
func (h *History) Close() error {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.queue)
	}
	h.mu.Unlock()
	<-h.done
	return h.takeErr()
}

// Last returns the room's last n messages, oldest first, after storing
// every message queued so far. A row that fails its integrity check comes
// back with Err set and no text; the error is for failures to read at all.
func (h *History) Last(ctx context.Context, n int) ([]Message, error) {
	if n <= 0 {
		return nil, nil
	}
	if err := h.flush(ctx); err != nil {
		return nil, err
	}
	rows, err := h.db.sql.QueryContext(ctx,
		`SELECT id, room, sender, time, text, nonce, sealed FROM messages WHERE room = ? ORDER BY id DESC LIMIT ?`, h.room, n)
	if err != nil {
		return nil, fmt.Errorf("store: cannot read the history of %s in %s: %w", h.room, h.db.path, err)
	}
	defer rows.Close()
	var msgs []Message
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.room, &r.sender, &r.time, &r.text, &r.nonce, &r.sealed); err != nil {
			return nil, fmt.Errorf("store: cannot read the history of %s in %s: %w", h.room, h.db.path, err)
		}
		msgs = append(msgs, h.open(r))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: cannot read the history of %s in %s: %w", h.room, h.db.path, err)
	}
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	return msgs, nil
}

// flush waits until the writer has stored everything queued before it.
func (h *History) flush(ctx context.Context) error {
	flushed := make(chan struct{})
	h.mu.RLock()
	if h.closed {
		h.mu.RUnlock()
		return nil // Close has stored everything, or is doing so.
	}
	select {
	case h.queue <- request{flushed: flushed}:
		h.mu.RUnlock()
	case <-ctx.Done():
		h.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case <-flushed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// row is a messages row as stored.
type row struct {
	id                 int64
	room, sender, time string
	text               sql.NullString
	nonce, sealed      []byte
}

// open turns a stored row into a Message, checking and opening its seal in
// sealed mode.
func (h *History) open(r row) Message {
	m := Message{ID: r.id, Room: r.room, Sender: r.sender}
	t, timeErr := time.Parse(timeLayout, r.time)
	if timeErr == nil {
		m.Time = t.UTC()
	}
	tampered := func(why string) error {
		return fmt.Errorf("%w: message %d in %s %s", ErrTampered, r.id, h.db.path, why)
	}
	if h.aead == nil {
		if r.sealed != nil {
			m.Err = fmt.Errorf("%w: message %d in %s is sealed; open the history with its key to read it", ErrSealed, r.id, h.db.path)
			return m
		}
		m.Text = r.text.String
		return m
	}
	switch {
	case r.sealed == nil || r.text.Valid:
		m.Err = tampered("is not sealed")
	case len(r.nonce) != h.aead.NonceSize():
		m.Err = tampered(fmt.Sprintf("has a %d-byte nonce", len(r.nonce)))
	case timeErr != nil:
		m.Err = tampered(fmt.Sprintf("has a bad time %q", r.time))
	default:
		text, err := h.aead.Open(nil, r.nonce, r.sealed, additionalData(r.id, r.room, r.sender, t))
		if err != nil {
			m.Err = tampered("failed authentication")
		} else {
			m.Text = string(text)
		}
	}
	return m
}

// additionalData is what a sealed message's tag covers besides its text:
// adLabel ‖ id(8) ‖ time as Unix nanoseconds(8) ‖ len(room)(4) ‖ room ‖
// len(sender)(4) ‖ sender, integers big-endian. The lengths keep the
// encoding unambiguous.
func additionalData(id int64, room, sender string, t time.Time) []byte {
	b := make([]byte, 0, len(adLabel)+24+len(room)+len(sender))
	b = append(b, adLabel...)
	b = binary.BigEndian.AppendUint64(b, uint64(id))
	b = binary.BigEndian.AppendUint64(b, uint64(t.UnixNano()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(room)))
	b = append(b, room...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(sender)))
	return append(b, sender...)
}

// write is the writer goroutine: it stores queued messages in batches of
// up to maxBatch per transaction until Close closes the queue.
func (h *History) write() {
	defer close(h.done)
	batch := make([]request, 0, maxBatch)
	for r := range h.queue {
		batch = append(batch[:0], r)
	fill:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-h.queue:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if n, err := h.insert(batch); err != nil {
			h.errMu.Lock()
			if h.lastErr == nil {
				h.lastErr = err
			}
			h.lost += n
			h.errMu.Unlock()
		}
		for _, r := range batch {
			if r.flushed != nil {
				close(r.flushed)
			}
		}
	}
}

// insert stores the messages in batch in one transaction. On failure it
// returns how many messages were lost.
func (h *History) insert(batch []request) (lost int, err error) {
	for _, r := range batch {
		if r.flushed == nil {
			lost++
		}
	}
	if lost == 0 {
		return 0, nil
	}
	ctx := context.Background()
	tx, err := h.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return lost, err
	}
	defer tx.Rollback()
	// The ids go into the sealed messages' additional data, so they are
	// chosen here rather than by SQLite: the transaction holds the write
	// lock, and AUTOINCREMENT's sqlite_sequence keeps ids of deleted rows
	// from coming back.
	var last int64
	err = tx.QueryRowContext(ctx, `SELECT max(
		coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0),
		coalesce((SELECT max(id) FROM messages), 0))`).Scan(&last)
	if err != nil {
		return lost, err
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO messages(id, room, sender, time, text, nonce, sealed) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return lost, err
	}
	defer stmt.Close()
	for _, r := range batch {
		if r.flushed != nil {
			continue
		}
		last++
		var text, nonce, sealed any // NULL unless set
		if h.aead == nil {
			text = r.text
		} else {
			n := make([]byte, h.aead.NonceSize())
			rand.Read(n)
			nonce = n
			sealed = h.aead.Seal(nil, n, []byte(r.text), additionalData(last, h.room, r.sender, r.time))
		}
		if _, err := stmt.ExecContext(ctx, last, h.room, r.sender, formatTime(r.time), text, nonce, sealed); err != nil {
			return lost, err
		}
	}
	return lost, tx.Commit()
}

// takeErr returns, once, the failed writes since the last call.
func (h *History) takeErr() error {
	h.errMu.Lock()
	defer h.errMu.Unlock()
	if h.lastErr == nil {
		return nil
	}
	err := fmt.Errorf("store: %d messages of room %s could not be stored in %s: %w", h.lost, h.room, h.db.path, h.lastErr)
	h.lastErr, h.lost = nil, 0
	return err
}
