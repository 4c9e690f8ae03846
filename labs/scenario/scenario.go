// Package scenario runs a parley room on loopback for the demo, the bench
// and the labs: a room for one scheme on 127.0.0.1 with ephemeral
// credentials, optionally behind a capture tap that records what an
// eavesdropper on the wire sees, and scripted bot members that join with the
// right client configuration, say lines and collect what they receive.
//
// A Scenario owns every goroutine it starts (the room's, the tap's, each
// bot's reader); Close ends them all and waits for them. The package prints
// nothing: it returns values and errors, and the caller decides what to show.
//
// Credentials live in a parley home folder (Options.Home, or a temporary one
// that Close removes): the lab CA, the room signing secret and the
// certificates in HOME/certs, as `parley certs` lays them out, so that a
// student can join a lab's room with the same files. Existing valid
// certificates are reused, never overwritten; missing or unusable ones are
// issued. Scenarios in one process share the credential set-up through a
// lock; two processes setting up the same home at once may race, as the
// certs package says.
package scenario

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/room"
	"github.com/parley-edu/parley/schemes"
)

// ServerName is the name clients of the TLS schemes ask for (SNI) and
// verify the room's certificate against. The room listens on 127.0.0.1,
// which the server certificate covers too.
const ServerName = "localhost"

// DefaultTimeout bounds each handshake, join and wait of a scenario unless
// Options.Timeout says otherwise.
const DefaultTimeout = 10 * time.Second

// Options configure a Scenario. Only Scheme is required.
type Options struct {
	// Scheme is the room's scheme: plain, xor, aes-cbc, aes-cbc-hmac, tls
	// or mtls.
	Scheme string
	// Home is the parley home that holds the credentials (certificates in
	// Home/certs). Empty means a temporary folder that Close removes.
	Home string
	// RoomName is the room's name; empty means room.DefaultName.
	RoomName string

	// Tap puts a capture.Tap in front of the room: Addr is then the tap's
	// address and everything bots send crosses it and is recorded.
	Tap bool
	// CapturePath, with Tap, is where Close writes the capture (pcapng,
	// TLS keys embedded) and, when TLS keys are known, the key log beside it
	// at capture.KeyLogPath(CapturePath).
	CapturePath string
	// KeyLog, when set, also receives the TLS secrets of the room (NSS key
	// log format).
	KeyLog io.Writer

	// PSK is the pre-shared key of aes-cbc-hmac and aes-cbc; nil draws a
	// random one.
	PSK []byte
	// Configure, when set, adjusts the scheme configuration of the server
	// and of every client (server tells which) after the scenario has
	// filled in the credentials: TLS 1.2, a fixed XOR key, the padding
	// oracle, a smaller message limit.
	Configure func(cfg *schemes.Config, server bool)

	// Passwords, when set, makes the room ask for a password after the
	// name (room.Config.Accounts): these are its accounts, name to
	// password, and each bot logs in with its own.
	Passwords map[string]string
	// History, when set, keeps the room's chat lines (room.Config.History).
	History room.History

	// Rate and Burst are the room's per-member rate limit (room.Config);
	// zero takes the room's defaults and a negative Rate disables it.
	Rate  float64
	Burst int

	// Timeout bounds each handshake, join and wait; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Logger receives the room's and the tap's logs; nil discards them.
	Logger *slog.Logger
}

// A Scenario is one running room with its credentials, its optional tap and
// its bots. Its methods are safe for concurrent use.
type Scenario struct {
	opts    Options
	creds   *Credentials
	server  schemes.Scheme
	room    *room.Room
	roomLn  net.Listener
	tap     *capture.Tap
	tmpHome string // removed by Close

	keyMu  sync.Mutex
	keyLog bytes.Buffer // every TLS secret, NSS format

	wg       sync.WaitGroup // the room's and the tap's Serve
	serveErr chan error     // first unexpected Serve error

	mu     sync.Mutex
	bots   []*Bot
	closed bool
	cerr   error
}

// Start sets up credentials for opts.Scheme, starts the room on
// 127.0.0.1:0 and, with opts.Tap, a tap in front of it. ctx bounds the
// set-up only; Close ends the scenario. On error nothing is left running.
func Start(ctx context.Context, opts Options) (s *Scenario, err error) {
	if _, err := schemes.Describe(opts.Scheme); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CapturePath != "" && !opts.Tap {
		return nil, errors.New("scenario: CapturePath needs Tap")
	}
	s = &Scenario{opts: opts, serveErr: make(chan error, 2)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	home := opts.Home
	if home == "" {
		home, err = os.MkdirTemp("", "parley-scenario-")
		if err != nil {
			return s, fmt.Errorf("scenario: failed to create a temporary home: %w", err)
		}
		s.tmpHome = home
	}
	s.creds, err = newCredentials(home, opts.Scheme, opts.PSK)
	if err != nil {
		return s, err
	}
	cfg := s.creds.serverConfig(opts.Scheme)
	cfg.KeyLog = keyLogWriter{s}
	if opts.Configure != nil {
		opts.Configure(&cfg, true)
	}
	s.server, err = schemes.New(opts.Scheme, cfg)
	if err != nil {
		return s, fmt.Errorf("scenario: %w", err)
	}
	rcfg := room.Config{
		Name:             opts.RoomName,
		Scheme:           s.server,
		Rate:             opts.Rate,
		Burst:            opts.Burst,
		HandshakeTimeout: opts.Timeout,
		History:          opts.History,
		Logger:           opts.Logger,
	}
	if opts.Passwords != nil {
		rcfg.Accounts = passwords(opts.Passwords)
	}
	s.room, err = room.New(rcfg)
	if err != nil {
		return s, fmt.Errorf("scenario: %w", err)
	}
	s.roomLn, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return s, fmt.Errorf("scenario: failed to listen for the room: %w", err)
	}
	if opts.Tap {
		s.tap, err = capture.NewTap(capture.TapConfig{
			Listen:   "127.0.0.1:0",
			Upstream: s.roomLn.Addr().String(),
			Logger:   opts.Logger,
		})
		if err != nil {
			s.roomLn.Close()
			return s, fmt.Errorf("scenario: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.tap.Serve(context.Background()); err != nil {
				s.serveErr <- err
			}
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.room.Serve(s.roomLn); err != nil && !errors.Is(err, room.ErrClosed) {
			s.serveErr <- err
		}
	}()
	return s, nil
}

// keyLogWriter collects the room's TLS secrets, hands them to the tap's
// recorder and to Options.KeyLog. crypto/tls writes one whole line per call.
type keyLogWriter struct{ s *Scenario }

func (w keyLogWriter) Write(p []byte) (int, error) {
	s := w.s
	s.keyMu.Lock()
	s.keyLog.Write(p)
	s.keyMu.Unlock()
	if s.tap != nil {
		s.tap.Recorder().AddKeyLog(p)
	}
	if s.opts.KeyLog != nil {
		return s.opts.KeyLog.Write(p)
	}
	return len(p), nil
}

// Scheme returns the scenario's scheme name.
func (s *Scenario) Scheme() string { return s.opts.Scheme }

// Properties returns what the scenario's scheme guarantees and leaks.
func (s *Scenario) Properties() schemes.Properties { return s.server.Properties() }

// Addr returns the address clients connect to: the tap's when tapped, the
// room's otherwise.
func (s *Scenario) Addr() string {
	if s.tap != nil {
		return s.tap.Addr().String()
	}
	return s.roomLn.Addr().String()
}

// RoomAddr returns the room's own address, behind the tap if there is one.
func (s *Scenario) RoomAddr() string { return s.roomLn.Addr().String() }

// Room returns the running room.
func (s *Scenario) Room() *room.Room { return s.room }

// Tap returns the tap, or nil without Options.Tap.
func (s *Scenario) Tap() *capture.Tap { return s.tap }

// Credentials returns the scenario's keys and certificates.
func (s *Scenario) Credentials() *Credentials { return s.creds }

// Home returns the parley home that holds the credentials.
func (s *Scenario) Home() string { return s.creds.Home }

// KeyLog returns the TLS secrets logged so far, in NSS key log format.
func (s *Scenario) KeyLog() []byte {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	return bytes.Clone(s.keyLog.Bytes())
}

// ClientScheme returns the scheme a client named name uses to join: for
// mtls it issues (or reuses) name's certificate and signing key.
func (s *Scenario) ClientScheme(name string) (schemes.Scheme, error) {
	cfg, err := s.creds.clientConfig(s.opts.Scheme, name)
	if err != nil {
		return nil, err
	}
	if s.opts.Configure != nil {
		s.opts.Configure(&cfg, false)
	}
	sch, err := schemes.New(s.opts.Scheme, cfg)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	return sch, nil
}

// Close makes every bot still in the room leave, shuts the room and the tap
// down, waits for every goroutine, writes the capture to
// Options.CapturePath and removes a temporary home. It returns the first
// error, and the same error again when called more than once.
func (s *Scenario) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.cerr
	}
	s.closed = true
	bots := s.bots
	s.mu.Unlock()

	var errs []error
	for _, b := range bots {
		b.Close()
	}
	if s.room != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		if err := s.room.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("scenario: room shutdown: %w", err))
		}
		cancel()
	}
	if s.tap != nil {
		// The room has closed its side of every relayed connection; the
		// tap records those closes, then stops.
		s.tap.Close()
	}
	s.wg.Wait()
	close(s.serveErr)
	for err := range s.serveErr {
		errs = append(errs, err)
	}
	if s.tap != nil {
		if s.opts.CapturePath != "" {
			if err := s.tap.WriteFile(s.opts.CapturePath); err != nil {
				errs = append(errs, err)
			}
		}
		s.tap.Recorder().Close()
	}
	if s.tmpHome != "" {
		if err := os.RemoveAll(s.tmpHome); err != nil {
			errs = append(errs, fmt.Errorf("scenario: failed to remove the temporary home: %w", err))
		}
	}
	s.mu.Lock()
	s.cerr = errors.Join(errs...)
	s.mu.Unlock()
	return s.cerr
}

func (s *Scenario) addBot(b *Bot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("scenario: closed")
	}
	s.bots = append(s.bots, b)
	return nil
}

// randomPSK draws a pre-shared key from crypto/rand.
func randomPSK() ([]byte, error) {
	k := make([]byte, schemes.PSKLen)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("scenario: failed to draw a pre-shared key: %w", err)
	}
	return k, nil
}
