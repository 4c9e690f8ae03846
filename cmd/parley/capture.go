package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/schemes"
)

func captureCommand() *cli.Command {
	return &cli.Command{
		Name:  "capture",
		Usage: "see what an eavesdropper sees: record a room's traffic and read it back",
		Description: "Record with 'capture tap' (a relay, no privileges, every OS) or 'capture live'\n" +
			"(Linux, root or CAP_NET_RAW), then read the pcapng with 'capture read' or open it in\n" +
			"Wireshark. Example:\n" +
			"  parley capture tap --listen 127.0.0.1:5051 --upstream 127.0.0.1:5050 -w room.pcapng\n" +
			"  parley capture read room.pcapng",
		Subcommands: []*cli.Command{captureLiveCommand(), captureTapCommand(), captureReadCommand()},
	}
}

func captureLiveCommand() *cli.Command {
	return &cli.Command{
		Name:  "live",
		Usage: "sniff an interface for a room's ports and write pcapng (Linux, needs CAP_NET_RAW)",
		Description: "Captures until Ctrl-C, --duration or --count, then writes the file.\n" +
			"Example: sudo parley capture live --iface lo --port 5050 -w room.pcapng",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "iface", Aliases: []string{"i"}, Value: "lo", Usage: "network interface to sniff"},
			&cli.StringFlag{Name: "port", Aliases: []string{"p"}, Usage: "TCP port(s) to capture, comma-separated (default: every TCP packet)"},
			&cli.StringFlag{Name: "write", Aliases: []string{"w"}, Usage: "pcapng file to write (required)"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long, e.g. 30s"},
			&cli.IntFlag{Name: "count", Usage: "stop after this many packets"},
		},
		Action: captureLive,
	}
}

func captureTapCommand() *cli.Command {
	return &cli.Command{
		Name:  "tap",
		Usage: "relay clients to a room and record both directions as pcapng (no privileges)",
		Description: "Clients connect to --listen; each connection is relayed to --upstream and recorded as\n" +
			"real Ethernet/IP/TCP packets. Ctrl-C writes the file (and FILE.keys.log beside it when\n" +
			"--keylog gives TLS keys). Example:\n" +
			"  parley capture tap --listen 127.0.0.1:5051 --upstream 127.0.0.1:5050 -w room.pcapng",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:5051", Usage: "address clients connect to"},
			&cli.StringFlag{Name: "upstream", Value: "127.0.0.1:5050", Usage: "the room's address"},
			&cli.StringFlag{Name: "write", Aliases: []string{"w"}, Usage: "pcapng file to write (required)"},
			&cli.StringFlag{Name: "keylog", Usage: "the room's TLS key log (NSS format), read as it grows and embedded in the pcapng"},
		},
		Action: captureTap,
	}
}

func captureReadCommand() *cli.Command {
	return &cli.Command{
		Name:      "read",
		Usage:     "print what an eavesdropper sees in a pcap or pcapng file, message by message",
		ArgsUsage: "FILE",
		Description: "Reassembles every TCP stream, recognises its scheme from the bytes and prints the\n" +
			"eavesdropper's view. Example: parley capture read room.pcapng --keylog keys.log",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "scheme", Usage: "dissect every stream as this scheme instead of recognising it"},
			&cli.StringFlag{Name: "port", Aliases: []string{"p"}, Usage: "only streams on these server port(s), comma-separated"},
			&cli.StringFlag{Name: "psk", Usage: "pre-shared key file, to decrypt aes-cbc-hmac and aes-cbc"},
			&cli.StringFlag{Name: "keylog", Usage: "TLS key log (NSS format), to decrypt TLS 1.3 (keys embedded in the pcapng are used too)"},
			&cli.BoolFlag{Name: "no-keys", Usage: "ignore the TLS keys embedded in the pcapng: see it as an eavesdropper without them would"},
			&cli.BoolFlag{Name: "hex", Usage: "add each message's bytes on the wire"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per event and nothing else"},
		},
		Action: captureRead,
	}
}

// parsePorts parses "P[,P...]".
func parsePorts(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var ports []int
	for _, f := range strings.Split(s, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p < 1 || p > 65535 {
			return nil, misuse(fmt.Sprintf("--port %q: %q is not a port from 1 to 65535", s, f), "write ports as --port 5050 or --port 5050,5051")
		}
		ports = append(ports, p)
	}
	return ports, nil
}

func captureLive(c *cli.Context) error {
	if c.Args().Present() {
		return misuse(fmt.Sprintf("capture live takes no arguments, got %q", c.Args().Slice()), "run 'parley capture live --help'")
	}
	out := c.String("write")
	if out == "" {
		return misuse("capture live needs -w FILE", "e.g. parley capture live --iface lo --port 5050 -w room.pcapng")
	}
	if err := checkOutputFile("write", out); err != nil {
		return err
	}
	ports, err := parsePorts(c.String("port"))
	if err != nil {
		return err
	}
	if c.Duration("duration") < 0 || c.Int("count") < 0 {
		return misuse("--duration and --count must not be negative")
	}
	live, err := capture.OpenLive(capture.LiveConfig{Interface: c.String("iface"), Ports: ports})
	switch {
	case errors.Is(err, capture.ErrLiveUnsupported):
		return fail(fmt.Errorf("live capture is Linux-only; use capture tap (this is %s)", runtime.GOOS),
			"parley capture tap --listen 127.0.0.1:5051 --upstream ROOM -w FILE records without privileges on every OS")
	case errors.Is(err, capture.ErrLivePermission):
		exe, _ := os.Executable()
		if exe == "" {
			exe = "parley"
		}
		return fail(err,
			"run it as root, or grant the capability once: sudo setcap cap_net_raw+ep "+exe,
			"or record without privileges: parley capture tap --listen 127.0.0.1:5051 --upstream ROOM -w FILE")
	case err != nil:
		return fail(err, "list interfaces with 'ip link'")
	}
	defer live.Close()
	ctx, stop := signal.NotifyContext(c.Context, syscallInterrupts()...)
	defer stop()
	if d := c.Duration("duration"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	fmt.Fprintf(c.App.ErrWriter, "parley: capturing on %s (%s); Ctrl-C stops and writes %s\n", c.String("iface"), portsText(ports), out)
	if err := live.Capture(ctx, c.Int("count")); err != nil {
		return fail(err)
	}
	st := live.Stats()
	if err := live.WriteFile(out); err != nil {
		return fail(err)
	}
	fmt.Fprintf(c.App.ErrWriter, "parley: wrote %s: %d packets, %d dropped by the kernel; read it with 'parley capture read %s'\n", out, st.Packets, st.Dropped, out)
	return nil
}

func portsText(ports []int) string {
	if len(ports) == 0 {
		return "every TCP port"
	}
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return "TCP port " + strings.Join(s, ",")
}

func captureTap(c *cli.Context) error {
	if c.Args().Present() {
		return misuse(fmt.Sprintf("capture tap takes no arguments, got %q", c.Args().Slice()), "run 'parley capture tap --help'")
	}
	out := c.String("write")
	if out == "" {
		return misuse("capture tap needs -w FILE", "e.g. parley capture tap --listen 127.0.0.1:5051 --upstream 127.0.0.1:5050 -w room.pcapng")
	}
	if err := checkOutputFile("write", out); err != nil {
		return err
	}
	for _, f := range []string{"listen", "upstream"} {
		if err := checkAddr(f, c.String(f)); err != nil {
			return err
		}
	}
	tap, err := capture.NewTap(capture.TapConfig{
		Listen:     c.String("listen"),
		Upstream:   c.String("upstream"),
		KeyLogPath: c.String("keylog"),
		Logger:     newLogger(c),
	})
	if err != nil {
		return fail(err, "choose another address with --listen")
	}
	defer tap.Recorder().Close()
	ctx, stop := signal.NotifyContext(c.Context, syscallInterrupts()...)
	defer stop()
	fmt.Fprintf(c.App.ErrWriter, "parley: tap listening on %s, relaying to %s; Ctrl-C stops and writes %s\n", tap.Addr(), c.String("upstream"), out)
	serveErr := tap.Serve(ctx)
	if err := tap.WriteFile(out); err != nil {
		return fail(err)
	}
	msg := fmt.Sprintf("parley: wrote %s (%d packets)", out, tap.Recorder().Packets())
	if st, err := os.Stat(capture.KeyLogPath(out)); err == nil && c.String("keylog") != "" && st.Size() > 0 {
		msg += " and its TLS key log " + capture.KeyLogPath(out)
	}
	fmt.Fprintf(c.App.ErrWriter, "%s; read it with 'parley capture read %s'\n", msg, out)
	if serveErr != nil {
		return fail(serveErr)
	}
	return nil
}

func captureRead(c *cli.Context) error {
	if c.NArg() != 1 {
		return misuse("capture read needs exactly one FILE", "e.g. parley capture read room.pcapng")
	}
	path := c.Args().First()
	if err := checkInputFile("file", path); err != nil {
		return err
	}
	ports, err := parsePorts(c.String("port"))
	if err != nil {
		return err
	}
	opts := capture.ReadOptions{Scheme: c.String("scheme"), Ports: ports}
	if opts.Scheme != "" && opts.Scheme != "unknown" {
		if _, err := schemes.Describe(opts.Scheme); err != nil {
			return misuse(fmt.Sprintf("--scheme %q is not a scheme", opts.Scheme), "known: "+strings.Join(schemes.Names(), ", ")+", unknown")
		}
	}
	if p := c.String("psk"); p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			return fail(fmt.Errorf("--psk: %w", err))
		}
		if opts.PSK, err = schemes.ParsePSK(data); err != nil {
			return fail(fmt.Errorf("--psk %s: %w", p, err), "make one with 'parley keys gen'")
		}
	}
	opts.IgnoreEmbeddedKeys = c.Bool("no-keys")
	if k := c.String("keylog"); k != "" {
		if opts.KeyLog, err = os.ReadFile(k); err != nil {
			return fail(fmt.Errorf("--keylog: %w", err))
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(c.App.Writer, 64<<10)
	defer w.Flush()
	asJSON, hex := c.Bool("json"), c.Bool("hex")
	events := 0
	err = capture.Read(f, opts, func(e capture.Event) error {
		events++
		if asJSON {
			return capture.WriteJSON(w, e, hex)
		}
		return capture.WriteText(w, e, hex)
	})
	w.Flush()
	switch {
	case errors.Is(err, capture.ErrNotCapture):
		return fail(fmt.Errorf("%s is not a pcap or pcapng capture file", path), "capture files come from 'parley capture tap', 'capture live', tcpdump -w or Wireshark")
	case errors.Is(err, capture.ErrTruncated):
		return fail(fmt.Errorf("%s: %w", path, err), "above is everything before the damage; the capture may still be being written, or was cut short")
	case errors.Is(err, capture.ErrCorrupt):
		return fail(fmt.Errorf("%s: %w", path, err), "above is everything before the damage")
	case err != nil:
		return fail(err)
	}
	if !asJSON && events == 0 {
		fmt.Fprintf(c.App.ErrWriter, "parley: no TCP streams in %s%s\n", path, map[bool]string{true: " on " + portsText(ports), false: ""}[len(ports) > 0])
	}
	return nil
}
