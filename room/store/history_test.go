package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	keyA = bytes.Repeat([]byte{0xa}, KeySize)
	keyB = bytes.Repeat([]byte{0xb}, KeySize)
)

// openHistory opens room's history and closes it when the test ends.
func openHistory(t *testing.T, db *DB, room string, key []byte) *History {
	t.Helper()
	h, err := db.History(room, key)
	if err != nil {
		t.Fatalf("History(%q): %v", room, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func last(t *testing.T, h *History, n int) []Message {
	t.Helper()
	msgs, err := h.Last(context.Background(), n)
	if err != nil {
		t.Fatalf("Last(%d): %v", n, err)
	}
	return msgs
}

// texts lists "sender: text" of msgs, or "sender: ERR" for a message with
// Err set.
func texts(msgs []Message) string {
	var b strings.Builder
	for _, m := range msgs {
		if m.Err != nil {
			fmt.Fprintf(&b, "%s: ERR\n", m.Sender)
		} else {
			fmt.Fprintf(&b, "%s: %s\n", m.Sender, m.Text)
		}
	}
	return b.String()
}

func TestHistorySurvivesReopen(t *testing.T) {
	for _, mode := range []struct {
		name string
		key  []byte
	}{{"sealed", keyA}, {"plaintext", nil}} {
		t.Run(mode.name, func(t *testing.T) {
			db := openNew(t)
			path := db.Path()
			h := openHistory(t, db, "lobby", mode.key)
			start := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
			for i, s := range []string{"alice", "bob", "alice"} {
				if err := h.Append(s, start.Add(time.Duration(i)*time.Second), fmt.Sprintf("line %d ünïcode", i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			db.Close()

			// A server restart.
			db, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			h = openHistory(t, db, "lobby", mode.key)
			msgs := last(t, h, 10)
			if got, want := texts(msgs), "alice: line 0 ünïcode\nbob: line 1 ünïcode\nalice: line 2 ünïcode\n"; got != want {
				t.Errorf("after reopening: got\n%swant\n%s", got, want)
			}
			for i, m := range msgs {
				if want := start.Add(time.Duration(i) * time.Second); !m.Time.Equal(want) || m.Time.Location() != time.UTC {
					t.Errorf("message %d: time %v, want %v in UTC", i, m.Time, want)
				}
				if m.Room != "lobby" || m.ID != int64(i+1) {
					t.Errorf("message %d: room %q, id %d", i, m.Room, m.ID)
				}
			}
			if got := texts(last(t, h, 2)); got != "bob: line 1 ünïcode\nalice: line 2 ünïcode\n" {
				t.Errorf("Last(2): got\n%s", got)
			}
			if err := h.Append("carol", time.Now(), "after the restart"); err != nil {
				t.Fatal(err)
			}
			if msgs := last(t, h, 1); msgs[0].ID != 4 || msgs[0].Text != "after the restart" {
				t.Errorf("after the restart: got %+v", msgs[0])
			}
		})
	}
}

func TestHistoryRoomsApart(t *testing.T) {
	db := openNew(t)
	lobby := openHistory(t, db, "lobby", keyA)
	lab := openHistory(t, db, "lab", keyA)
	lobby.Append("alice", time.Now(), "in the lobby")
	lab.Append("bob", time.Now(), "in the lab")
	if got := texts(last(t, lobby, 10)); got != "alice: in the lobby\n" {
		t.Errorf("lobby: got %q", got)
	}
	if got := texts(last(t, lab, 10)); got != "bob: in the lab\n" {
		t.Errorf("lab: got %q", got)
	}
	if msgs, err := lab.Last(context.Background(), 0); msgs != nil || err != nil {
		t.Errorf("Last(0): got %v, %v", msgs, err)
	}
}

// tamperedDB returns a closed database with three sealed messages in the
// lobby, alice's, bob's and carol's, ids 1, 2 and 3.
func tamperedDB(t *testing.T) string {
	t.Helper()
	db := openNew(t)
	h := openHistory(t, db, "lobby", keyA)
	for _, s := range []string{"alice", "bob", "carol"} {
		h.Append(s, time.Now(), "hello from "+s)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	return db.Path()
}

func TestHistoryTamper(t *testing.T) {
	tests := []struct {
		name    string
		sql     string
		room    string // the room whose history shows the damage
		want    string // "" for alice's, bob's and carol's with bob's reported
		flagged int64  // the id reported as tampered
	}{
		{"ciphertext byte", `UPDATE messages SET sealed = CAST(substr(sealed, 1, 4) || x'00' || substr(sealed, 6) AS BLOB) WHERE id = 2 AND substr(sealed, 5, 1) != x'00'`, "lobby", "", 2},
		{"nonce byte", `UPDATE messages SET nonce = x'000000000000000000000000' WHERE id = 2`, "lobby", "", 2},
		{"tag byte", `UPDATE messages SET sealed = CAST(substr(sealed, 1, length(sealed) - 1) || x'00' AS BLOB) WHERE id = 2 AND substr(sealed, -1) != x'00'`, "lobby", "", 2},
		{"short nonce", `UPDATE messages SET nonce = x'00' WHERE id = 2`, "lobby", "", 2},
		{"sender", `UPDATE messages SET sender = 'bpb' WHERE id = 2`, "lobby", "alice: hello from alice\nbpb: ERR\ncarol: hello from carol\n", 2},
		{"time", `UPDATE messages SET time = replace(time, substr(time, 1, 4), CAST(substr(time, 1, 4) + 1 AS TEXT)) WHERE id = 2`, "lobby", "", 2},
		{"time unreadable", `UPDATE messages SET time = 'yesterday' WHERE id = 2`, "lobby", "", 2},
		{"id", `UPDATE messages SET id = 7 WHERE id = 2`, "lobby", "alice: hello from alice\ncarol: hello from carol\nbob: ERR\n", 7},
		{"room", `UPDATE messages SET room = 'lobbz' WHERE id = 2`, "lobbz", "bob: ERR\n", 2},
		{"swapped texts", `UPDATE messages SET nonce = (SELECT nonce FROM messages WHERE id = 1), sealed = (SELECT sealed FROM messages WHERE id = 1) WHERE id = 2`, "lobby", "", 2},
		{"replaced by plaintext", `UPDATE messages SET text = 'forged', nonce = NULL, sealed = NULL WHERE id = 2`, "lobby", "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tamperedDB(t)
			res, err := rawDB(t, path).Exec(tt.sql)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				t.Fatalf("the edit changed %d rows, want 1", n)
			}
			db, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			msgs := last(t, openHistory(t, db, tt.room, keyA), 10)
			want := tt.want
			if want == "" {
				want = "alice: hello from alice\nbob: ERR\ncarol: hello from carol\n"
			}
			if got := texts(msgs); got != want {
				t.Errorf("got\n%swant\n%s", got, want)
			}
			for _, m := range msgs {
				if m.Err == nil {
					continue
				}
				if !errors.Is(m.Err, ErrTampered) || m.Text != "" || m.ID != tt.flagged {
					t.Errorf("the damaged row: id %d, text %q, Err %v; want id %d, no text, ErrTampered", m.ID, m.Text, m.Err, tt.flagged)
				}
				if !strings.Contains(m.Err.Error(), fmt.Sprintf("message %d", tt.flagged)) {
					t.Errorf("Err %q does not name the message", m.Err)
				}
				if strings.Contains(m.Err.Error(), "forged") || strings.Contains(m.Err.Error(), "hello") {
					t.Errorf("Err %q shows the stored text", m.Err)
				}
			}
		})
	}
}

func TestHistoryKeys(t *testing.T) {
	db := openNew(t)
	h := openHistory(t, db, "lobby", keyA)
	h.Append("alice", time.Now(), "sealed")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	_, err := db.History("lobby", keyB)
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), db.Path()) {
		t.Errorf("another key: got %v, want ErrWrongKey naming the file", err)
	}
	// The key binds the whole database, not a room.
	if _, err := db.History("lab", keyB); !errors.Is(err, ErrWrongKey) {
		t.Errorf("another key, another room: got %v, want ErrWrongKey", err)
	}
	if _, err := db.History("lobby", nil); !errors.Is(err, ErrSealed) {
		t.Errorf("plaintext mode: got %v, want ErrSealed", err)
	}
	if _, err := db.History("lobby", keyA[:16]); err == nil || !strings.Contains(err.Error(), "32") {
		t.Errorf("a 16-byte key: got %v, want an error asking for 32 bytes", err)
	}
	if _, err := db.History("", keyA); err == nil {
		t.Error("an empty room name was accepted")
	}
	h = openHistory(t, db, "lobby", keyA)
	if got := texts(last(t, h, 1)); got != "alice: sealed\n" {
		t.Errorf("with the right key: got %q", got)
	}
}

// TestHistoryModesDoNotMix checks that sealed and plaintext history never
// share a database, in either order, even before a message is stored.
func TestHistoryModesDoNotMix(t *testing.T) {
	plain := openNew(t)
	h := openHistory(t, plain, "lobby", nil)
	h.Append("alice", time.Now(), "in clear")
	h.Close()
	if _, err := plain.History("lobby", keyA); !errors.Is(err, ErrPlaintext) || !strings.Contains(err.Error(), "1 messages") {
		t.Errorf("sealed mode on plaintext history: got %v, want ErrPlaintext with the count", err)
	}

	sealed := openNew(t)
	openHistory(t, sealed, "lobby", keyA).Close() // binds the key, stores nothing
	if _, err := sealed.History("lobby", nil); !errors.Is(err, ErrSealed) {
		t.Errorf("plaintext mode on a keyed database: got %v, want ErrSealed", err)
	}

	// A plaintext row slipped into sealed history is reported, not shown.
	h = openHistory(t, sealed, "lobby", keyA)
	execRaw(t, sealed.Path(), `INSERT INTO messages(room, sender, time, text) VALUES ('lobby', 'mallory', '2026-01-01T00:00:00Z', 'trust me')`)
	msgs := last(t, h, 5)
	if len(msgs) != 1 || !errors.Is(msgs[0].Err, ErrTampered) || msgs[0].Text != "" {
		t.Errorf("an inserted plaintext row: got %+v, want it reported as tampered", msgs)
	}

	// Without its key record, sealed history cannot be trusted.
	execRaw(t, sealed.Path(), `DELETE FROM messages`)
	h.Append("alice", time.Now(), "x")
	h.Close()
	execRaw(t, sealed.Path(), `DELETE FROM meta`)
	if _, err := sealed.History("lobby", keyB); !errors.Is(err, ErrTampered) {
		t.Errorf("sealed messages without a key record: got %v, want ErrTampered", err)
	}
	if _, err := sealed.History("lobby", nil); !errors.Is(err, ErrSealed) {
		t.Errorf("plaintext mode on sealed messages without a key record: got %v, want ErrSealed", err)
	}
}

// TestHistoryAtRest is the data-at-rest lesson: plaintext history is
// readable with the sqlite3 command line; sealed history shows who spoke
// when, but no text, anywhere in the files.
func TestHistoryAtRest(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("needs the sqlite3 command line (apt-get install sqlite3)")
	}
	const secret = "the flag is PRLY-42"
	for _, mode := range []struct {
		name string
		key  []byte
		want string
	}{
		{"plaintext", nil, "alice|" + secret + "\n"},
		{"sealed", keyA, "alice|\n"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			db := openNew(t)
			h := openHistory(t, db, "lobby", mode.key)
			h.Append("alice", time.Now(), secret)
			if _, err := h.Last(context.Background(), 1); err != nil {
				t.Fatal(err)
			}
			// Read the files while the server still has them open (WAL).
			var onDisk []byte
			for _, suffix := range []string{"", "-wal"} {
				b, _ := os.ReadFile(db.Path() + suffix)
				onDisk = append(onDisk, b...)
			}
			if got := bytes.Contains(onDisk, []byte(secret)); got != (mode.key == nil) {
				t.Errorf("the secret is in the files: %v", got)
			}
			out, err := exec.Command("sqlite3", db.Path(), "SELECT sender, text FROM messages").CombinedOutput()
			if err != nil {
				t.Fatalf("sqlite3: %v\n%s", err, out)
			}
			if string(out) != mode.want {
				t.Errorf("sqlite3 SELECT sender, text: got %q, want %q", out, mode.want)
			}
			out, _ = exec.Command("sqlite3", db.Path(), "SELECT room, sender, length(nonce), length(sealed) > 0 FROM messages").CombinedOutput()
			if want := map[bool]string{true: "lobby|alice||\n", false: "lobby|alice|12|1\n"}[mode.key == nil]; string(out) != want {
				t.Errorf("sqlite3 metadata: got %q, want %q", out, want)
			}
		})
	}
}

// TestHistoryConcurrentWriters is a room of 100 members chatting at once:
// nothing is lost and each sender's messages keep their order.
func TestHistoryConcurrentWriters(t *testing.T) {
	const members, each = 100, 50
	db := openNew(t)
	h := openHistory(t, db, "lobby", keyA)
	var wg sync.WaitGroup
	errs := make(chan error, members)
	for i := range members {
		wg.Go(func() {
			sender := fmt.Sprintf("m%03d", i)
			for n := range each {
				if err := h.Append(sender, time.Now(), fmt.Sprint(n)); err != nil {
					errs <- err
					return
				}
				if n == each/2 && i%10 == 0 {
					// A replay in the middle of it all sees every
					// message this member has sent.
					msgs, err := h.Last(context.Background(), members*each)
					if err != nil {
						errs <- err
						return
					}
					seen := 0
					for _, m := range msgs {
						if m.Sender == sender {
							seen++
						}
					}
					if seen != n+1 {
						errs <- fmt.Errorf("%s: Last saw %d of its messages, want %d", sender, seen, n+1)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	h = openHistory(t, db, "lobby", keyA)
	msgs := last(t, h, 2*members*each)
	if len(msgs) != members*each {
		t.Fatalf("stored %d messages, want %d", len(msgs), members*each)
	}
	next := map[string]int{}
	for i, m := range msgs {
		if m.Err != nil {
			t.Fatalf("message %d: %v", m.ID, m.Err)
		}
		if i > 0 && m.ID <= msgs[i-1].ID {
			t.Fatalf("ids out of order: %d after %d", m.ID, msgs[i-1].ID)
		}
		if want := fmt.Sprint(next[m.Sender]); m.Text != want {
			t.Fatalf("%s: message %q, want %q (out of order or lost)", m.Sender, m.Text, want)
		}
		next[m.Sender]++
	}
}

func TestHistoryCloseFlushes(t *testing.T) {
	db := openNew(t)
	h, err := db.History("lobby", keyA)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3 * queueSize // more than the queue holds: Append must wait, not drop
	for i := range n {
		if err := h.Append("alice", time.Now(), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.done:
	default:
		t.Error("the writer goroutine still runs after Close")
	}
	if err := h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := h.Append("alice", time.Now(), "late"); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: got %v, want ErrClosed", err)
	}
	// Last still reads after Close.
	if msgs := last(t, h, 1); len(msgs) != 1 || msgs[0].Text != fmt.Sprint(n-1) {
		t.Errorf("Last after Close: got %+v", msgs)
	}
	var count int
	rawDB(t, db.Path()).QueryRow(`SELECT count(*) FROM messages`).Scan(&count)
	if count != n {
		t.Errorf("stored %d messages, want %d", count, n)
	}
}

// TestHistoryWriteFailure checks that a failed write is reported by the
// next Append, once, and that writing resumes when the cause goes away.
func TestHistoryWriteFailure(t *testing.T) {
	db := openNew(t)
	h := openHistory(t, db, "lobby", nil)
	raw := rawDB(t, db.Path())
	if _, err := raw.Exec(`CREATE TRIGGER full BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'disk full'); END`); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := h.Append("alice", time.Now(), fmt.Sprint(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	if msgs := last(t, h, 10); len(msgs) != 0 {
		t.Errorf("stored %d messages through the failing trigger", len(msgs))
	}
	err := h.Append("alice", time.Now(), "3")
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "3 messages") {
		t.Fatalf("Append after failed writes: got %v, want the failure with the count of lost messages", err)
	}
	if _, err := raw.Exec(`DROP TRIGGER full`); err != nil {
		t.Fatal(err)
	}
	// The writer took "3" before or after the trigger went; either way,
	// once stored or failed, it is reported at most once.
	last(t, h, 1)
	if err := h.Append("alice", time.Now(), "4"); err != nil && !strings.Contains(err.Error(), "1 messages") {
		t.Errorf("second report: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Errorf("Close after recovery: %v", err)
	}
	if got := texts(last(t, h, 10)); !strings.HasSuffix(got, "alice: 4\n") {
		t.Errorf("after recovery: got %q", got)
	}
}

func TestHistoryAppendChecks(t *testing.T) {
	h := openHistory(t, openNew(t), "lobby", keyA)
	if err := h.Append("", time.Now(), "x"); err == nil {
		t.Error("Append with no sender succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Last(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Last with a cancelled context: got %v", err)
	}
}

// BenchmarkHistoryAppend measures storing messages from 100 concurrent
// senders, sealed, through Last (which waits until they are stored).
func BenchmarkHistoryAppend(b *testing.B) {
	db, err := Open(b.TempDir()+"/"+DefaultFile, Options{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	h, err := db.History("lobby", keyA)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	b.SetParallelism(100)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.Append("alice", time.Now(), "a chat line of a typical length, about sixty bytes")
		}
	})
	if _, err := h.Last(context.Background(), 1); err != nil {
		b.Fatal(err)
	}
}
