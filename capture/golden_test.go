package capture

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-edu/parley/schemes"
)

var update = flag.Bool("update", false, "record the golden captures in testdata again and rewrite their expected views")

func init() {
	// Golden views print times; make them independent of the machine's zone.
	time.Local = time.UTC
}

// testPSK is the pre-shared key of the aes golden captures (testdata/psk.key).
func testPSK(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/psk.key")
	if err != nil {
		t.Fatal(err)
	}
	psk, err := schemes.ParsePSK(data)
	if err != nil {
		t.Fatal(err)
	}
	return psk
}

// goldenCase is one scheme's recorded conversation.
type goldenCase struct {
	name string
	// record records the conversation through a tap and writes it to path.
	record func(t *testing.T, path string)
	opts   func(t *testing.T) ReadOptions
	// want are plaintexts the eavesdropper's view must contain, so that a
	// regenerated golden file cannot silently lose them.
	want []string
}

func recordRoom(scheme string, cfg schemes.Config) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		sc, err := schemes.New(scheme, cfg)
		if err != nil {
			t.Fatal(err)
		}
		up := startRoom(t, sc)
		tap, stop := startTap(t, up, "")
		converse(t, tap.Addr().String(), sc)
		stop()
		if err := tap.WriteFile(path); err != nil {
			t.Fatal(err)
		}
	}
}

func recordTLS(t *testing.T, path string) {
	keyLog := filepath.Join(t.TempDir(), "room-keys.log")
	f, err := os.Create(keyLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	up := startTLSEcho(t, selfSigned(t), f)
	tap, stop := startTap(t, up, keyLog)
	converseTLS(t, tap.Addr().String())
	stop()
	if err := tap.WriteFile(path); err != nil {
		t.Fatal(err)
	}
}

var schemesConfigPlain = schemes.Config{}

// recordTLSRoom records the conversation through a room of the tls scheme
// with a self-signed certificate; the room's key log is embedded.
func recordTLSRoom(t *testing.T, path string) {
	cert := selfSigned(t)
	keyLog := filepath.Join(t.TempDir(), "room-keys.log")
	f, err := os.Create(keyLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	srv, err := schemes.New("tls", schemes.Config{Certificates: []tls.Certificate{cert}, KeyLog: f})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cli, err := schemes.New("tls", schemes.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	up := startRoom(t, srv)
	tap, stop := startTap(t, up, keyLog)
	converse(t, tap.Addr().String(), cli)
	stop()
	if err := tap.WriteFile(path); err != nil {
		t.Fatal(err)
	}
}

func goldenCases(t *testing.T) []goldenCase {
	noOpts := func(*testing.T) ReadOptions { return ReadOptions{} }
	pskOpts := func(t *testing.T) ReadOptions { return ReadOptions{PSK: testPSK(t)} }
	chat := []string{"alice", "bob", aliceLine, "alice: " + aliceLine, bobLine, "bob: " + bobLine, "/quit"}
	return []goldenCase{
		{name: "plain", record: recordRoom("plain", schemes.Config{}), opts: noOpts, want: chat},
		{name: "xor", record: recordRoom("xor", schemes.Config{XORKey: 0x5a, XORKeySet: true}), opts: noOpts, want: chat},
		{name: "aes-cbc-hmac", record: func(t *testing.T, p string) { recordRoom("aes-cbc-hmac", schemes.Config{PSK: testPSK(t)})(t, p) }, opts: pskOpts, want: chat},
		{name: "aes-cbc", record: func(t *testing.T, p string) { recordRoom("aes-cbc", schemes.Config{PSK: testPSK(t)})(t, p) }, opts: pskOpts, want: chat},
		{name: "tls", record: recordTLSRoom, opts: noOpts, want: chat},
		{name: "tls13", record: recordTLS, opts: noOpts, want: []string{"* tls echo room", aliceLine, "echo: " + aliceLine, "/quit", "* bye"}},
	}
}

// renderText renders events as the text view.
func renderText(t testing.TB, evs []Event) string {
	t.Helper()
	var b bytes.Buffer
	for _, e := range evs {
		if err := WriteText(&b, e, false); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestGolden reads each recorded capture in testdata and compares the
// eavesdropper's view with the expected one. With -update it first records
// the conversations again through a tap.
func TestGolden(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			capPath := filepath.Join("testdata", tc.name+".pcapng")
			goldenPath := filepath.Join("testdata", tc.name+".golden")
			if *update {
				tmp := filepath.Join(t.TempDir(), tc.name+".pcapng")
				tc.record(t, tmp)
				data, err := os.ReadFile(tmp)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(capPath, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			evs, err := ReadFile(capPath, tc.opts(t))
			if err != nil {
				t.Fatalf("ReadFile(%s): %v", capPath, err)
			}
			got := renderText(t, evs)
			if *update {
				if err := os.WriteFile(goldenPath, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("view of %s differs from %s (run go test -run TestGolden -update to accept)\ngot:\n%s\nwant:\n%s", capPath, goldenPath, got, want)
			}
			checkPlaintexts(t, evs, tc.want)
		})
	}
}

// checkPlaintexts checks that every want line was recovered as a message.
func checkPlaintexts(t *testing.T, evs []Event, want []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range evs {
		if e.Type == EventMessage && e.RecoveredBy != "" {
			seen[e.Plaintext] = true
		}
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("no message with plaintext %q was recovered", w)
		}
	}
}

// TestTapRecordsEveryScheme records each conversation through a tap now
// (not from testdata) and checks that the view recovers every line.
func TestTapRecordsEveryScheme(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.pcapng")
			tc.record(t, p)
			evs, err := ReadFile(p, tc.opts(t))
			if err != nil {
				t.Fatal(err)
			}
			checkPlaintexts(t, evs, tc.want)
			for _, e := range evs {
				if e.Type == EventStream && e.Scheme != strings.TrimSuffix(tc.name, "13") {
					t.Errorf("stream %s recognised as %s, want %s", e.Stream, e.Scheme, tc.name)
				}
			}
		})
	}
}

func readTestdata(name string) ([]byte, error) { return os.ReadFile(filepath.Join("testdata", name)) }

func openFile(path string) (*os.File, error) { return os.Open(path) }
