package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/parley-edu/parley/room"
)

func serveCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "listen", Value: "127.0.0.1:5050", Usage: "address to listen on (:5050 for every address, [::1]:5050 for IPv6)"},
		&cli.StringFlag{Name: "room", Value: room.DefaultName, Usage: "the room's name"},
		&cli.IntFlag{Name: "max-clients", Value: room.DefaultMaxMembers, Usage: "most members at once; later ones are told the room is full"},
		&cli.Float64Flag{Name: "rate", Value: room.DefaultRate, Usage: "lines per second a member may send, sustained (0 turns the limit off)"},
		&cli.IntFlag{Name: "burst", Value: room.DefaultBurst, Usage: "lines a member may send at once before --rate applies"},
		&cli.DurationFlag{Name: "handshake-timeout", Value: room.DefaultHandshakeTimeout, Usage: "time a new connection has for the handshake and its name"},
	}
	return &cli.Command{
		Name:  "serve",
		Usage: "run a chat room",
		Description: "Runs a room until Ctrl-C. Members join with 'parley join' (or nc, for plain).\n" +
			"Example: parley serve --scheme plain --listen 127.0.0.1:5050\n" +
			"With --auth, members log in with an account ('parley users add NAME');\n" +
			"with --history, the room keeps its messages, sealed, and replays them to late joiners.",
		Flags:  append(append(flags, schemeFlags(true)...), storeFlags()...),
		Action: serve,
	}
}

func serve(c *cli.Context) error {
	if c.Args().Present() {
		return misuse(fmt.Sprintf("serve takes no arguments, got %q", c.Args().Slice()), "run 'parley serve --help'")
	}
	addr := c.String("listen")
	if err := checkAddr("listen", addr); err != nil {
		return err
	}
	if c.Int("max-clients") < 1 {
		return misuse("--max-clients must be at least 1")
	}
	if c.Float64("rate") < 0 {
		return misuse("--rate must be 0 (off) or more lines per second")
	}
	if c.Duration("handshake-timeout") <= 0 {
		return misuse("--handshake-timeout must be positive, e.g. 10s")
	}
	sch, err := schemeFromFlags(c, true, "")
	if err != nil {
		return err
	}
	log := newLogger(c)
	rate := c.Float64("rate")
	if rate == 0 {
		rate = -1 // room.Config: negative turns the limit off
	}
	cfg := room.Config{
		Name:             c.String("room"),
		Scheme:           sch,
		MaxMembers:       c.Int("max-clients"),
		MaxLine:          c.Int("max-line"),
		Rate:             rate,
		Burst:            c.Int("burst"),
		HandshakeTimeout: c.Duration("handshake-timeout"),
		Logger:           log,
	}
	st, err := openRoomStore(c, cfg.Name, sch.Properties())
	if err != nil {
		return err
	}
	if st != nil {
		// After the room has shut down: every line it accepted is stored.
		defer func() {
			if err := st.Close(); err != nil {
				log.Error("closing the database", "err", err)
			}
		}()
		st.configure(&cfg)
	}
	r, err := room.New(cfg)
	if err != nil {
		return fail(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fail(fmt.Errorf("cannot listen on %s: the address is already in use", addr),
				"another program (perhaps another parley serve) holds that port; choose another with --listen")
		}
		return fail(fmt.Errorf("cannot listen on %s: %w", addr, err), "check the --listen address")
	}
	props := sch.Properties()
	fmt.Fprintf(c.App.ErrWriter, "parley: room %s (scheme %s) listening on %s\n", r.Name(), props.Name, l.Addr())
	if props.Insecure {
		fmt.Fprintf(c.App.ErrWriter, "parley: warning: %s\n", props.Warning)
	}
	log.Info("room listening", "addr", l.Addr().String(), "scheme", props.Name, "room", r.Name())

	ctx, stop := signal.NotifyContext(c.Context, syscallInterrupts()...)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- r.Serve(l) }()
	select {
	case err := <-served:
		l.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(sctx)
		return fail(err)
	case <-ctx.Done():
	}
	stop()
	fmt.Fprintf(c.App.ErrWriter, "parley: shutting down; telling %d members\n", len(r.Members()))
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Shutdown(sctx); err != nil {
		log.Warn("some members did not take their goodbye in time; closed them", "err", err)
	}
	<-served
	fmt.Fprintln(c.App.ErrWriter, "parley: room closed")
	return nil
}
