package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

// storedHash reads name's hash column with database/sql, not through the
// package.
func storedHash(t *testing.T, db *DB, name string) string {
	t.Helper()
	var hash string
	if err := rawDB(t, db.Path()).QueryRow(`SELECT hash FROM users WHERE name = ?`, name).Scan(&hash); err != nil {
		t.Fatalf("reading the hash of %s: %v", name, err)
	}
	return hash
}

var phcPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$`)

// checkHash checks, independently of parsePHC, that hash is password's
// argon2id hash in the PHC string format with the parameters p.
func checkHash(t *testing.T, hash string, password []byte, p hashParams) {
	t.Helper()
	m := phcPattern.FindStringSubmatch(hash)
	if m == nil {
		t.Fatalf("hash %q is not $argon2id$v=19$m=M,t=T,p=P$SALT$KEY", hash)
	}
	want := []string{strconv.Itoa(int(p.memory)), strconv.Itoa(int(p.time)), strconv.Itoa(int(p.threads))}
	if got := m[1:4]; !slices.Equal(got, want) {
		t.Errorf("parameters m,t,p: got %v, want %v", got, want)
	}
	salt, err := base64.RawStdEncoding.DecodeString(m[4])
	if err != nil || len(salt) != 16 {
		t.Errorf("salt %q: got %d bytes (%v), want 16", m[4], len(salt), err)
	}
	key, err := base64.RawStdEncoding.DecodeString(m[5])
	if err != nil || len(key) != 32 {
		t.Errorf("key %q: got %d bytes (%v), want 32", m[5], len(key), err)
	}
	if want := argon2.IDKey(password, salt, p.time, p.memory, p.threads, 32); !bytes.Equal(key, want) {
		t.Errorf("the key is not argon2id(password, salt, t=%d, m=%d, p=%d)", p.time, p.memory, p.threads)
	}
}

func TestAccounts(t *testing.T) {
	db := openNew(t)
	ctx := context.Background()
	if err := db.AddUser(ctx, "Alice", []byte("correct horse")); err != nil {
		t.Fatal(err)
	}
	checkHash(t, storedHash(t, db, "Alice"), []byte("correct horse"), cheapParams)

	verify := []struct {
		name, user, password string
		want                 bool
	}{
		{"right password", "Alice", "correct horse", true},
		{"name in another case", "aLICE", "correct horse", true},
		{"wrong password", "Alice", "correct horsE", false},
		{"prefix of the password", "Alice", "correct", false},
		{"unknown user", "mallory", "correct horse", false},
		{"empty password", "Alice", "", false},
		{"over-long password", "Alice", strings.Repeat("x", MaxPassword+1), false},
	}
	for _, tt := range verify {
		t.Run("Verify "+tt.name, func(t *testing.T) {
			got, err := db.Verify(ctx, tt.user, []byte(tt.password))
			if err != nil || got != tt.want {
				t.Errorf("Verify(%q): got %v, %v; want %v, nil", tt.user, got, err, tt.want)
			}
		})
	}

	refused := []struct {
		name, user, password string
		want                 error
	}{
		{"existing name", "Alice", "pw", ErrUserExists},
		{"existing name in another case", "ALICE", "pw", ErrUserExists},
		{"empty name", "", "pw", ErrBadName},
		{"name with a space", "al ice", "pw", ErrBadName},
		{"name with a colon", "alice:", "pw", ErrBadName},
		{"name of 33 characters", strings.Repeat("a", 33), "pw", ErrBadName},
		{"non-ASCII name", "alicé", "pw", ErrBadName},
		{"empty password", "bob", "", ErrEmptyPassword},
		{"password over 1 KiB", "bob", strings.Repeat("x", MaxPassword+1), ErrPasswordTooLong},
	}
	for _, tt := range refused {
		t.Run("AddUser "+tt.name, func(t *testing.T) {
			if err := db.AddUser(ctx, tt.user, []byte(tt.password)); !errors.Is(err, tt.want) {
				t.Errorf("AddUser(%q): got %v, want %v", tt.user, err, tt.want)
			}
		})
	}
	if ok, _ := db.UserExists(ctx, "bob"); ok {
		t.Error("a refused AddUser added bob")
	}
	if err := db.AddUser(ctx, "bob_1.x-y", bytes.Repeat([]byte("p"), MaxPassword)); err != nil {
		t.Errorf("AddUser with a %d-byte password: %v", MaxPassword, err)
	}
}

func TestSetPasswordAndDelete(t *testing.T) {
	db := openNew(t)
	ctx := context.Background()
	if err := db.AddUser(ctx, "alice", []byte("old")); err != nil {
		t.Fatal(err)
	}
	before, _ := db.Users(ctx)
	time.Sleep(time.Millisecond) // so that Changed can differ from Created
	if err := db.SetPassword(ctx, "ALICE", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.Verify(ctx, "alice", []byte("old")); ok {
		t.Error("the old password still verifies")
	}
	if ok, _ := db.Verify(ctx, "alice", []byte("new")); !ok {
		t.Error("the new password does not verify")
	}
	after, _ := db.Users(ctx)
	if !after[0].Changed.After(before[0].Changed) || !after[0].Created.Equal(before[0].Created) {
		t.Errorf("times after SetPassword: created %v, changed %v; before: %v, %v",
			after[0].Created, after[0].Changed, before[0].Created, before[0].Changed)
	}

	for _, tt := range []struct {
		name     string
		password string
		want     error
	}{
		{"nobody", "pw", ErrNoUser},
		{"alice", "", ErrEmptyPassword},
		{"alice", strings.Repeat("x", MaxPassword+1), ErrPasswordTooLong},
	} {
		if err := db.SetPassword(ctx, tt.name, []byte(tt.password)); !errors.Is(err, tt.want) {
			t.Errorf("SetPassword(%q, %d bytes): got %v, want %v", tt.name, len(tt.password), err, tt.want)
		}
	}

	if err := db.DeleteUser(ctx, "nobody"); !errors.Is(err, ErrNoUser) {
		t.Errorf("DeleteUser(nobody): got %v, want ErrNoUser", err)
	}
	if err := db.DeleteUser(ctx, "Alice"); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.UserExists(ctx, "alice"); ok || err != nil {
		t.Errorf("UserExists after DeleteUser: got %v, %v", ok, err)
	}
	if ok, _ := db.Verify(ctx, "alice", []byte("new")); ok {
		t.Error("a deleted account still verifies")
	}
	if err := db.DeleteUser(ctx, "alice"); !errors.Is(err, ErrNoUser) {
		t.Errorf("second DeleteUser: got %v, want ErrNoUser", err)
	}
}

func TestUsersSorted(t *testing.T) {
	db := openNew(t)
	ctx := context.Background()
	if users, err := db.Users(ctx); len(users) != 0 || err != nil {
		t.Errorf("Users of a new database: got %v, %v", users, err)
	}
	for _, name := range []string{"carol", "Bob", "alice", "dave"} {
		if err := db.AddUser(ctx, name, []byte("pw")); err != nil {
			t.Fatal(err)
		}
	}
	users, err := db.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
		if want := cheapParams.describe(); u.Params != want {
			t.Errorf("%s: Params %q, want %q", u.Name, u.Params, want)
		}
		if u.Created.IsZero() || time.Since(u.Created) > time.Hour || !u.Changed.Equal(u.Created) {
			t.Errorf("%s: created %v, changed %v", u.Name, u.Created, u.Changed)
		}
	}
	if got, want := strings.Join(names, " "), "alice Bob carol dave"; got != want {
		t.Errorf("Users: got %s, want %s", got, want)
	}
}

// TestShippedParams checks the real default parameters end to end.
func TestShippedParams(t *testing.T) {
	want := hashParams{memory: 19456, time: 2, threads: 1}
	if shippedParams != want {
		t.Fatalf("default parameters: got %+v, want %+v (OWASP's argon2id m=19 MiB, t=2, p=1)", shippedParams, want)
	}
	defaultParams = shippedParams
	defer func() { defaultParams = cheapParams }()
	db := openNew(t)
	ctx := context.Background()
	if err := db.AddUser(ctx, "alice", []byte("pw")); err != nil {
		t.Fatal(err)
	}
	hash := storedHash(t, db, "alice")
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q does not record m=19456,t=2,p=1", hash)
	}
	checkHash(t, hash, []byte("pw"), shippedParams)
	if ok, err := db.Verify(ctx, "alice", []byte("pw")); !ok || err != nil {
		t.Errorf("Verify: got %v, %v, want true", ok, err)
	}
	users, _ := db.Users(ctx)
	if got := users[0].Params; got != "argon2id v=19 m=19456 t=2 p=1" {
		t.Errorf("Params: got %q", got)
	}
}

// TestRaisedParams checks that hashes made with earlier parameters still
// verify after the defaults change, and that a login moves them up.
func TestRaisedParams(t *testing.T) {
	db := openNew(t)
	ctx := context.Background()
	if err := db.AddUser(ctx, "alice", []byte("pw")); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, "bob", []byte("pw")); err != nil {
		t.Fatal(err)
	}
	old := storedHash(t, db, "alice")

	stronger := hashParams{memory: 128, time: 2, threads: 2}
	defaultParams = stronger
	defer func() { defaultParams = cheapParams }()

	if ok, _ := db.Verify(ctx, "alice", []byte("wrong")); ok {
		t.Fatal("a wrong password verifies")
	}
	if got := storedHash(t, db, "alice"); got != old {
		t.Errorf("a failed login changed the hash: %q -> %q", old, got)
	}
	if ok, err := db.Verify(ctx, "alice", []byte("pw")); !ok || err != nil {
		t.Fatalf("Verify of a hash with the earlier parameters: got %v, %v, want true", ok, err)
	}
	checkHash(t, storedHash(t, db, "alice"), []byte("pw"), stronger)
	if ok, _ := db.Verify(ctx, "alice", []byte("pw")); !ok {
		t.Error("the upgraded hash does not verify")
	}

	// Lower defaults never weaken a stored hash.
	defaultParams = cheapParams
	if ok, _ := db.Verify(ctx, "alice", []byte("pw")); !ok {
		t.Error("a hash with stronger parameters does not verify")
	}
	checkHash(t, storedHash(t, db, "alice"), []byte("pw"), stronger)
	checkHash(t, storedHash(t, db, "bob"), []byte("pw"), cheapParams)
}

func TestVerifyDamagedHash(t *testing.T) {
	db := openNew(t)
	ctx := context.Background()
	if err := db.AddUser(ctx, "alice", []byte("pw")); err != nil {
		t.Fatal(err)
	}
	execRaw(t, db.Path(), `UPDATE users SET hash = '$argon2id$v=19$m=4294967295,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'`)
	ok, err := db.Verify(ctx, "alice", []byte("pw"))
	if ok || !errors.Is(err, errBadPHC) || !strings.Contains(err.Error(), "alice") {
		t.Errorf("Verify with a hash asking for 4 TiB: got %v, %v; want false and an error naming alice", ok, err)
	}
	users, _ := db.Users(ctx)
	if users[0].Params != "unreadable hash" {
		t.Errorf("Params of a damaged hash: got %q", users[0].Params)
	}
}

// TestHashingIsBounded checks that a Verify waits for a hashing slot when
// runtime.NumCPU() hashes are running.
func TestHashingIsBounded(t *testing.T) {
	db := openNew(t)
	if got := cap(db.hashSlots); got != runtime.NumCPU() {
		t.Fatalf("hashing slots: got %d, want runtime.NumCPU() = %d", got, runtime.NumCPU())
	}
	for range cap(db.hashSlots) {
		db.hashSlots <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Verify(ctx, "alice", []byte("pw")); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with every slot taken: got %v, want it to wait (context.Canceled)", err)
	}
	if err := db.AddUser(ctx, "alice", []byte("pw")); !errors.Is(err, context.Canceled) {
		t.Errorf("AddUser with every slot taken: got %v, want it to wait (context.Canceled)", err)
	}
	for range cap(db.hashSlots) {
		<-db.hashSlots
	}

	// Many logins at once all finish, and leave every slot free.
	if err := db.AddUser(context.Background(), "alice", []byte("pw")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			want := i%2 == 0
			pw := "pw"
			if !want {
				pw = "wrong"
			}
			if ok, err := db.Verify(context.Background(), "alice", []byte(pw)); ok != want || err != nil {
				errs <- fmt.Errorf("Verify(%q): got %v, %v, want %v", pw, ok, err, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(db.hashSlots); n != 0 {
		t.Errorf("%d hashing slots still taken", n)
	}
}

func TestPHCRoundTrip(t *testing.T) {
	h := newHash([]byte("pw"))
	s := h.String()
	got, err := parsePHC(s)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != s || got.hashParams != h.hashParams {
		t.Errorf("round trip: got %q, want %q", got.String(), s)
	}
}

func TestParsePHCRejects(t *testing.T) {
	const salt, key = "c2FsdHNhbHRzYWx0c2FsdA", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	for _, s := range []string{
		"",
		"argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1,k=2$" + salt + "$" + key,
		"$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=65,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=7,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=1048577,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=-1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "=",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$",
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "!$" + key,
	} {
		if _, err := parsePHC(s); !errors.Is(err, errBadPHC) {
			t.Errorf("parsePHC(%q): got %v, want errBadPHC", s, err)
		}
	}
	if _, err := parsePHC("$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key); err != nil {
		t.Errorf("the valid seed does not parse: %v", err)
	}
}

// FuzzParsePHC checks that parsePHC never panics and that whatever it
// accepts is canonical: formatting it gives back the same string.
func FuzzParsePHC(f *testing.F) {
	f.Add(newHash([]byte("pw")).String())
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c2FsdA$a2V5")
	f.Add("$argon2i$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parsePHC(s)
		if err != nil {
			return
		}
		if h.String() != s {
			t.Errorf("parsePHC(%q) accepted a non-canonical form of %q", s, h.String())
		}
		if h.memory > maxMemory || h.time > maxTime || h.threads == 0 || len(h.salt) < minSalt || len(h.key) < minKey {
			t.Errorf("parsePHC(%q) accepted out-of-bounds parameters %+v", s, h.hashParams)
		}
	})
}

// BenchmarkVerify measures Verify with the shipped parameters for an
// account that exists and for one that does not; the two should cost the
// same. The interleaved run alternates them and reports the mean
// difference, known minus unknown, as ns-diff/op.
func BenchmarkVerify(b *testing.B) {
	defaultParams = shippedParams
	defer func() { defaultParams = cheapParams }()
	db, err := Open(b.TempDir()+"/"+DefaultFile, Options{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := db.AddUser(ctx, "alice", []byte("correct horse")); err != nil {
		b.Fatal(err)
	}
	verify := func(b *testing.B, name string) {
		if ok, err := db.Verify(ctx, name, []byte("wrong horse")); ok || err != nil {
			b.Fatalf("Verify(%s): got %v, %v", name, ok, err)
		}
	}
	b.Run("known-user", func(b *testing.B) {
		for b.Loop() {
			verify(b, "alice")
		}
	})
	b.Run("unknown-user", func(b *testing.B) {
		for b.Loop() {
			verify(b, "mallory")
		}
	})
	b.Run("interleaved", func(b *testing.B) {
		var known, unknown time.Duration
		var n int
		for b.Loop() {
			start := time.Now()
			verify(b, "alice")
			mid := time.Now()
			verify(b, "mallory")
			known += mid.Sub(start)
			unknown += time.Since(mid)
			n++
		}
		b.ReportMetric(float64(known)/float64(n), "ns-known/op")
		b.ReportMetric(float64(unknown)/float64(n), "ns-unknown/op")
		b.ReportMetric(float64(known-unknown)/float64(n), "ns-diff/op")
	})
}
