package labs

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
)

// writeFiles writes each name → content into e's folder (mode 0644) and
// returns a finished Session that lists them.
func (e *env) writeFiles(files ...[2]string) (*Session, error) {
	s := &Session{}
	for _, f := range files {
		p := filepath.Join(e.cfg.Dir, f[0])
		if err := os.WriteFile(p, []byte(f[1]), 0o644); err != nil {
			return nil, fmt.Errorf("labs: cannot write %s: %w", p, err)
		}
		s.Files = append(s.Files, p)
	}
	return s, nil
}

// path returns the path of name in e's folder.
func (e *env) path(name string) string { return filepath.Join(e.cfg.Dir, name) }

// EncodePSK returns a pre-shared key in the key-file format of
// `parley keys gen` (PROTOCOL.md: standard base64 and a newline).
func EncodePSK(key []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(key) + "\n")
}
