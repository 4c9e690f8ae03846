package schemes

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestSchemeIDs(t *testing.T) {
	want := map[string]byte{"plain": 0, "xor": 1, "aes-cbc": 2, "aes-cbc-hmac": 3, "tls": 4, "mtls": 5}
	for name, id := range want {
		if got, ok := SchemeID(name); !ok || got != id {
			t.Errorf("SchemeID(%q): got %d, %v, want %d, true", name, got, ok, id)
		}
		if got := SchemeName(id); got != name {
			t.Errorf("SchemeName(%d): got %q, want %q", id, got, name)
		}
	}
	if _, ok := SchemeID("rot13"); ok {
		t.Error(`SchemeID("rot13"): got ok, want false`)
	}
	if got := SchemeName(6); got != "" {
		t.Errorf("SchemeName(6): got %q, want empty", got)
	}
}

func TestParseHello(t *testing.T) {
	valid := AppendHello(nil, Hello{Version: 1, SchemeID: 3, Nonce: [16]byte{1, 2, 3}})
	tests := []struct {
		name    string
		in      []byte
		want    Hello
		wantErr bool
	}{
		{"valid", valid, Hello{Version: 1, SchemeID: 3, Nonce: [16]byte{1, 2, 3}}, false},
		{"trailing bytes ignored", append(bytes.Clone(valid), 0, 0, 0, 80), Hello{Version: 1, SchemeID: 3, Nonce: [16]byte{1, 2, 3}}, false},
		{"other version parsed as received", append([]byte("PRLY\x07\x09"), make([]byte, 16)...), Hello{Version: 7, SchemeID: 9}, false},
		{"short", valid[:HelloLen-1], Hello{}, true},
		{"empty", nil, Hello{}, true},
		{"bad magic", append([]byte("PRLX"), valid[4:]...), Hello{}, true},
		{"text", []byte("alice\nhello everyone, how are you"), Hello{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHello(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error: %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestGuessScheme(t *testing.T) {
	xorGreeting := []byte{XORKeyToWire(0x2a), 0, 12}
	for _, c := range []byte("* parley 123") {
		xorGreeting = append(xorGreeting, c^0x2a)
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, ""},
		{"aes-cbc-hmac hello", AppendHello(nil, Hello{Version: 1, SchemeID: 3}), "aes-cbc-hmac"},
		{"aes-cbc hello", AppendHello(nil, Hello{Version: 1, SchemeID: 2}), "aes-cbc"},
		{"text line", []byte("alice\n"), "plain"},
		{"greeting", []byte("* parley room lobby (plain)\r\n"), "plain"},
		{"utf-8 cut short", []byte("h\xc3"), "plain"},
		{"tls client hello", []byte{0x16, 0x03, 0x01, 0x00, 0xf4, 0x01}, "tls"},
		{"xor greeting", xorGreeting, "xor"},
		{"binary", []byte{0x00, 0x01, 0x02, 0xff, 0xfe}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := GuessScheme(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// rawPeer is a peer that writes send on connect and then reads what comes
// back until the other side closes.
func rawPeer(send []byte, got *[]byte) func(net.Conn) (Conn, error) {
	return func(c net.Conn) (Conn, error) {
		if _, err := c.Write(send); err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		*got = b
		return nil, nil
	}
}

func TestServerRejectsBadHello(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv := mustNew(t, "aes-cbc-hmac", Config{PSK: testPSK})
	tests := []struct {
		name    string
		send    []byte
		wantGot string // MismatchError.Got
		// wantReply is what the raw peer must receive: a hello, a text
		// line, or nothing.
		wantReply string
	}{
		{"garbage", []byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15"), "", ""},
		{"wrong version", append([]byte("PRLY\x02\x03"), make([]byte, 16)...), "parley hello version 2", "hello"},
		{"wrong scheme id", append([]byte("PRLY\x01\x02"), make([]byte, 16)...), "aes-cbc", "hello"},
		{"unknown scheme id", append([]byte("PRLY\x01\x63"), make([]byte, 16)...), "an unknown scheme (id 99)", "hello"},
		{"plain client", []byte("alice\n"), "plain", "! parley: this room speaks aes-cbc-hmac, not plain: join with --scheme aes-cbc-hmac\n"},
		{"tls client", []byte{0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00}, "tls", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reply []byte
			server, _ := runPairFuncs(t, srv.Server, rawPeer(tt.send, &reply))
			var me *MismatchError
			if !errors.As(server.err, &me) {
				t.Fatalf("got %v, want a *MismatchError", server.err)
			}
			if me.Want != "aes-cbc-hmac" || me.Got != tt.wantGot {
				t.Errorf("got Want %q, Got %q, want Want %q, Got %q", me.Want, me.Got, "aes-cbc-hmac", tt.wantGot)
			}
			if !errors.Is(server.err, ErrNotParley) {
				t.Errorf("got %v, want it to wrap ErrNotParley", server.err)
			}
			switch tt.wantReply {
			case "hello":
				h, err := ParseHello(reply)
				if err != nil || h.SchemeID != 3 || len(reply) != HelloLen {
					t.Errorf("reply: got %q (%v), want the server's aes-cbc-hmac hello alone", reply, err)
				}
			default:
				if string(reply) != tt.wantReply {
					t.Errorf("reply: got %q, want %q", reply, tt.wantReply)
				}
			}
		})
	}
}

func TestSchemeMismatchBothWays(t *testing.T) {
	defer goleak.VerifyNone(t)
	aes := mustNew(t, "aes-cbc-hmac", Config{PSK: testPSK})
	insecure := mustNew(t, "aes-cbc", Config{PSK: testPSK})
	plain := mustNew(t, "plain", Config{})
	xor := mustNew(t, "xor", Config{})

	t.Run("plain client, aes-cbc-hmac server", func(t *testing.T) {
		var line string
		server, client := runPairFuncs(t, aes.Server, func(c net.Conn) (Conn, error) {
			pc, _ := plain.Client(c)
			// A plain client sends its name first, as a person with nc does.
			if err := pc.WriteLines([]byte("alice\n")); err != nil {
				return nil, err
			}
			m, err := pc.ReadMessage()
			line = string(m)
			return pc, err
		})
		wantMismatch(t, server.err, "aes-cbc-hmac", "plain", "schemes: the peer speaks plain, not aes-cbc-hmac")
		if client.err != nil || !strings.Contains(line, "this room speaks aes-cbc-hmac") {
			t.Errorf("plain client: got %q, %v, want a line saying the room speaks aes-cbc-hmac", line, client.err)
		}
	})

	t.Run("aes-cbc-hmac client, plain server", func(t *testing.T) {
		server, client := runPairFuncs(t, func(c net.Conn) (Conn, error) {
			pc, _ := plain.Server(c)
			// A plain room greets first.
			return pc, pc.WriteLines([]byte("* parley room lobby (plain): INSECURE\n"))
		}, aes.Client)
		if server.err != nil {
			t.Fatal(server.err)
		}
		wantMismatch(t, client.err, "aes-cbc-hmac", "plain", "schemes: the peer speaks plain, not aes-cbc-hmac")
	})

	t.Run("aes-cbc client, aes-cbc-hmac server", func(t *testing.T) {
		server, client := runPair(t, aes, insecure)
		wantMismatch(t, server.err, "aes-cbc-hmac", "aes-cbc", "schemes: the peer speaks aes-cbc, not aes-cbc-hmac")
		wantMismatch(t, client.err, "aes-cbc", "aes-cbc-hmac", "schemes: the peer speaks aes-cbc-hmac, not aes-cbc")
	})

	t.Run("aes-cbc-hmac client, xor server", func(t *testing.T) {
		server, client := runPairFuncs(t, func(c net.Conn) (Conn, error) {
			xc, err := xor.Server(c)
			if err != nil {
				return nil, err
			}
			return xc, xc.WriteLines([]byte("* parley room lobby (xor)\n"))
		}, aes.Client)
		if server.err != nil {
			t.Fatal(server.err)
		}
		wantMismatch(t, client.err, "aes-cbc-hmac", "xor", "schemes: the peer speaks xor, not aes-cbc-hmac")
	})

	t.Run("tls client, aes-cbc-hmac server", func(t *testing.T) {
		server, _ := runPairFuncs(t, aes.Server, func(c net.Conn) (Conn, error) {
			tc := tls.Client(c, &tls.Config{ServerName: "localhost"})
			tc.Handshake() // fails when the server closes
			return nil, nil
		})
		wantMismatch(t, server.err, "aes-cbc-hmac", "tls", "schemes: the peer speaks tls, not aes-cbc-hmac")
	})

	t.Run("peer closes before its hello", func(t *testing.T) {
		server, _ := runPairFuncs(t, aes.Server, func(c net.Conn) (Conn, error) { return nil, c.Close() })
		if !errors.Is(server.err, io.ErrUnexpectedEOF) {
			t.Errorf("got %v, want io.ErrUnexpectedEOF", server.err)
		}
	})
}

func wantMismatch(t *testing.T, err error, want, got, text string) {
	t.Helper()
	var me *MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("got %v, want a *MismatchError", err)
	}
	if me.Want != want || me.Got != got {
		t.Errorf("got Want %q, Got %q, want Want %q, Got %q", me.Want, me.Got, want, got)
	}
	if err.Error() != text {
		t.Errorf("got message %q, want %q", err, text)
	}
}

// The hello reader must not read past the hello: the records that follow
// belong to the record layer.
func TestReadHelloReadsNoMore(t *testing.T) {
	h := AppendHello(nil, Hello{Version: 1, SchemeID: 3})
	r := bytes.NewReader(append(h, "NEXT"...))
	if _, err := readHello(r, "aes-cbc-hmac"); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != "NEXT" {
		t.Errorf("after the hello: got %q unread, want %q", rest, "NEXT")
	}
}
