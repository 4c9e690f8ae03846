package labs

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/labs/scenario"
	"github.com/parley-edu/parley/schemes"
)

// OracleGreeting is the padding-oracle service's first line.
const OracleGreeting = "* parley padding oracle (aes-cbc, alice's connection): send one record body per line, IV ‖ ciphertext in hex; the answer is ok or ! bad padding"

// oracleMaxLine bounds one query line.
const oracleMaxLine = 64 << 10

func init() {
	register(&Lab{
		ID:       "padding-oracle",
		Title:    "Decrypt an aes-cbc record through the server's padding oracle",
		Schemes:  []string{"aes-cbc"},
		Minutes:  60,
		Concepts: []string{"CBC padding oracle (Vaudenay 2002)", "error messages are side channels", "encrypt-then-MAC"},
		answer:   func(seed []byte) string { return code(seed, "vault") },
		demonstrated: "you decrypted a record without the key, one padding answer at a time: a server that tells bad " +
			"padding apart is a decryption oracle (CryptoPals challenge 17). aes-cbc-hmac checks the tag first, so it has none.",
		start: startPaddingOracle,
	})
}

func startPaddingOracle(ctx context.Context, e *env) (*Session, error) {
	path := e.path("padding-oracle.pcapng")
	secret := "the vault code is " + code(e.seed, "vault")
	sc, err := scenario.Start(ctx, scenario.Options{Scheme: "aes-cbc", Tap: true, CapturePath: path, Logger: e.log,
		Configure: func(cfg *schemes.Config, server bool) { cfg.PaddingOracle = server }})
	if err != nil {
		return nil, err
	}
	psk := sc.Credentials().PSK
	err = play(ctx, sc, nil, []say{
		chat("alice", "bob, are you there?"),
		private("alice", "bob", secret),
		chat("bob", "got it"),
	})
	if cerr := sc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	keys, err := aliceKeys(path, psk, secret)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("labs: cannot listen for the padding oracle: %w", err)
	}
	s := &Session{
		Files:     []string{path},
		Endpoints: []Endpoint{{What: "padding oracle", Addr: ln.Addr().String()}},
		Notes:     []string{"the oracle answers for records of alice's connection (the first stream in the capture), client to server"},
		done:      make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		serveOracle(ctx, ln, keys, e)
	}()
	return s, nil
}

// aliceKeys finds the connection in the capture that carried secret from
// the client and returns that connection's client-to-server keys.
func aliceKeys(path string, psk []byte, secret string) (schemes.DirectionKeys, error) {
	evs, err := capture.ReadFile(path, capture.ReadOptions{PSK: psk})
	if err != nil {
		return schemes.DirectionKeys{}, fmt.Errorf("labs: cannot read back %s: %w", path, err)
	}
	stream := 0
	for _, ev := range evs {
		if ev.Direction == capture.DirClient && strings.Contains(ev.Plaintext, secret) {
			stream = ev.StreamID
		}
	}
	var cn, sn []byte
	for _, ev := range evs {
		if ev.StreamID != stream || ev.Type != capture.EventHandshake {
			continue
		}
		if ev.ClientNonce != "" {
			cn, _ = hex.DecodeString(ev.ClientNonce)
		}
		if ev.ServerNonce != "" {
			sn, _ = hex.DecodeString(ev.ServerNonce)
		}
	}
	if stream == 0 || len(cn) != schemes.NonceLen || len(sn) != schemes.NonceLen {
		return schemes.DirectionKeys{}, fmt.Errorf("labs: cannot find alice's handshake in %s", path)
	}
	c2s, _ := schemes.DeriveSessionKeys(psk, [schemes.NonceLen]byte(cn), [schemes.NonceLen]byte(sn))
	return c2s, nil
}

// serveOracle answers padding queries on ln until ctx ends, then closes
// every connection and returns once their goroutines have ended.
func serveOracle(ctx context.Context, ln net.Listener, keys schemes.DirectionKeys, e *env) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			c.Close()
			break
		}
		conns[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := answerOracle(c, keys)
			e.log.Debug("padding oracle connection ended", "remote", c.RemoteAddr(), "queries", n)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
	ln.Close()
	wg.Wait()
}

// answerOracle runs one oracle connection and returns how many queries it
// answered.
func answerOracle(c net.Conn, keys schemes.DirectionKeys) int {
	w := bufio.NewWriter(c)
	fmt.Fprintln(w, OracleGreeting)
	w.Flush()
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 4096), oracleMaxLine)
	n := 0
	for sc.Scan() {
		n++
		fmt.Fprintln(w, oracleAnswer(keys, strings.TrimSpace(sc.Text())))
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := w.Flush(); err != nil {
			return n
		}
	}
	return n
}

// oracleAnswer is what the aes-cbc server with Config.PaddingOracle would
// reveal about body, as one line.
func oracleAnswer(keys schemes.DirectionKeys, line string) string {
	body, err := hex.DecodeString(line)
	if err != nil {
		return "! not hex: send IV ‖ ciphertext as hex digits, one record per line"
	}
	if len(body) < 32 || len(body)%16 != 0 {
		return "! bad record: the body must be a 16-byte IV and one or more 16-byte blocks"
	}
	_, err = schemes.OpenRecord(keys, 0, body, false)
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, schemes.ErrBadPadding):
		return "! bad padding"
	default:
		return "! bad record"
	}
}
