package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/cmd/parley/internal/tui"
	"github.com/parley-edu/parley/room"
	"github.com/parley-edu/parley/schemes"
)

func joinCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "server", Value: "127.0.0.1:5050", Usage: "the room's address"},
		&cli.StringFlag{Name: "name", Usage: "your name in the room (1-32 letters, digits, _ - .)"},
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "time allowed to connect, handshake and join"},
		&cli.StringFlag{Name: "password-file", Usage: "for a room that asks for a password: the file whose first line is it (or set " + passwordEnv + ")"},
		&cli.BoolFlag{Name: "tui", Usage: "the full-screen interface with the wire pane (the default on a terminal)"},
		&cli.BoolFlag{Name: "plain-ui", Usage: "the line-by-line interface, even on a terminal"},
	}
	return &cli.Command{
		Name:  "join",
		Usage: "join a chat room",
		Description: "On a terminal, join opens a full-screen interface: the conversation, the members, and a\n" +
			"wire pane (F2) with the exact bytes of the last message each way and what an eavesdropper\n" +
			"gets from them. /help lists the room's commands and /quit (or Ctrl-C) leaves.\n" +
			"--plain-ui keeps to lines. With stdin piped, every line is sent, then /quit at the end:\n" +
			"  echo hello | parley join --name alice",
		Flags:  append(flags, schemeFlags(false)...),
		Action: joinAction,
	}
}

// joinSession is one member's connection, as the join command sees it.
type joinSession struct {
	c        *cli.Context
	addr     string
	sch      schemes.Scheme
	conn     schemes.Conn
	out      io.Writer // server lines go here, one write per line
	password string    // from --password-file or $PARLEY_PASSWORD
	// askPassword asks for the password without echo; nil when there is no
	// terminal to ask on.
	askPassword func(prompt string) (string, error)
}

func joinAction(c *cli.Context) error {
	if c.Args().Present() {
		return misuse(fmt.Sprintf("join takes no arguments, got %q", c.Args().Slice()), "give the name with --name NAME")
	}
	addr := c.String("server")
	if err := checkAddr("server", addr); err != nil {
		return err
	}
	if c.Duration("timeout") <= 0 {
		return misuse("--timeout must be positive, e.g. 10s")
	}
	interactive := term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd())) && c.App.Writer == os.Stdout
	switch {
	case c.Bool("tui") && c.Bool("plain-ui"):
		return misuse("--tui and --plain-ui exclude each other", "choose one of them")
	case c.Bool("tui") && !interactive:
		return misuse("--tui needs a terminal on stdin and stdout", "drop --tui: with stdin piped, join sends every line it reads")
	}
	name := c.String("name")
	if name == "" && !interactive {
		return misuse("join needs --name when stdin is not a terminal", "add --name NAME")
	}
	password, err := passwordFromFlags(c)
	if err != nil {
		return err
	}
	sch, err := schemeFromFlags(c, false, addr)
	if err != nil {
		return err
	}
	if p := sch.Properties(); p.Insecure {
		fmt.Fprintf(c.App.ErrWriter, "parley: warning: %s\n", p.Warning)
	}
	s := &joinSession{c: c, addr: addr, sch: sch, out: c.App.Writer, password: password}
	if interactive && !c.Bool("plain-ui") {
		return s.tui(name)
	}
	greeting, err := s.connect(nil)
	if err != nil {
		return err
	}
	defer s.conn.Close()
	for _, g := range greeting {
		s.println(g)
	}
	if interactive {
		return s.interactive(name)
	}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		s.askPassword = func(prompt string) (string, error) {
			fmt.Fprint(c.App.ErrWriter, prompt)
			defer fmt.Fprintln(c.App.ErrWriter)
			pw, err := term.ReadPassword(fd)
			return string(pw), err
		}
	}
	return s.piped(name, os.Stdin)
}

// passwordEnv names the environment variable that holds the password.
const passwordEnv = "PARLEY_PASSWORD"

// passwordFromFlags returns the password from --password-file (its first
// line) or $PARLEY_PASSWORD, or "" when neither is given.
func passwordFromFlags(c *cli.Context) (string, error) {
	from := "$" + passwordEnv
	pw := os.Getenv(passwordEnv)
	if f := c.String("password-file"); f != "" {
		if err := checkInputFile("password-file", f); err != nil {
			return "", err
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return "", fail(fmt.Errorf("--password-file: cannot read %s: %w", f, err))
		}
		first, _, _ := strings.Cut(string(data), "\n")
		from, pw = "--password-file "+f, strings.TrimSuffix(first, "\r")
		if pw == "" {
			return "", fail(fmt.Errorf("%s: the first line is empty", from), "write the password on the file's first line")
		}
	}
	if err := checkPassword(pw); err != nil {
		return "", fail(fmt.Errorf("%s: %w", from, err))
	}
	return pw, nil
}

func checkPassword(pw string) error {
	if len(pw) > room.MaxPassword {
		return fmt.Errorf("the password is %d bytes long; the room takes at most %d", len(pw), room.MaxPassword)
	}
	return nil
}

// connect dials, runs the scheme's handshake over the connection (wrapped
// by wrap, if not nil) and reads the greeting, which it returns.
func (s *joinSession) connect(wrap func(net.Conn) net.Conn) ([]string, error) {
	timeout := s.c.Duration("timeout")
	nc, err := net.DialTimeout("tcp", s.addr, timeout)
	if err != nil {
		return nil, dialError(s.addr, err)
	}
	nc.SetDeadline(time.Now().Add(timeout))
	var under net.Conn = nc
	if wrap != nil {
		under = wrap(nc)
	}
	conn, err := s.sch.Client(under)
	if err != nil {
		nc.Close()
		return nil, handshakeError(s.addr, s.sch.Name(), err)
	}
	s.conn = conn
	// The greeting: "* parley room NAME (scheme S)", perhaps a warning,
	// and the request for a name.
	var greeting []string
	for {
		line, err := conn.ReadMessage()
		var se *schemes.SignatureError
		if errors.As(err, &se) {
			conn.Close()
			return nil, fail(fmt.Errorf("the room's greeting failed its signature check (%w), so our signing key is not the one the room derives for our certificate's name", err),
				"use the NAME.sigkey issued with your certificate (--sigkey), or ask for a new one with 'parley certs issue client NAME'")
		}
		if err != nil {
			conn.Close()
			if len(greeting) == 0 {
				return nil, fail(fmt.Errorf("the server at %s closed the connection without a greeting: %w", s.addr, err),
					"it may not be a parley room, or it may use another scheme: check --server and --scheme")
			}
			return nil, fail(fmt.Errorf("the server at %s closed the connection during the greeting: %w", s.addr, err))
		}
		text := string(line)
		if len(greeting) == 0 && !strings.HasPrefix(text, "* parley room ") {
			conn.Close()
			return nil, fail(fmt.Errorf("the server at %s is not a parley room (it said %q)", s.addr, preview(text)),
				"check --server and --scheme")
		}
		greeting = append(greeting, text)
		if strings.HasPrefix(text, "! ") {
			conn.Close()
			return nil, fail(fmt.Errorf("the room refused us: %s", strings.TrimPrefix(text, "! ")))
		}
		if strings.HasPrefix(text, "* choose a name") {
			return greeting, nil
		}
	}
}

// sendName sends name and reads the room's answer, giving the password
// when the room asks for one (see askPassword). It returns the error line
// when the name was refused.
func (s *joinSession) sendName(name string) (refused string, err error) {
	if err := s.conn.WriteLines([]byte(name + "\n")); err != nil {
		return "", fail(fmt.Errorf("connection to %s lost while joining: %w", s.addr, err))
	}
	for {
		line, err := s.conn.ReadMessage()
		if err != nil {
			return "", fail(fmt.Errorf("the server at %s closed the connection while we joined: %w", s.addr, err))
		}
		text := string(line)
		s.println(text)
		switch {
		case strings.HasPrefix(text, "* welcome, "):
			s.conn.SetReadDeadline(time.Time{})
			s.conn.SetWriteDeadline(time.Time{})
			return "", nil
		case strings.HasPrefix(text, "! login failed"):
			return "", loginRefused(text)
		case strings.HasPrefix(text, "! "):
			return strings.TrimPrefix(text, "! "), nil
		case strings.HasPrefix(text, room.PasswordPrompt):
			if err := s.sendPassword(name); err != nil {
				return "", err
			}
		}
	}
}

// sendPassword answers the room's request for a password: from
// --password-file or $PARLEY_PASSWORD, else asked without echo on the
// terminal. It never prints the password.
func (s *joinSession) sendPassword(name string) error {
	pw := s.password
	if pw == "" {
		if s.askPassword == nil {
			return fail(fmt.Errorf("the room asks for %s's password and there is no terminal to ask on", name),
				"use --password-file FILE or "+passwordEnv)
		}
		// The user may take longer than --timeout to type.
		setDeadline(s.conn, time.Time{})
		var err error
		if pw, err = s.askPassword(fmt.Sprintf("password for %s: ", name)); err != nil {
			return fail(fmt.Errorf("no password: %w", err))
		}
		if err := checkPassword(pw); err != nil {
			return fail(err)
		}
		setDeadline(s.conn, time.Now().Add(s.c.Duration("timeout")))
	}
	if p := s.sch.Properties(); p.Insecure {
		fmt.Fprintf(s.c.App.ErrWriter, "parley: warning: %s is insecure: the password crosses the wire readable by anyone watching\n", p.Name)
	}
	if err := s.conn.WriteLines([]byte(pw + "\n")); err != nil {
		return fail(fmt.Errorf("connection to %s lost while logging in: %w", s.addr, err))
	}
	return nil
}

func setDeadline(c schemes.Conn, t time.Time) {
	c.SetReadDeadline(t)
	c.SetWriteDeadline(t)
}

// loginRefused reports the room's "! login failed..." line.
func loginRefused(line string) error {
	return fail(fmt.Errorf("the room refused the login: %s", strings.TrimPrefix(line, "! ")),
		"check the password (--password-file FILE or "+passwordEnv+"), or ask the room's host for an account")
}

// tui runs the full-screen client.
func (s *joinSession) tui(name string) error {
	var wire *capture.WireConn
	greeting, err := s.connect(func(nc net.Conn) net.Conn {
		wire = capture.NewWireConn(nc, s.sch.Name())
		return wire
	})
	if err != nil {
		return err
	}
	// From here on the user sets the pace: typing a name or a password
	// may take longer than --timeout.
	setDeadline(s.conn, time.Time{})
	err = tui.Run(tui.Config{
		Conn:     s.conn,
		Wire:     wire,
		Scheme:   s.sch.Properties(),
		Greeting: greeting,
		Name:     name,
		Password: s.password,
		NoColor:  os.Getenv("NO_COLOR") != "",
	})
	var ce *tui.ClosedError
	var le *tui.LoginError
	switch {
	case errors.As(err, &le):
		return loginRefused(le.Line)
	case errors.As(err, &ce):
		return s.ended(ce.Last, ce.Err)
	case err != nil:
		return fail(err, "use --plain-ui for the line-by-line interface")
	}
	return nil
}

// piped sends every line of in, then /quit, and prints what the room sends
// until it says goodbye.
func (s *joinSession) piped(name string, in io.Reader) error {
	refused, err := s.sendName(name)
	if err != nil {
		return err
	}
	if refused != "" {
		return fail(fmt.Errorf("the room refused the name %q: %s", name, refused), "choose another --name")
	}
	done := make(chan error, 1)
	go func() { done <- s.receive(nil) }()

	// Stdin is read in its own goroutine so that the room closing the
	// connection ends join at once. That goroutine may stay blocked in a
	// read of stdin; it ends with the process.
	lines := make(chan []byte)
	stdinErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 4096), s.c.Int("max-line")+1)
		for sc.Scan() {
			lines <- append(slices.Clone(sc.Bytes()), '\n')
		}
		stdinErr <- sc.Err()
		close(lines)
	}()
	for {
		select {
		case err := <-done:
			return err
		case line, ok := <-lines:
			if ok {
				if err := s.conn.WriteLines(line); err != nil {
					if !s.nonFatal(err) {
						return <-done // the receiver says why
					}
				}
				continue
			}
		}
		break
	}
	if err := <-stdinErr; err != nil {
		fmt.Fprintf(s.c.App.ErrWriter, "parley: warning: stopped reading stdin: %v\n", err)
	}
	s.conn.WriteLines([]byte("/quit\n"))
	select {
	case err := <-done:
		return err
	case <-time.After(s.c.Duration("timeout")):
		return fail(fmt.Errorf("the room did not say goodbye within %s", s.c.Duration("timeout")))
	}
}

// receive prints server lines until the connection ends. It returns nil
// when the room said goodbye, and an error saying why otherwise. print, if
// not nil, replaces s.println.
func (s *joinSession) receive(print func(string)) error {
	if print == nil {
		print = s.println
	}
	var last string
	for {
		line, err := s.conn.ReadMessage()
		if err != nil {
			if errors.Is(err, schemes.ErrMessageTooLong) {
				print("! (parley: a line from the server was too long and was skipped)")
				continue
			}
			var se *schemes.SignatureError
			if errors.As(err, &se) {
				print("! WARNING: the next line failed its signature check; it may have been forged or altered in transit:")
				print("! [UNVERIFIED] " + se.Line)
				continue
			}
			return s.ended(last, err)
		}
		last = string(line)
		print(last)
	}
}

// ended explains the end of the connection from the room's last line and
// the error that ended reading; it returns nil when the room said goodbye.
func (s *joinSession) ended(last string, err error) error {
	switch {
	case strings.HasPrefix(last, "* bye, "):
		return nil
	case last == "* server shutting down":
		return fail(errors.New("the room shut down"))
	case strings.HasPrefix(last, "! closing your connection: "):
		return fail(fmt.Errorf("the room closed the connection: %s", strings.TrimPrefix(last, "! closing your connection: ")))
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fail(fmt.Errorf("the server at %s closed the connection", s.addr))
	}
	return fail(fmt.Errorf("connection to %s lost: %w", s.addr, err))
}

// nonFatal reports (and prints) a write error after which the connection
// stays usable: a message the room refused, or, in mtls, a receipt that did
// not match our signature.
func (s *joinSession) nonFatal(err error) bool {
	var se *schemes.SignatureError
	var re *schemes.ReplyError
	switch {
	case errors.As(err, &se):
		s.println("! WARNING: the room's receipt did not match our signature; the message was not delivered: " + se.Line)
	case errors.As(err, &re):
		s.println(fmt.Sprintf("! the room refused the message: %d %s", re.Code, re.Text))
	case errors.Is(err, schemes.ErrMessageTooLong):
		s.println("! that line is too long for the room; not sent")
	default:
		return false
	}
	return true
}

func (s *joinSession) println(line string) {
	var b bytes.Buffer
	b.Grow(len(line) + 1)
	room.AppendSanitized(&b, []byte(line)) // a hostile server must not drive our terminal
	b.WriteByte('\n')
	s.out.Write(b.Bytes())
}

// interactive runs the terminal client: incoming lines are printed above
// the input line, which is redrawn with what the user has typed so far.
func (s *joinSession) interactive(name string) error {
	fd := int(os.Stdin.Fd())
	state, err := term.MakeRaw(fd)
	if err != nil {
		return fail(fmt.Errorf("cannot put the terminal in raw mode: %w", err))
	}
	defer term.Restore(fd, state)
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{os.Stdin, os.Stdout}, "")
	if w, h, err := term.GetSize(fd); err == nil {
		t.SetSize(w, h)
	}
	s.out = t
	s.askPassword = t.ReadPassword

	for {
		if name == "" {
			t.SetPrompt("name> ")
			line, err := t.ReadLine()
			if err != nil {
				return nil
			}
			name = strings.TrimSpace(line)
			continue
		}
		refused, err := s.sendName(name)
		if err != nil {
			return err
		}
		if refused == "" {
			break
		}
		name = ""
	}
	t.SetPrompt(name + "> ")
	done := make(chan error, 1)
	go func() { done <- s.receive(nil) }()
	lines := make(chan string)
	go func() {
		defer close(lines)
		for {
			line, err := t.ReadLine()
			if err != nil {
				return
			}
			lines <- line
		}
	}()
	for {
		select {
		case err := <-done:
			return err
		case line, ok := <-lines:
			if !ok {
				s.conn.WriteLines([]byte("/quit\n"))
				select {
				case err := <-done:
					return err
				case <-time.After(s.c.Duration("timeout")):
					return nil
				}
			}
			if strings.HasPrefix(line, "/nick ") {
				t.SetPrompt(strings.TrimSpace(strings.TrimPrefix(line, "/nick ")) + "> ")
			}
			if err := s.conn.WriteLines([]byte(strings.ReplaceAll(line, "\n", " ") + "\n")); err != nil && !s.nonFatal(err) {
				return <-done
			}
		}
	}
}

func preview(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// certHints are the next steps for a certificate that did not verify.
func certHints(ce *schemes.CertificateError) []string {
	switch ce.Reason {
	case schemes.ReasonNoClientCert:
		return []string{"the room requires a client certificate: run 'parley certs issue client NAME' and join with --name NAME (or --cert/--key)"}
	case schemes.ReasonUnknownAuthority, schemes.ReasonSelfSigned:
		if ce.Remote {
			return []string{"the room does not trust the authority that signed our certificate; use one issued by the room's lab CA"}
		}
		return []string{"if this is your lab's room, pass its CA with --ca FILE (or run 'parley certs init' in the same --home)",
			"if it should be trusted already, someone may be intercepting the connection: do not skip verification"}
	case schemes.ReasonWrongHost:
		return []string{"connect with a name the certificate covers, or reissue it: parley certs issue server --host HOST,..."}
	case schemes.ReasonExpired, schemes.ReasonNotYetValid:
		return []string{"the certificate is outside its validity; reissue it with 'parley certs issue', or check this machine's clock"}
	case schemes.ReasonNoClientAuth, schemes.ReasonNoServerAuth:
		return []string{"the certificate is not issued for this use (extended key usage); reissue it with 'parley certs issue'"}
	}
	return nil
}

// dialError explains a failed connection in one sentence.
func dialError(addr string, err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fail(fmt.Errorf("nothing is listening on %s (connection refused)", addr),
			"start a room with 'parley serve', or check --server")
	case errors.Is(err, syscall.ECONNRESET):
		return fail(fmt.Errorf("%s reset the connection", addr))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fail(fmt.Errorf("no answer from %s: %w", addr, err), "check --server and that the room is reachable")
	}
	return fail(fmt.Errorf("cannot connect to %s: %w", addr, err), "check --server")
}

// handshakeError explains a failed scheme handshake.
func handshakeError(addr, scheme string, err error) error {
	if errors.Is(err, schemes.ErrWrongKey) {
		return fail(fmt.Errorf("%s handshake with %s failed: %w", scheme, addr, err),
			"ask the room's host for its key file (--psk FILE) or its passphrase (--passphrase)")
	}
	var ce *schemes.CertificateError
	if errors.As(err, &ce) {
		return fail(fmt.Errorf("%s handshake with %s failed: %w", scheme, addr, err), certHints(ce)...)
	}
	var mm *schemes.MismatchError
	if errors.As(err, &mm) {
		return fail(fmt.Errorf("the server at %s does not speak %s: %w", addr, scheme, err),
			"use the room's scheme with --scheme")
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) {
		return fail(fmt.Errorf("the server at %s closed the connection during the %s handshake: %w", addr, scheme, err),
			"it may not be a parley room, or it may use another scheme: check --server and --scheme")
	}
	return fail(fmt.Errorf("%s handshake with %s failed: %w", scheme, addr, err))
}
