package labs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/parley-edu/parley/labs/scenario"
	"github.com/parley-edu/parley/schemes"
)

// BitflipOrder is alice's payment, sent as her first line after her name
// (record 2 of her connection); the amount sits in the first AES block.
const BitflipOrder = "pay 0100 to bob"

// bitflipRetry is how long alice waits between payments.
const bitflipRetry = 2 * time.Second

var bitflipRE = regexp.MustCompile(`^alice: pay ([0-9]{4}) to bob$`)

func init() {
	register(&Lab{
		ID:       "cbc-bitflip",
		Title:    "Change a payment in transit without the key, then watch a MAC stop it",
		Schemes:  []string{"aes-cbc", "aes-cbc-hmac"},
		Minutes:  40,
		Concepts: []string{"CBC malleability (bit flipping)", "confidentiality is not integrity", "encrypt-then-MAC"},
		answer:   func(seed []byte) string { return code(seed, "receipt") },
		demonstrated: "you changed the amount of an encrypted payment without the key by flipping IV bits: CBC without a MAC " +
			"has no integrity (CryptoPals challenge 16); aes-cbc-hmac detects the same flip and drops the connection.",
		start: startBitflip,
	})
}

func startBitflip(ctx context.Context, e *env) (*Session, error) {
	s := &Session{done: make(chan struct{})}
	var scs []*scenario.Scenario
	var wg sync.WaitGroup
	fail := func(err error) (*Session, error) {
		for _, sc := range scs {
			sc.Close()
		}
		return nil, err
	}
	for _, scheme := range []string{"aes-cbc", "aes-cbc-hmac"} {
		sc, err := scenario.Start(ctx, scenario.Options{Scheme: scheme, Logger: e.log})
		if err != nil {
			return fail(err)
		}
		scs = append(scs, sc)
		bank, err := sc.Join("bank")
		if err != nil {
			return fail(err)
		}
		relay, err := freeAddr()
		if err != nil {
			return fail(err)
		}
		sch, err := sc.ClientScheme("alice")
		if err != nil {
			return fail(err)
		}
		s.Endpoints = append(s.Endpoints,
			Endpoint{What: scheme + " room", Addr: sc.Addr()},
			Endpoint{What: scheme + ": alice connects to (start your relay here)", Addr: relay})
		s.Notes = append(s.Notes, fmt.Sprintf("e.g. parley mitm --scheme %s --listen %s --upstream %s --flip OFFSET:MASK@2", scheme, relay, sc.Addr()))
		wg.Add(2)
		go func() { defer wg.Done(); runBank(ctx, e, scheme, bank) }()
		go func() { defer wg.Done(); runPayer(ctx, e, scheme, sch, relay) }()
	}
	go func() {
		defer close(s.done)
		<-ctx.Done()
		var errs []error
		for _, sc := range scs {
			errs = append(errs, sc.Close())
		}
		wg.Wait()
		s.err = errors.Join(errs...)
	}()
	return s, nil
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, for the student's relay to listen on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("labs: cannot find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// runBank reports each payment the bank receives until ctx ends or the
// room closes; a changed amount earns the receipt.
func runBank(ctx context.Context, e *env, scheme string, bank *scenario.Bot) {
	handled := 0 // lines already looked at
	for {
		i := 0
		line, err := bank.WaitFor(ctx, "a payment", func(l string) bool {
			i++
			return i > handled && strings.HasPrefix(l, "alice: ")
		})
		if err != nil {
			if ctx.Err() != nil || bank.Err() != nil {
				return
			}
			continue // nothing within the bot's timeout: wait again
		}
		handled = i
		m := bitflipRE.FindStringSubmatch(line)
		switch {
		case m == nil:
			fmt.Fprintf(e.out, "bank (%s): got %q from alice, which is not a payment order I can read\n", scheme, line)
		case m[1] == "0100":
			fmt.Fprintf(e.out, "bank (%s): alice paid 0100 to bob, as she meant to\n", scheme)
		case scheme == "aes-cbc":
			fmt.Fprintf(e.out, "bank (%s): alice paid %s to bob — not what she sent! receipt: %s\n", scheme, m[1], code(e.seed, "receipt"))
		default:
			fmt.Fprintf(e.out, "bank (%s): alice paid %s to bob\n", scheme, m[1])
		}
		bank.Say("/msg alice payment processed")
	}
}

// runPayer is alice: every few seconds she connects to addr (the
// student's relay), pays bob, and reports how it went, until ctx ends.
func runPayer(ctx context.Context, e *env, scheme string, sch schemes.Scheme, addr string) {
	for ctx.Err() == nil {
		if msg := payOnce(ctx, sch, addr); msg != "" {
			fmt.Fprintf(e.out, "alice (%s): %s\n", scheme, msg)
		}
		select {
		case <-ctx.Done():
		case <-time.After(bitflipRetry):
		}
	}
}

// payOnce makes one payment through addr and says what happened, or ""
// when nobody listens there yet.
func payOnce(ctx context.Context, sch schemes.Scheme, addr string) string {
	conn, done, err := joinThrough(ctx, sch, addr, "alice")
	if conn == nil {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	defer done()
	conn.WriteLines([]byte(BitflipOrder + "\n"))
	if err := readUntil(conn, "bank (private): payment processed"); err != nil {
		return "sent " + BitflipOrder + ", then the room closed my connection (" + err.Error() + "): the room detected a tampered record"
	}
	conn.WriteLines([]byte("/quit\n"))
	return "sent " + BitflipOrder + "; the bank confirmed"
}
