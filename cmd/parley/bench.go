package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/parley-edu/parley/labs/scenario"
	"github.com/parley-edu/parley/schemes"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure what each scheme costs: handshake time, bytes on the wire, room throughput",
		Description: "For each scheme, on loopback: the time of a full handshake (connect included, p50 and\n" +
			"p99), the bytes a sender puts on the wire for messages of 16, 256 and 4096 bytes, and\n" +
			"the room's throughput with --clients members each sending --messages lines of 64 bytes\n" +
			"(deliveries per second and delivery latency), measured as 'go test ./room -bench\n" +
			"Broadcast' does. Keys and certificates go into a temporary home unless --home names one.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "scheme", Value: strings.Join(schemes.Names(), ","), Usage: "comma-separated schemes to measure"},
			&cli.IntFlag{Name: "clients", Value: scenario.DefaultBenchClients, Usage: "room members in the throughput run (at least 2)"},
			&cli.IntFlag{Name: "messages", Value: scenario.DefaultBenchMessages, Usage: "lines each member sends in the throughput run"},
			&cli.IntFlag{Name: "handshakes", Value: scenario.DefaultBenchHandshakes, Usage: "handshakes to time per scheme"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per scheme instead of the table"},
		},
		Action: bench,
	}
}

func bench(c *cli.Context) error {
	if c.Args().Present() {
		return misuse(fmt.Sprintf("bench takes no arguments, got %q", c.Args().Slice()), "run 'parley bench --help'")
	}
	names, err := parseSchemeList(c.String("scheme"))
	if err != nil {
		return err
	}
	switch {
	case c.Int("clients") < 2 || c.Int("clients") > 5000:
		return misuse(fmt.Sprintf("--clients %d is out of range", c.Int("clients")), "use 2 to 5000 members")
	case c.Int("messages") < 1:
		return misuse("--messages must be at least 1")
	case c.Int("handshakes") < 1:
		return misuse("--handshakes must be at least 1")
	}
	home := c.String("home")
	if home == "" {
		home, err = os.MkdirTemp("", "parley-bench-home-")
		if err != nil {
			return fail(fmt.Errorf("cannot create a temporary home: %w", err), "name one with --home DIR")
		}
		defer os.RemoveAll(home)
	}

	prog := newProgress(c.App.ErrWriter, 2*time.Second)
	defer prog.stop()
	var results []*scenario.BenchResult
	for _, name := range names {
		r, err := scenario.Bench(c.Context, scenario.BenchOptions{
			Scheme:     name,
			Home:       home,
			Handshakes: c.Int("handshakes"),
			Clients:    c.Int("clients"),
			Messages:   c.Int("messages"),
			Progress:   prog.step,
		})
		if err != nil {
			prog.stop()
			return fail(fmt.Errorf("bench of %s failed: %w", name, err),
				fmt.Sprintf("try fewer members: 'parley bench --scheme %s --clients 10'", name))
		}
		results = append(results, r)
	}
	prog.stop()

	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		for _, r := range results {
			if err := enc.Encode(r); err != nil {
				return fail(err)
			}
		}
		return nil
	}
	printBench(w, results, c.Int("clients"), c.Int("messages"))
	return nil
}

func printBench(w io.Writer, results []*scenario.BenchResult, clients, messages int) {
	fmt.Fprintf(w, "%-12s %-15s %-31s %s\n", "", "handshake", "wire bytes (overhead) per msg", "room")
	fmt.Fprintf(w, "%-12s %7s %7s", "scheme", "p50", "p99")
	widths := []int{9, 10, 11}
	if len(results) > 0 {
		for i, wc := range results[0].Wire {
			fmt.Fprintf(w, " %*s", widths[min(i, 2)], fmt.Sprintf("%d B", wc.Size))
		}
	}
	fmt.Fprintf(w, " %8s %8s\n", "deliv/s", "p99 lat")
	for _, r := range results {
		fmt.Fprintf(w, "%-12s %7s %7s", r.Scheme, fmtDur(r.HandshakeP50), fmtDur(r.HandshakeP99))
		for i, wc := range r.Wire {
			fmt.Fprintf(w, " %*s", widths[min(i, 2)], fmt.Sprintf("%d (+%d)", wc.WireBytes, wc.Overhead))
		}
		fmt.Fprintf(w, " %8s %8s\n", fmtRate(r.DeliveriesPerSec), fmtDur(r.LatencyP99))
	}
	fmt.Fprintf(w, "\nhandshake: connect + the scheme's handshake on loopback (mtls: + HELLO).\n")
	fmt.Fprintf(w, "wire bytes: what the sender's connection sent for one message of that size,\n")
	fmt.Fprintf(w, "over the message itself (mtls: the DATA block and the PASS answer).\n")
	fmt.Fprintf(w, "throughput: %d members each send %d lines of %d bytes; every other member\n", clients, messages, scenario.DefaultBenchMessageSize)
	fmt.Fprintf(w, "receives them (as 'go test ./room -run ^$ -bench Broadcast').\n")
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	case d < 10*time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return d.Round(time.Second).String()
}

func fmtRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.0fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}

// progress prints the current step to w once a run has taken longer than
// after, then every step as it starts. Its goroutine ends in stop.
type progress struct {
	w     io.Writer
	start time.Time
	after time.Duration

	mu      sync.Mutex
	current string
	shown   bool // current has been printed
	stopped bool
	done    chan struct{}
	wg      sync.WaitGroup
}

func newProgress(w io.Writer, after time.Duration) *progress {
	p := &progress{w: w, start: time.Now(), after: after, done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTimer(after)
		defer t.Stop()
		select {
		case <-t.C:
			p.mu.Lock()
			p.showLocked()
			p.mu.Unlock()
		case <-p.done:
		}
	}()
	return p
}

func (p *progress) step(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.current, p.shown = s, false
	if time.Since(p.start) >= p.after {
		p.showLocked()
	}
}

func (p *progress) showLocked() {
	if p.stopped || p.shown || p.current == "" {
		return
	}
	p.shown = true
	fmt.Fprintf(p.w, "parley: bench: %s (%.0fs)\n", p.current, time.Since(p.start).Seconds())
}

func (p *progress) stop() {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		close(p.done)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
