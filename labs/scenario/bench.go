package scenario

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-edu/parley/schemes"
)

// Bench defaults. The throughput defaults are those of the room package's
// BenchmarkBroadcast, so that `parley bench` and `go test -bench` measure
// the same thing.
const (
	DefaultBenchHandshakes  = 200
	DefaultBenchClients     = 50
	DefaultBenchMessages    = 500
	DefaultBenchMessageSize = 64
	benchBatch              = 50 // lines per write, as BenchmarkBroadcast
)

// DefaultBenchSizes are the message sizes whose cost on the wire Bench
// measures.
var DefaultBenchSizes = []int{16, 256, 4096}

// BenchOptions configure Bench. Zero values take the defaults.
type BenchOptions struct {
	Scheme string
	// Home holds the credentials; empty means a temporary one.
	Home string
	// Handshakes is how many full handshakes to time.
	Handshakes int
	// Sizes are the message sizes, in bytes, whose wire cost is measured.
	Sizes []int
	// Clients members each send Messages lines of MessageSize bytes in the
	// throughput run.
	Clients, Messages, MessageSize int
	// Progress, when set, is told about each step as it starts.
	Progress func(step string)
}

// WireCost is what one message of Size bytes cost on the wire: what the
// sender's connection sent for it (mtls: the DATA block and PASS), measured
// below the scheme.
type WireCost struct {
	Size      int   `json:"size"`
	WireBytes int64 `json:"wire_bytes"`
	Overhead  int64 `json:"overhead"` // WireBytes - Size
}

// BenchResult is what Bench measured for one scheme.
type BenchResult struct {
	Scheme string `json:"scheme"`

	Handshakes   int           `json:"handshakes"`
	HandshakeP50 time.Duration `json:"handshake_p50_ns"`
	HandshakeP99 time.Duration `json:"handshake_p99_ns"`

	Wire []WireCost `json:"wire"`

	Clients          int           `json:"clients"`
	Messages         int           `json:"messages_per_client"`
	MessageSize      int           `json:"message_size"`
	Deliveries       int           `json:"deliveries"`
	Elapsed          time.Duration `json:"elapsed_ns"`
	DeliveriesPerSec float64       `json:"deliveries_per_sec"`
	LatencyP50       time.Duration `json:"latency_p50_ns"`
	LatencyP99       time.Duration `json:"latency_p99_ns"`
}

func (o *BenchOptions) defaults() error {
	if o.Handshakes <= 0 {
		o.Handshakes = DefaultBenchHandshakes
	}
	if len(o.Sizes) == 0 {
		o.Sizes = DefaultBenchSizes
	}
	if o.Clients <= 0 {
		o.Clients = DefaultBenchClients
	}
	if o.Messages <= 0 {
		o.Messages = DefaultBenchMessages
	}
	if o.MessageSize <= 0 {
		o.MessageSize = DefaultBenchMessageSize
	}
	if o.Clients < 2 {
		return errors.New("scenario: the throughput run needs at least 2 clients")
	}
	// The payload starts with a send time in nanoseconds and a space.
	if o.MessageSize < 20 {
		return fmt.Errorf("scenario: message size %d is too small to carry a timestamp (want at least 20)", o.MessageSize)
	}
	for _, n := range o.Sizes {
		if n < 1 || n > schemes.DefaultMaxMessage-64 {
			return fmt.Errorf("scenario: message size %d is out of range", n)
		}
	}
	return nil
}

// Bench measures one scheme on loopback, without a tap: full handshake
// times, the wire cost of messages of each size, and the room's throughput
// and delivery latency with many members. It runs the steps one after the
// other and returns the first error.
func Bench(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	progress := func(step string) {
		if o.Progress != nil {
			o.Progress(o.Scheme + ": " + step)
		}
	}
	s, err := Start(ctx, Options{Scheme: o.Scheme, Home: o.Home, Rate: -1})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	res := &BenchResult{Scheme: o.Scheme, Handshakes: o.Handshakes, Clients: o.Clients, Messages: o.Messages, MessageSize: o.MessageSize}

	progress(fmt.Sprintf("%d handshakes", o.Handshakes))
	if err := s.benchHandshakes(ctx, o.Handshakes, res); err != nil {
		return nil, err
	}
	progress("bytes on the wire")
	if err := s.benchWire(ctx, o.Sizes, res); err != nil {
		return nil, err
	}
	progress(fmt.Sprintf("room throughput, %d clients x %d messages", o.Clients, o.Messages))
	if err := s.benchThroughput(ctx, o.Clients, o.Messages, o.MessageSize, res); err != nil {
		return nil, err
	}
	return res, s.Close()
}

func (s *Scenario) benchHandshakes(ctx context.Context, n int, res *BenchResult) error {
	times := make([]time.Duration, 0, n)
	for range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, _, took, err := s.Connect("bench")
		if err != nil {
			return err
		}
		c.Close()
		times = append(times, took)
	}
	res.HandshakeP50, res.HandshakeP99 = percentile(times, 50), percentile(times, 99)
	return nil
}

func (s *Scenario) benchWire(ctx context.Context, sizes []int, res *BenchResult) error {
	sender, err := s.Join("sender")
	if err != nil {
		return err
	}
	defer sender.Close()
	receiver, err := s.Join("receiver")
	if err != nil {
		return err
	}
	defer receiver.Close()
	for i, n := range sizes {
		// Distinct printable text of exactly n bytes; none of it is a
		// command or looks like one.
		text := strings.Repeat(strconv.Itoa(i%10)+"abcdefghijklmnopqrstuvwxyz", n/27+1)[:n]
		before := sender.BytesSent()
		if err := sender.Say(text); err != nil {
			return err
		}
		wire := sender.BytesSent() - before
		if err := receiver.WaitLine(ctx, "sender: "+text); err != nil {
			return err
		}
		res.Wire = append(res.Wire, WireCost{Size: n, WireBytes: wire, Overhead: wire - int64(n)})
	}
	return nil
}

// benchThroughput is room.BenchmarkBroadcast outside the test harness:
// every member writes its lines in batches of 50, each line starting with
// its send time in nanoseconds, while every member reads until it has
// received everyone else's lines; latency is the receiver's read time minus
// the send time.
func (s *Scenario) benchThroughput(ctx context.Context, members, perMember, size int, res *BenchResult) error {
	conns := make([]schemes.Conn, 0, members)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range members {
		cl, err := s.JoinClient(fmt.Sprintf("m%02d", i))
		if err != nil {
			return err
		}
		conns = append(conns, cl.Conn)
	}
	// A run that hangs (a stuck member) ends with the context.
	stop := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			c.Close()
		}
	})
	defer stop()

	pad := strings.Repeat("x", size)
	want := (members - 1) * perMember
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	record := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	start := time.Now()
	for _, c := range conns {
		wg.Add(2)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, want)
			for got := 0; got < want; {
				line, err := c.ReadMessage()
				if err != nil {
					record(fmt.Errorf("scenario: bench read after %d of %d lines: %w", got, want, err))
					return
				}
				// "mNN: <nanos> xxx..."; notices start with "* ".
				if len(line) == 0 || line[0] != 'm' {
					continue
				}
				got++
				if i := indexColon(line); i >= 0 {
					if ts, ok := parseNanos(line[i:]); ok {
						mine = append(mine, time.Duration(time.Now().UnixNano()-ts))
					}
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, benchBatch*(size+1))
			for sent := 0; sent < perMember; {
				buf = buf[:0]
				for k := 0; k < benchBatch && sent < perMember; k++ {
					n := len(buf)
					buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
					buf = append(buf, ' ')
					buf = append(buf, pad[:size-(len(buf)-n)]...)
					buf = append(buf, '\n')
					sent++
				}
				if err := c.WriteLines(buf); err != nil {
					record(fmt.Errorf("scenario: bench write: %w", err))
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(errs) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		return errs[0]
	}
	res.Deliveries = members * want
	res.Elapsed = elapsed
	res.DeliveriesPerSec = float64(res.Deliveries) / elapsed.Seconds()
	res.LatencyP50, res.LatencyP99 = percentile(lat, 50), percentile(lat, 99)
	return nil
}

// indexColon returns the index just after "name: " in a chat line, or -1.
func indexColon(line []byte) int {
	for i := 0; i+1 < len(line); i++ {
		if line[i] == ':' && line[i+1] == ' ' {
			return i + 2
		}
	}
	return -1
}

func parseNanos(b []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int64(b[i]-'0')
	}
	return n, i > 0
}

// percentile returns the p-th percentile of d (which it sorts), as
// BenchmarkBroadcast computes it, or 0 for no samples.
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)*p/100]
}
