package capture

import (
	"bytes"
	"encoding/hex"
	"io"
	"os"
	"sync"
)

// keyLog holds TLS secrets in NSS key log format, indexed by client random.
// It is safe for concurrent use.
type keyLog struct {
	mu      sync.Mutex
	lines   [][]byte                       // every valid line, in order, without duplicates
	seen    map[string]bool                // line -> present
	secrets map[[32]byte]map[string][]byte // client random -> label -> secret
	partial []byte                         // an unfinished last line
}

func newKeyLog() *keyLog {
	return &keyLog{seen: map[string]bool{}, secrets: map[[32]byte]map[string][]byte{}}
}

// add parses NSS key log text (https://udn.realityripple.com/docs/Mozilla/Projects/NSS/Key_Log_Format):
// "LABEL <client random hex> <secret hex>" lines; comments and malformed
// lines are ignored. A trailing line without a newline is kept until more
// text completes it, so that a key log may be fed as it grows.
func (k *keyLog) add(text []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.partial) > 0 {
		text = append(k.partial, text...)
		k.partial = nil
	}
	for len(text) > 0 {
		i := bytes.IndexByte(text, '\n')
		if i < 0 {
			k.partial = append([]byte(nil), text...)
			return
		}
		k.addLineLocked(bytes.TrimSpace(text[:i]))
		text = text[i+1:]
	}
}

// flush treats an unfinished last line as complete.
func (k *keyLog) flush() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.partial) > 0 {
		k.addLineLocked(bytes.TrimSpace(k.partial))
		k.partial = nil
	}
}

func (k *keyLog) addLineLocked(line []byte) {
	f := bytes.Fields(line)
	if len(f) != 3 || line[0] == '#' {
		return
	}
	cr, err := hex.DecodeString(string(f[1]))
	if err != nil || len(cr) != 32 {
		return
	}
	secret, err := hex.DecodeString(string(f[2]))
	if err != nil || len(secret) == 0 {
		return
	}
	if k.seen[string(line)] {
		return
	}
	k.seen[string(line)] = true
	k.lines = append(k.lines, append([]byte(nil), line...))
	var r [32]byte
	copy(r[:], cr)
	m := k.secrets[r]
	if m == nil {
		m = map[string][]byte{}
		k.secrets[r] = m
	}
	m[string(f[0])] = secret
}

// secret returns the secret with label for the session of clientRandom.
func (k *keyLog) secret(clientRandom []byte, label string) []byte {
	if len(clientRandom) != 32 {
		return nil
	}
	var r [32]byte
	copy(r[:], clientRandom)
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.secrets[r][label]
}

// text returns the key log in NSS format, one line per secret.
func (k *keyLog) text() []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	var b bytes.Buffer
	for _, l := range k.lines {
		b.Write(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// keyLogFollower reads a key log file as it grows. It is safe for
// concurrent use.
type keyLogFollower struct {
	path string
	kl   *keyLog

	mu     sync.Mutex
	offset int64
}

// poll reads whatever was appended to the file since the last poll. A file
// that shrank was rewritten: it is read again from the start (secrets
// already read are kept). A missing file is not an error: the room may not
// have created it yet.
func (f *keyLogFollower) poll() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	file, err := os.Open(f.path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return err
	}
	if st.Size() < f.offset {
		f.offset = 0
	}
	if st.Size() == f.offset {
		return nil
	}
	b, err := io.ReadAll(io.NewSectionReader(file, f.offset, st.Size()-f.offset))
	if err != nil {
		return err
	}
	f.offset += int64(len(b))
	f.kl.add(b)
	return nil
}
