package store

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/parley-edu/parley/room"
)

// MaxPassword is the longest password in bytes, the room's limit. Longer
// ones are refused before they are hashed, so that nobody can make the
// server hash megabytes.
const MaxPassword = room.MaxPassword

// Account errors, wrapped with the name or the reason.
var (
	ErrNoUser          = errors.New("store: no such account")
	ErrUserExists      = errors.New("store: the account already exists")
	ErrBadName         = errors.New("store: bad account name")
	ErrPasswordTooLong = fmt.Errorf("store: password longer than %d bytes", MaxPassword)
	ErrEmptyPassword   = errors.New("store: empty password")
)

// A User is an account as listed by Users. It holds no secret.
type User struct {
	Name    string
	Created time.Time
	Changed time.Time // when the password was last set
	// Params are the password hash's algorithm and parameters, e.g.
	// "argon2id v=19 m=19456 t=2 p=1", or "unreadable hash" if the
	// stored hash cannot be parsed.
	Params string
}

// hashParams are argon2id's cost parameters: memory in KiB, passes over
// it, and lanes (RFC 9106 §3.1).
type hashParams struct {
	memory  uint32
	time    uint32
	threads uint8
}

// defaultParams are the parameters of new hashes: m=19456 KiB (19 MiB),
// t=2, p=1, OWASP's recommended argon2id setting (Password Storage Cheat
// Sheet). The memory is kept moderate because a room verifies logins as
// they come; hashSlots bounds how many run at once. Raising them later is
// safe: every hash records its own parameters, and Verify moves an
// account to the current ones when its password is next given. Tests
// lower them to stay fast.
var defaultParams = hashParams{memory: 19456, time: 2, threads: 1}

// New hashes have a saltLen-byte random salt and a keyLen-byte key.
const (
	saltLen = 16
	keyLen  = 32
)

// Bounds on what parsePHC accepts, so that a damaged or hostile row cannot
// make Verify allocate gigabytes or run for minutes.
const (
	maxMemory = 1 << 20 // KiB: 1 GiB
	maxTime   = 64
	minSalt   = 8
	maxSalt   = 64
	minKey    = 16
	maxKey    = 64
)

// phcHash is a parsed argon2id hash.
type phcHash struct {
	hashParams
	salt, key []byte
}

// b64 is the PHC string format's base64: standard alphabet, no padding.
var b64 = base64.RawStdEncoding

// String formats h in the PHC string format:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>.
func (h phcHash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.memory, h.time, h.threads, b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

// describe is the parameters in words for User.Params.
func (p hashParams) describe() string {
	return fmt.Sprintf("argon2id v=%d m=%d t=%d p=%d", argon2.Version, p.memory, p.time, p.threads)
}

// errBadPHC is wrapped by every parsePHC error.
var errBadPHC = errors.New("store: bad password hash")

// parsePHC parses an argon2id hash in the PHC string format, as String
// writes it. It accepts only version 19 and parameters within the bounds
// above.
func parsePHC(s string) (phcHash, error) {
	var h phcHash
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return h, fmt.Errorf("%w: want $argon2id$v=19$m=M,t=T,p=P$SALT$KEY", errBadPHC)
	}
	if parts[1] != "argon2id" {
		return h, fmt.Errorf("%w: algorithm %q, want argon2id", errBadPHC, parts[1])
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return h, fmt.Errorf("%w: version %q, want v=%d", errBadPHC, parts[2], argon2.Version)
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return h, fmt.Errorf("%w: parameters %q, want m=M,t=T,p=P", errBadPHC, parts[3])
	}
	var vals [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		value, ok := strings.CutPrefix(fields[i], name+"=")
		if !ok {
			return h, fmt.Errorf("%w: parameters %q, want m=M,t=T,p=P", errBadPHC, parts[3])
		}
		// Decimal without sign or leading zeros: one spelling per number.
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil || n == 0 || value[0] == '0' {
			return h, fmt.Errorf("%w: parameter %s=%q is not a positive number", errBadPHC, name, value)
		}
		vals[i] = n
	}
	m, t, p := vals[0], vals[1], vals[2]
	switch {
	case p > 255:
		return h, fmt.Errorf("%w: p=%d, want at most 255", errBadPHC, p)
	case m < 8*p || m > maxMemory:
		return h, fmt.Errorf("%w: m=%d, want %d to %d KiB", errBadPHC, m, 8*p, maxMemory)
	case t > maxTime:
		return h, fmt.Errorf("%w: t=%d, want at most %d", errBadPHC, t, maxTime)
	}
	salt, ok := decodeB64(parts[4])
	if !ok || len(salt) < minSalt || len(salt) > maxSalt {
		return h, fmt.Errorf("%w: the salt is not %d to %d bytes of unpadded base64", errBadPHC, minSalt, maxSalt)
	}
	key, ok := decodeB64(parts[5])
	if !ok || len(key) < minKey || len(key) > maxKey {
		return h, fmt.Errorf("%w: the key is not %d to %d bytes of unpadded base64", errBadPHC, minKey, maxKey)
	}
	h.hashParams = hashParams{memory: uint32(m), time: uint32(t), threads: uint8(p)}
	h.salt, h.key = salt, key
	return h, nil
}

// decodeB64 decodes s if it is in canonical unpadded base64: the decoder
// alone skips line breaks and, without Strict, ignores stray bits.
func decodeB64(s string) ([]byte, bool) {
	b, err := b64.DecodeString(s)
	return b, err == nil && b64.EncodeToString(b) == s
}

// derive computes argon2id of password with h's salt and parameters.
func (h phcHash) derive(password []byte) []byte {
	return argon2.IDKey(password, h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
}

// newHash hashes password with a fresh salt and the current parameters.
func newHash(password []byte) phcHash {
	h := phcHash{hashParams: defaultParams, salt: make([]byte, saltLen), key: make([]byte, keyLen)}
	rand.Read(h.salt) // crypto/rand.Read never fails (Go 1.24+)
	h.key = h.derive(password)
	return h
}

// dummyHash is what Verify checks a password against when the account
// does not exist: random, with the current parameters, so that the check
// costs what a real one costs.
func dummyHash() phcHash {
	h := phcHash{hashParams: defaultParams, salt: make([]byte, saltLen), key: make([]byte, keyLen)}
	rand.Read(h.salt)
	rand.Read(h.key)
	return h
}

// upgradable reports whether a hash made with p should be redone with the
// current parameters: they differ and the current ones are at least as
// strong in each respect.
func (p hashParams) upgradable() bool {
	cur := defaultParams
	return p != cur && p.memory <= cur.memory && p.time <= cur.time && p.threads <= cur.threads
}

// hashing waits for a hashing slot and returns the function that frees it.
func (db *DB) hashing(ctx context.Context) (release func(), err error) {
	select {
	case db.hashSlots <- struct{}{}:
		return func() { <-db.hashSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// CheckName reports whether name can name an account: 1-32 letters,
// digits, '_', '-' or '.', as a name in the room. Errors wrap ErrBadName.
func CheckName(name string) error {
	if name == "" || len(name) > 32 {
		return fmt.Errorf("%w %q: want 1-32 characters", ErrBadName, name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.'
		if !ok {
			return fmt.Errorf("%w %q: only letters, digits, '_', '-' and '.' are allowed", ErrBadName, name)
		}
	}
	return nil
}

// checkPassword refuses an empty password and one over MaxPassword bytes.
func checkPassword(password []byte) error {
	switch {
	case len(password) == 0:
		return ErrEmptyPassword
	case len(password) > MaxPassword:
		return fmt.Errorf("%w (it has %d)", ErrPasswordTooLong, len(password))
	}
	return nil
}

// hashPassword hashes password for storage, in a hashing slot.
func (db *DB) hashPassword(ctx context.Context, password []byte) (string, error) {
	release, err := db.hashing(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return newHash(password).String(), nil
}

// AddUser adds an account with the given password, stored as an argon2id
// hash with a random 16-byte salt, in the PHC string format with its
// parameters: $argon2id$v=19$m=19456,t=2,p=1$SALT$KEY. Names are unique
// regardless of case. Errors wrap ErrBadName, ErrUserExists,
// ErrEmptyPassword or ErrPasswordTooLong, or report a database failure.
func (db *DB) AddUser(ctx context.Context, name string, password []byte) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := checkPassword(password); err != nil {
		return err
	}
	// Fail fast, before the hash, in the common case; the insert below
	// catches a race with another process.
	if exists, err := db.UserExists(ctx, name); err != nil {
		return err
	} else if exists {
		return fmt.Errorf("%w: %s", ErrUserExists, name)
	}
	hash, err := db.hashPassword(ctx, password)
	if err != nil {
		return err
	}
	now := formatTime(time.Now())
	res, err := db.sql.ExecContext(ctx,
		`INSERT INTO users(name, hash, created, changed) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO NOTHING`,
		name, hash, now, now)
	if err != nil {
		return fmt.Errorf("store: cannot add %s to %s: %w", name, db.path, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: cannot add %s to %s: %w", name, db.path, err)
	} else if n == 0 {
		return fmt.Errorf("%w: %s", ErrUserExists, name)
	}
	return nil
}

// SetPassword replaces the password of the account name (in any case) with
// a new hash under the current parameters. Errors wrap ErrNoUser,
// ErrEmptyPassword or ErrPasswordTooLong, or report a database failure.
func (db *DB) SetPassword(ctx context.Context, name string, password []byte) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	if exists, err := db.UserExists(ctx, name); err != nil {
		return err
	} else if !exists {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	hash, err := db.hashPassword(ctx, password)
	if err != nil {
		return err
	}
	res, err := db.sql.ExecContext(ctx, `UPDATE users SET hash = ?, changed = ? WHERE name = ?`,
		hash, formatTime(time.Now()), name)
	if err != nil {
		return fmt.Errorf("store: cannot set the password of %s in %s: %w", name, db.path, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: cannot set the password of %s in %s: %w", name, db.path, err)
	} else if n == 0 {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	return nil
}

// DeleteUser deletes the account name (in any case). The error wraps
// ErrNoUser if there is none, or reports a database failure.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("store: cannot delete %s from %s: %w", name, db.path, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: cannot delete %s from %s: %w", name, db.path, err)
	} else if n == 0 {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	return nil
}

// UserExists reports whether there is an account name, in any case.
func (db *DB) UserExists(ctx context.Context, name string) (bool, error) {
	var one int
	err := db.sql.QueryRowContext(ctx, `SELECT 1 FROM users WHERE name = ?`, name).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("store: cannot look up %s in %s: %w", name, db.path, err)
	}
	return true, nil
}

// Users lists the accounts, sorted by name regardless of case.
func (db *DB) Users(ctx context.Context) ([]User, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT name, hash, created, changed FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: cannot list the accounts in %s: %w", db.path, err)
	}
	defer rows.Close()
	var users []User
	for rows.Next() {
		var u User
		var hash, created, changed string
		if err := rows.Scan(&u.Name, &hash, &created, &changed); err != nil {
			return nil, fmt.Errorf("store: cannot list the accounts in %s: %w", db.path, err)
		}
		u.Created, _ = time.Parse(timeLayout, created)
		u.Changed, _ = time.Parse(timeLayout, changed)
		u.Params = "unreadable hash"
		if h, err := parsePHC(hash); err == nil {
			u.Params = h.describe()
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: cannot list the accounts in %s: %w", db.path, err)
	}
	return users, nil
}

// Verify reports whether password is the password of the account name (in
// any case). It spends the same work whether or not the account exists:
// for an unknown name it checks the password against a random hash with
// the current parameters. It compares in constant time (crypto/subtle). An
// empty password, or one over MaxPassword bytes, is false at once: it
// cannot be any account's, so refusing it reveals nothing about accounts.
//
// A successful check of a hash made with weaker parameters than the
// current ones stores a new hash of the same password with the current
// parameters; failing to store it is not an error (the next login tries
// again). Until then such an account costs what its own parameters cost,
// which tells it apart from an unknown name by timing. The error is non-nil only when the database or the stored hash
// cannot be read, or ctx ends while waiting for a hashing slot.
func (db *DB) Verify(ctx context.Context, name string, password []byte) (bool, error) {
	if checkPassword(password) != nil {
		return false, nil
	}
	release, err := db.hashing(ctx)
	if err != nil {
		return false, err
	}
	defer release()

	var stored string
	err = db.sql.QueryRowContext(ctx, `SELECT hash FROM users WHERE name = ?`, name).Scan(&stored)
	known := err == nil
	var h phcHash
	switch {
	case errors.Is(err, sql.ErrNoRows):
		h = dummyHash()
	case err != nil:
		return false, fmt.Errorf("store: cannot look up %s in %s: %w", name, db.path, err)
	default:
		if h, err = parsePHC(stored); err != nil {
			return false, fmt.Errorf("store: the stored password hash of %s in %s: %w", name, db.path, err)
		}
	}
	ok := subtle.ConstantTimeCompare(h.derive(password), h.key) == 1 && known
	if ok && h.upgradable() {
		// Only if the password did not change meanwhile.
		db.sql.ExecContext(ctx, `UPDATE users SET hash = ? WHERE name = ? AND hash = ?`, newHash(password).String(), name, stored)
	}
	return ok, nil
}
