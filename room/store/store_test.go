package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// shippedParams are the hash parameters as the package sets them, before
// TestMain lowers them.
var shippedParams = defaultParams

// cheapParams keep the tests fast; TestShippedParams and the benchmarks
// use the real ones.
var cheapParams = hashParams{memory: 64, time: 1, threads: 1}

func TestMain(m *testing.M) {
	defaultParams = cheapParams
	goleak.VerifyTestMain(m)
}

// openNew creates a database in a fresh directory and closes it when the
// test ends.
func openNew(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), DefaultFile), Options{Create: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rawDB opens path with database/sql directly, as an attacker or a lab
// would, bypassing the package.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=rw&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// execRaw runs stmt on the database at path with database/sql directly.
func execRaw(t *testing.T, path, stmt string) {
	t.Helper()
	if _, err := rawDB(t, path).Exec(stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func checkPrivate(t *testing.T, path string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Errorf("stat %s: %v", path, err)
		return
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("%s: mode %04o, want 0600", filepath.Base(path), got)
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	db := openNew(t)
	h, err := db.History("lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Append("alice", time.Now(), "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Last(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	// While the database is open in WAL mode all three files exist.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		checkPrivate(t, db.Path()+suffix)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if db.Tightened() != 0 {
		t.Errorf("Tightened: got %04o for a new file, want 0", db.Tightened())
	}
}

func TestOpenTightensExistingFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes are not Unix permissions on Windows")
	}
	db := openNew(t)
	path := db.Path()
	db.Close()
	os.Chmod(path, 0o644)
	// Companions left by a crashed run, readable by everyone.
	os.WriteFile(path+"-shm", nil, 0o644)
	os.Chmod(path+"-shm", 0o644)

	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Tightened(); got != 0o644 {
		t.Errorf("Tightened: got %04o, want 0644", got)
	}
	checkPrivate(t, path)
	checkPrivate(t, path+"-shm")
	checkPrivate(t, path+"-wal")
}

func TestOpenMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultFile)
	_, err := Open(path, Options{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want an error wrapping fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "parley users add") {
		t.Errorf("error %q does not name the file and what to do", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open without Create made a file: %v", err)
	}
}

func TestOpenMissingFolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-folder", DefaultFile)
	_, err := Open(path, Options{Create: true})
	if err == nil || errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "folder") {
		t.Errorf("got %v, want an error about the folder that does not claim the database is missing", err)
	}
}

// TestOpenEmpty checks that a file with nothing in it, not even SQLite's
// tables, becomes a database with Create and is refused without.
func TestOpenEmpty(t *testing.T) {
	tests := []struct {
		name   string
		create func(path string) error
	}{
		{"empty file", func(path string) error { return os.WriteFile(path, nil, 0o600) }},
		{"SQLite database without tables", func(path string) error {
			raw, err := sql.Open("sqlite", path)
			if err != nil {
				return err
			}
			defer raw.Close()
			_, err = raw.Exec(`CREATE TABLE t(x); DROP TABLE t`)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), DefaultFile)
			if err := tt.create(path); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(path, Options{}); !errors.Is(err, ErrNotParley) || !strings.Contains(err.Error(), "empty") {
				t.Errorf("without Create: got %v, want ErrNotParley saying it is empty", err)
			}
			db, err := Open(path, Options{Create: true})
			if err != nil {
				t.Fatalf("with Create: %v", err)
			}
			db.Close()
			if db, err = Open(path, Options{}); err != nil {
				t.Fatalf("reopening: %v", err)
			}
			db.Close()
		})
	}
}

func TestOpenKeepsData(t *testing.T) {
	db := openNew(t)
	ctx := context.Background()
	if err := db.AddUser(ctx, "alice", []byte("pw")); err != nil {
		t.Fatal(err)
	}
	path := db.Path()
	db.Close()
	// Create opens an existing database; it never starts it over.
	db, err := Open(path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ok, err := db.UserExists(ctx, "alice"); !ok || err != nil {
		t.Errorf("UserExists after reopening: got %v, %v, want true", ok, err)
	}
	var appID, version int
	db.sql.QueryRow(`PRAGMA application_id`).Scan(&appID)
	db.sql.QueryRow(`PRAGMA user_version`).Scan(&version)
	if appID != applicationID || version != len(migrations) {
		t.Errorf("application_id %#x, user_version %d; want %#x, %d", appID, version, applicationID, len(migrations))
	}
}

// populated returns the path of a closed parley database with some
// accounts and messages in it, several pages long.
func populated(t *testing.T) string {
	t.Helper()
	db := openNew(t)
	ctx := context.Background()
	for _, name := range []string{"alice", "bob", "carol"} {
		if err := db.AddUser(ctx, name, []byte("pw-"+name)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := db.History("lobby", make([]byte, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		h.Append("alice", time.Now(), strings.Repeat("x", i))
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	return db.Path()
}

func TestOpenRefusesAndLeavesFileAlone(t *testing.T) {
	sqliteFile := func(t *testing.T, stmts string) []byte {
		p := filepath.Join(t.TempDir(), "other.db")
		raw, err := sql.Open("sqlite", p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(stmts); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		b, _ := os.ReadFile(p)
		return b
	}
	parley := func(t *testing.T, edit func([]byte) []byte) []byte {
		b, err := os.ReadFile(populated(t))
		if err != nil {
			t.Fatal(err)
		}
		return edit(b)
	}
	flip := func(off int, mask byte) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= mask; return b }
	}
	tests := []struct {
		name    string
		content func(t *testing.T) []byte
		want    error
		says    string
	}{
		{"text file", func(*testing.T) []byte { return []byte("my notes\n") }, ErrNotParley, "not a SQLite database"},
		{"another program's database", func(t *testing.T) []byte {
			return sqliteFile(t, `CREATE TABLE accounts(id INTEGER); INSERT INTO accounts VALUES (1)`)
		}, ErrNotParley, "another program"},
		{"newer schema", func(t *testing.T) []byte {
			return sqliteFile(t, `PRAGMA application_id = 1349676153; PRAGMA user_version = 99; CREATE TABLE future(x)`)
		}, ErrTooNew, "schema version 99"},
		{"flipped magic", func(t *testing.T) []byte { return parley(t, flip(3, 0x20)) }, ErrNotParley, "not a SQLite database"},
		{"flipped page size", func(t *testing.T) []byte { return parley(t, flip(16, 0x01)) }, ErrCorrupt, "page size"},
		{"flipped payload fraction", func(t *testing.T) []byte { return parley(t, flip(21, 0x01)) }, ErrCorrupt, "bad header"},
		{"flipped schema page", func(t *testing.T) []byte { return parley(t, flip(100, 0xff)) }, ErrCorrupt, ""},
		{"flipped b-tree page", func(t *testing.T) []byte {
			return parley(t, func(b []byte) []byte {
				// The first byte of every page after the first is its
				// b-tree page type; 0xff is none of them.
				for off := 4096; off < len(b); off += 4096 {
					b[off] = 0xff
				}
				return b
			})
		}, ErrCorrupt, ""},
		{"truncated to half", func(t *testing.T) []byte {
			return parley(t, func(b []byte) []byte { return b[:len(b)/2] })
		}, ErrCorrupt, "truncated"},
		{"truncated header", func(t *testing.T) []byte {
			return parley(t, func(b []byte) []byte { return b[:50] })
		}, ErrCorrupt, "truncated"},
		{"truncated magic", func(t *testing.T) []byte {
			return parley(t, func(b []byte) []byte { return b[:10] })
		}, ErrCorrupt, "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := tt.content(t)
			dir := t.TempDir()
			path := filepath.Join(dir, DefaultFile)
			// Readable by others: Open must not even change the mode of a
			// file that is not its own.
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, 0o644)
			for _, create := range []bool{false, true} {
				db, err := Open(path, Options{Create: create})
				if err == nil {
					db.Close()
					t.Fatalf("Create %v: Open succeeded, want an error wrapping %v", create, tt.want)
				}
				if !errors.Is(err, tt.want) {
					t.Errorf("Create %v: got %v, want an error wrapping %v", create, err, tt.want)
				}
				if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.says) {
					t.Errorf("Create %v: error %q does not name the file and say %q", create, err, tt.says)
				}
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, content) {
				t.Errorf("the file changed (%d bytes before, %d after)", len(content), len(got))
			}
			if st, _ := os.Stat(path); runtime.GOOS != "windows" && st.Mode().Perm() != 0o644 {
				t.Errorf("the file's mode changed to %04o", st.Mode().Perm())
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("files left beside the database: %v", names)
			}
		})
	}
}

func TestOpenNotAFile(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir, Options{Create: true})
	if !errors.Is(err, ErrNotParley) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("got %v, want ErrNotParley saying it is not a regular file", err)
	}
}

func TestTwoHandlesShareTheFile(t *testing.T) {
	// A server and 'parley users' use the same file at once.
	a := openNew(t)
	b, err := Open(a.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := b.AddUser(ctx, "dave", []byte("pw")); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Verify(ctx, "dave", []byte("pw")); !ok || err != nil {
		t.Errorf("Verify through the other handle: got %v, %v, want true", ok, err)
	}
}
