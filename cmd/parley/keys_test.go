package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parley-edu/parley/schemes"
)

func TestKeysGen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "room.psk")

	res := runParley(t, "", "keys", "gen", "--out", path)
	if res.code != 0 {
		t.Fatalf("keys gen exited %d; stderr:\n%s", res.code, res.stderr)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := schemes.ParsePSK(first); err != nil {
		t.Errorf("the written key does not parse: %v", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode: got %04o, want 0600", st.Mode().Perm())
	}
	if !strings.Contains(res.stderr, path) || !strings.Contains(res.stderr, "--psk") {
		t.Errorf("stderr does not say where the key went and what next:\n%s", res.stderr)
	}

	t.Run("refuses to overwrite", func(t *testing.T) {
		res := runParley(t, "", "keys", "gen", "--out", path)
		if res.code != 1 || !strings.Contains(res.stderr, "already exists") || !strings.Contains(res.stderr, "--force") {
			t.Errorf("got exit %d, stderr:\n%s\nwant exit 1 naming --force", res.code, res.stderr)
		}
		if now, _ := os.ReadFile(path); string(now) != string(first) {
			t.Error("the key file changed")
		}
	})

	t.Run("force overwrites and makes the file private", func(t *testing.T) {
		os.Chmod(path, 0o644)
		res := runParley(t, "", "keys", "gen", "--out", path, "--force")
		if res.code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", res.code, res.stderr)
		}
		if now, _ := os.ReadFile(path); string(now) == string(first) {
			t.Error("--force kept the old key")
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
			t.Errorf("mode: got %04o, want 0600", st.Mode().Perm())
		}
	})

	t.Run("misuse", func(t *testing.T) {
		for _, args := range [][]string{
			{"keys", "gen"},
			{"keys", "gen", "--out", dir},
			{"keys", "gen", "--out", path, "extra"},
		} {
			if res := runParley(t, "", args...); res.code != 2 {
				t.Errorf("parley %v: got exit %d, want 2; stderr:\n%s", args, res.code, res.stderr)
			}
		}
	})
}

func TestRecordFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	short := write("short.psk", "AAECAwQF\n")
	hexKey := write("hex.psk", strings.Repeat("ab", 32)+"\n")
	missing := filepath.Join(dir, "missing.psk")
	serve := []string{"serve", "--listen", "127.0.0.1:0"}
	tests := []struct {
		name string
		args []string
		code int
		want []string // in stderr
	}{
		{"aes without a key", append(serve, "--scheme", "aes-cbc-hmac"), 2, []string{"needs a pre-shared key", "parley keys gen"}},
		{"missing key file", append(serve, "--scheme", "aes-cbc-hmac", "--psk", missing), 1, []string{missing, "parley keys gen"}},
		{"key file too short", append(serve, "--scheme", "aes-cbc", "--psk", short), 1, []string{short, "it holds 6 bytes, want 32"}},
		{"key file in hex", append(serve, "--scheme", "aes-cbc-hmac", "--psk", hexKey), 1, []string{"want 32"}},
		{"psk and passphrase", append(serve, "--scheme", "aes-cbc-hmac", "--psk", short, "--passphrase", "x"), 2, []string{"use one"}},
		{"empty passphrase", append(serve, "--scheme", "aes-cbc-hmac", "--passphrase", ""), 2, []string{"--passphrase is empty"}},
		{"psk with xor", append(serve, "--scheme", "xor", "--psk", short), 2, []string{"--psk is for --scheme aes-cbc-hmac or aes-cbc"}},
		{"xor key out of range", append(serve, "--scheme", "xor", "--xor-key", "256"), 2, []string{"0 to 255"}},
		{"xor key with plain", append(serve, "--xor-key", "1"), 2, []string{"--xor-key is for --scheme xor"}},
		{"xor key on join", []string{"join", "--name", "bob", "--scheme", "xor", "--xor-key", "1"}, 2, []string{"--xor-key is for serve"}},
		{"oracle with aes-cbc-hmac", append(serve, "--scheme", "aes-cbc-hmac", "--passphrase", "x", "--padding-oracle"), 2, []string{"--padding-oracle is for --scheme aes-cbc"}},
		{"oracle on join", []string{"join", "--name", "bob", "--scheme", "aes-cbc", "--passphrase", "x", "--padding-oracle"}, 2, []string{"--padding-oracle is for serve"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runParley(t, "", tt.args...)
			if res.code != tt.code {
				t.Errorf("got exit %d, want %d; stderr:\n%s", res.code, tt.code, res.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
				}
			}
			if !strings.Contains(res.stderr, "parley: error: ") {
				t.Errorf("stderr lacks 'parley: error: ':\n%s", res.stderr)
			}
		})
	}
}

func TestSchemesCommand(t *testing.T) {
	res := runParley(t, "", "schemes")
	if res.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", res.code, res.stderr)
	}
	for _, name := range schemes.Names() {
		if !strings.Contains(res.stdout, "\n"+name+" ") {
			t.Errorf("the table lacks %s:\n%s", name, res.stdout)
		}
	}
	if !strings.Contains(res.stdout, "INSECURE: aes-cbc-hmac without the tag") {
		t.Errorf("the table lacks aes-cbc's INSECURE summary:\n%s", res.stdout)
	}

	res = runParley(t, "", "schemes", "--json")
	var got []schemes.Properties
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, res.stdout)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, schemes.Names()) {
		t.Errorf("--json schemes: got %v, want %v", names, schemes.Names())
	}

	res = runParley(t, "", "schemes", "--long")
	if !strings.Contains(res.stdout, "weakness:") || !strings.Contains(res.stdout, "key sent in the clear") {
		t.Errorf("--long lacks weaknesses and lessons:\n%s", res.stdout)
	}
}
