package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/labs/scenario"
	"github.com/parley-edu/parley/schemes"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run every scheme on loopback and show what an eavesdropper sees of each",
		Description: "Starts a room for every scheme on 127.0.0.1, each behind a capture tap, and has alice\n" +
			"and bob hold the same short conversation in each, with one secret line. Then it shows,\n" +
			"scheme by scheme, what the eavesdropper on the wire got of that line, a verdict table,\n" +
			"and one pcapng capture per scheme to open in Wireshark.\n" +
			"No set-up and no privileges: keys and certificates go into a temporary home, unless\n" +
			"--home (or PARLEY_HOME) names one.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Value: "parley-demo", Usage: "folder for the captures"},
			&cli.StringFlag{Name: "message", Value: scenario.DefaultSecret, Usage: "the secret line alice sends in every scheme"},
			&cli.StringFlag{Name: "schemes", Value: strings.Join(schemes.Names(), ","), Usage: "comma-separated schemes to run"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per scheme instead of the tables"},
		},
		Action: demo,
	}
}

// demoResult is one scheme's outcome, as --json prints it.
type demoResult struct {
	Scheme              string  `json:"scheme"`
	EavesdropperReads   bool    `json:"eavesdropper_reads"`
	EavesdropperView    string  `json:"eavesdropper_view"`
	EavesdropperHow     string  `json:"eavesdropper_recovered_by,omitempty"`
	EavesdropperHS      string  `json:"eavesdropper_handshake,omitempty"`
	MalloryRewrites     bool    `json:"mallory_rewrites_undetected"`
	ServerAuthenticated bool    `json:"server_authenticated"`
	ClientAuthenticated bool    `json:"client_authenticated"`
	Insecure            bool    `json:"insecure"`
	WireBytesPerMessage int64   `json:"wire_bytes_per_message"`
	MessageBytes        int     `json:"message_bytes"`
	HandshakeMillis     float64 `json:"handshake_ms"`
	Pcap                string  `json:"pcap"`
	KeyLog              string  `json:"keylog,omitempty"`
	Error               string  `json:"error,omitempty"`
}

func demo(c *cli.Context) error {
	if c.Args().Present() {
		return misuse(fmt.Sprintf("demo takes no arguments, got %q", c.Args().Slice()), "run 'parley demo --help'")
	}
	secret := c.String("message")
	if err := checkSecret(secret); err != nil {
		return err
	}
	names, err := parseSchemeList(c.String("schemes"))
	if err != nil {
		return err
	}
	out := c.String("out")
	if out == "" {
		return misuse("--out needs a folder name")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fail(fmt.Errorf("cannot create the output folder %s: %w", out, err), "choose another folder with --out DIR")
	}

	home := c.String("home") // --home or PARLEY_HOME
	if home == "" {
		home, err = os.MkdirTemp("", "parley-demo-home-")
		if err != nil {
			return fail(fmt.Errorf("cannot create a temporary home: %w", err), "name one with --home DIR")
		}
		defer os.RemoveAll(home)
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(c.Context, time.Minute)
	defer cancel()
	results := make([]*scenario.ConversationResult, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = scenario.RunConversation(ctx, scenario.ConversationOptions{
				Scheme:      name,
				Home:        home,
				CapturePath: scenario.CaptureName(out, name),
				Secret:      secret,
			})
		}()
	}
	wg.Wait()
	took := time.Since(start)

	rows := make([]demoResult, len(names))
	var failed []string
	for i, name := range names {
		rows[i] = newDemoResult(name, results[i], errs[i])
		if errs[i] != nil {
			failed = append(failed, name)
		}
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return fail(err)
			}
		}
	} else {
		p := &demoPrinter{w: c.App.Writer, color: useColor(c.App.Writer)}
		p.print(secret, names, results, rows, out, took)
	}
	if len(failed) > 0 {
		return fail(fmt.Errorf("the demo could not run %s: %w", strings.Join(failed, ", "), errors.Join(errs...)),
			"run 'parley demo --schemes "+strings.Join(failed, ",")+" --log-level debug' to see it alone")
	}
	return nil
}

// checkSecret refuses a secret line that the room would not relay as it is.
func checkSecret(s string) error {
	switch {
	case s == "":
		return misuse("--message is empty", "give the secret line to send, e.g. --message 'the password is swordfish'")
	case !utf8.ValidString(s):
		return misuse("--message is not valid UTF-8")
	case strings.HasPrefix(s, "/") || strings.HasPrefix(s, "."):
		return misuse(fmt.Sprintf("--message %q would be read as a room command", s), "start it with something other than / or .")
	case utf8.RuneCountInString(s) > 1000:
		return misuse("--message is longer than 1000 characters", "a secret line is one short line")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return misuse("--message contains a control character (the room neutralises those)", "use one line of printable text")
		}
	}
	return nil
}

// parseSchemeList parses --schemes / --scheme: comma-separated names, each
// registered, no repeats; order as given.
func parseSchemeList(list string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if _, err := schemes.Describe(n); err != nil {
			return nil, misuse(fmt.Sprintf("%q is not a scheme", n), "choose from: "+strings.Join(schemes.Names(), ", "))
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, misuse("no scheme chosen", "choose from: "+strings.Join(schemes.Names(), ", "))
	}
	return names, nil
}

func newDemoResult(name string, r *scenario.ConversationResult, err error) demoResult {
	props, _ := schemes.Describe(name)
	d := demoResult{
		Scheme:              name,
		MalloryRewrites:     !props.Integrity,
		ServerAuthenticated: props.ServerAuth,
		ClientAuthenticated: props.ClientAuth,
		Insecure:            props.Insecure,
	}
	if r == nil {
		d.Error = err.Error()
		return d
	}
	d.Pcap, d.KeyLog = r.Capture, r.KeyLog
	if err != nil {
		d.Error = err.Error()
		return d
	}
	d.EavesdropperReads = r.EveReads
	d.EavesdropperHow = r.EveRecoveredBy
	d.EavesdropperView = eveView(r)
	d.EavesdropperHS = eveHandshake(r)
	d.WireBytesPerMessage = r.WireBytes
	d.MessageBytes = len(r.Secret)
	d.HandshakeMillis = float64(r.Handshake.Microseconds()) / 1000
	return d
}

// eveView renders, on one line, what the eavesdropper got of the secret's
// record.
func eveView(r *scenario.ConversationResult) string {
	e := r.EveRecord
	if e == nil {
		if r.EveReads {
			return fmt.Sprintf("%q (recovered, record not located)", r.Secret)
		}
		return "the record that carried the line could not be located in the capture"
	}
	switch {
	case e.RecoveredBy == capture.RecoveredCleartext:
		return fmt.Sprintf("%d B readable text: %q", e.WireBytes, e.Plaintext)
	case e.RecoveredBy == capture.RecoveredXORKeyByte || e.RecoveredBy == capture.RecoveredXORBruteForce:
		how := "with that key"
		if e.RecoveredBy == capture.RecoveredXORBruteForce {
			how = "trying all 256 keys"
		}
		return fmt.Sprintf("%d B, %s: %q", e.WireBytes, how, e.Plaintext)
	case e.RecoveredBy != "":
		return fmt.Sprintf("%d B record, recovered (%s): %q", e.WireBytes, e.RecoveredBy, e.Plaintext)
	case e.IV != "":
		tag := "no tag"
		if e.TagBytes > 0 {
			tag = fmt.Sprintf("%d B tag", e.TagBytes)
		}
		size := ""
		if e.PlaintextSize != "" {
			size = " (text: " + strings.Replace(e.PlaintextSize, " bytes", " B", 1) + ")"
		}
		return fmt.Sprintf("%d B: IV %s.., %d B ciphertext, %s%s", e.WireBytes, shorten(e.IV, 8), e.CiphertextBytes, tag, size)
	default:
		text := e.Text
		if i := strings.Index(text, "; "); i >= 0 && strings.HasSuffix(text, ")") {
			text = "encrypted (" + text[i+2:]
		}
		return fmt.Sprintf("%d B %s", e.WireBytes, text)
	}
}

// eveHandshake summarises what the handshake of alice's connection showed
// the eavesdropper.
func eveHandshake(r *scenario.ConversationResult) string {
	var parts []string
	for _, e := range r.EveHandshake {
		switch {
		case e.XORKey != nil:
			parts = append(parts, fmt.Sprintf("XOR key 0x%02x, sent in the clear as 0x%02x", *e.XORKey, (*e.XORKey+schemes.XORKeyOffset)%256))
		case e.ClientNonce != "" || e.ServerNonce != "" || strings.Contains(e.Text, "hello in the clear"):
			if len(parts) == 0 {
				parts = append(parts, "hello and nonces in the clear")
			}
		case e.CipherSuite != "":
			// The version and suite come first, whatever the order of
			// the hellos.
			parts = append([]string{e.TLSVersion + ", " + e.CipherSuite}, parts...)
			if e.TLSVersion == "TLS 1.3" && len(e.Certificates) == 0 {
				parts = append(parts, "cert encrypted")
			}
		case e.SNI != "":
			parts = append(parts, fmt.Sprintf("SNI %q", e.SNI))
		}
		for _, c := range e.Certificates {
			parts = append(parts, "certificate "+c.Subject)
		}
	}
	return strings.Join(parts, ", ")
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// useColor reports whether w is a terminal that wants colour: not with
// NO_COLOR (https://no-color.org) or TERM=dumb.
func useColor(w io.Writer) bool {
	if _, ok := os.LookupEnv("NO_COLOR"); ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

type demoPrinter struct {
	w     io.Writer
	color bool
}

const (
	ansiRed   = "\x1b[31m"
	ansiGreen = "\x1b[32m"
	ansiBold  = "\x1b[1m"
	ansiDim   = "\x1b[2m"
	ansiReset = "\x1b[0m"
)

func (p *demoPrinter) paint(code, s string) string {
	if !p.color {
		return s
	}
	return code + s + ansiReset
}

// yes paints a verdict: bad is red when true, good green.
func (p *demoPrinter) verdict(v, trueIsBad bool, width int) string {
	s := "no"
	if v {
		s = "YES"
	}
	pad := strings.Repeat(" ", max(0, width-len(s)))
	if v == trueIsBad {
		return p.paint(ansiRed, s) + pad
	}
	return p.paint(ansiGreen, s) + pad
}

func (p *demoPrinter) print(secret string, names []string, results []*scenario.ConversationResult, rows []demoResult, out string, took time.Duration) {
	w := p.w
	fmt.Fprintf(w, "%s\n", p.paint(ansiBold, "parley demo: one conversation over every scheme, as an eavesdropper saw it"))
	fmt.Fprintf(w, "alice and bob chat in %d rooms on 127.0.0.1; each connection crosses a tap that\n", len(names))
	fmt.Fprintf(w, "records it. alice's secret line: %q\n\n", secret)

	fmt.Fprintf(w, "%s\n", p.paint(ansiBold, "What Eve, on the wire, got of that line"))
	for i, r := range rows {
		fmt.Fprintf(w, "%s\n", p.paint(ansiBold, r.Scheme))
		if r.Error != "" && results[i] == nil || r.Error != "" && r.EavesdropperView == "" {
			fmt.Fprintf(w, "  %s %s\n", p.paint(ansiRed, "could not run:"), r.Error)
			continue
		}
		if r.EavesdropperHS != "" {
			fmt.Fprintf(w, "  handshake  %s\n", wrapTo(r.EavesdropperHS, 78-13))
		}
		view := wrapTo(r.EavesdropperView, 78-13)
		if r.EavesdropperReads {
			view = p.paint(ansiRed, view)
		}
		fmt.Fprintf(w, "  Eve saw    %s\n", view)
	}

	fmt.Fprintf(w, "\n%s\n", p.paint(ansiBold, "Verdicts (Eve reads: from the capture itself; the rest: the schemes' properties)"))
	fmt.Fprintf(w, "%-14s %-6s %-9s %-7s %-7s %7s  %s\n", "", "Eve", "Mallory", "server", "client", "wire B", "hand-")
	fmt.Fprintf(w, "%-14s %-6s %-9s %-7s %-7s %7s  %s\n", "scheme", "reads", "rewrites", "authed", "authed", "per msg", "shake")
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(w, "%-14s %s\n", r.Scheme, p.paint(ansiRed, "could not run (see above)"))
			continue
		}
		fmt.Fprintf(w, "%-14s %s %s %s %s %7d  %s\n", r.Scheme,
			p.verdict(r.EavesdropperReads, true, 6),
			p.verdict(r.MalloryRewrites, true, 9),
			p.verdict(r.ServerAuthenticated, false, 7),
			p.verdict(r.ClientAuthenticated, false, 7),
			r.WireBytesPerMessage, fmtMillis(r.HandshakeMillis))
	}
	fmt.Fprintf(w, "wire B per msg: what alice's connection sent for the %d-byte line (mtls: DATA\n", len(secret))
	fmt.Fprintf(w, "and PASS); handshake: connect + scheme handshake through the tap, on loopback.\n")
	var weak []string
	for _, r := range rows {
		if r.Insecure {
			weak = append(weak, r.Scheme)
		}
	}
	if len(weak) > 0 {
		fmt.Fprintf(w, "%s\n", p.paint(ansiRed, insecureSentence(weak)))
	}

	fmt.Fprintf(w, "\n%s\n", p.paint(ansiBold, "Captures (pcapng; the TLS ones carry their keys)"))
	var tlsPcap, otherPcap string
	for _, r := range rows {
		if r.Pcap == "" {
			continue
		}
		line := "  " + r.Pcap
		if r.KeyLog != "" {
			line += "   keys: " + filepath.Base(r.KeyLog)
			if tlsPcap == "" {
				tlsPcap = r.Pcap
			}
		} else if otherPcap == "" || r.EavesdropperReads && r.Scheme != "plain" {
			otherPcap = r.Pcap
		}
		fmt.Fprintln(w, line)
	}
	if tlsPcap == "" {
		tlsPcap = otherPcap
	}
	if otherPcap == "" {
		otherPcap = tlsPcap
	}
	if tlsPcap != "" {
		fmt.Fprintf(w, "Open one with:  wireshark %s\n", tlsPcap)
		fmt.Fprintf(w, "                tshark -r %s\n", tlsPcap)
		fmt.Fprintf(w, "                parley capture read %s\n", otherPcap)
	}
	fmt.Fprintf(w, "%s\n", p.paint(ansiDim, fmt.Sprintf("done in %s; captures in %s", took.Round(time.Millisecond), out)))
}

func fmtMillis(ms float64) string {
	if ms < 10 {
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// wrapTo shortens s to n runes, marking the cut.
func wrapTo(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func insecureSentence(weak []string) string {
	if len(weak) == 1 {
		return weak[0] + " is INSECURE on purpose: never use it for real."
	}
	return joinAnd(weak) + " are INSECURE on purpose: never use them for real."
}
