package room

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parley-edu/parley/schemes"
)

// benchSchemes are the schemes the room benchmark runs over, with what each
// needs. Schemes that are not registered are skipped.
func benchSchemes() []struct {
	name string
	cfg  schemes.Config
} {
	psk := bytes.Repeat([]byte{0x42}, 32)
	return []struct {
		name string
		cfg  schemes.Config
	}{
		{"plain", schemes.Config{}},
		{"xor", schemes.Config{}},
		{"aes-cbc", schemes.Config{PSK: psk}},
		{"aes-cbc-hmac", schemes.Config{PSK: psk}},
	}
}

// BenchmarkBroadcast measures the room on loopback TCP: 50 members each
// send 500 messages of 64 bytes, and every other member receives them.
// It reports deliveries per second and the p50/p99 delivery latency (time
// from the sender's write to the receiver's read of the line).
//
//	go test ./room -run '^$' -bench Broadcast -benchtime 5x
func BenchmarkBroadcast(b *testing.B) {
	for _, s := range benchSchemes() {
		b.Run(s.name, func(b *testing.B) {
			sch, err := schemes.New(s.name, s.cfg)
			if err != nil {
				b.Skipf("scheme %s: %v", s.name, err)
			}
			benchmarkBroadcast(b, sch, 50, 500, 64)
		})
	}
}

func benchmarkBroadcast(b *testing.B, sch schemes.Scheme, members, perMember, size int) {
	r, addr := startRoom(b, Config{Scheme: sch, Rate: -1})
	conns := make([]schemes.Conn, members)
	for i := range conns {
		conns[i] = benchJoin(b, sch, addr, fmt.Sprintf("m%02d", i))
	}
	for len(r.Members()) < members {
		time.Sleep(time.Millisecond)
	}
	want := (members - 1) * perMember
	var lat []time.Duration
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		lat = append(lat, exchange(b, conns, perMember, size, 50, 0)...)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	deliveries := float64(b.N * members * want)
	b.ReportMetric(deliveries/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(0, "ns/op")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	for _, c := range conns {
		c.Close()
	}
}

// exchange has every member of conns send perMember lines of size bytes
// (each starting with its send time in nanoseconds), batch lines per write
// and, when every is not zero, one batch per tick; meanwhile every member
// reads what all the others sent. It returns the delivery latencies.
func exchange(b *testing.B, conns []schemes.Conn, perMember, size, batch int, every time.Duration) []time.Duration {
	want := (len(conns) - 1) * perMember
	pad := bytes.Repeat([]byte("x"), size)
	var lat []time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(2)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, want)
			for got := 0; got < want; {
				line, err := c.ReadMessage()
				if err != nil {
					b.Errorf("read: %v", err)
					return
				}
				// "mNN: <nanos> xxx..."; notices start with "* ".
				if len(line) < 5 || line[0] != 'm' {
					continue
				}
				got++
				if ts, ok := parseNanos(line[5:]); ok {
					mine = append(mine, time.Duration(time.Now().UnixNano()-ts))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
		go func() {
			defer wg.Done()
			var tick <-chan time.Time
			if every > 0 {
				t := time.NewTicker(every)
				defer t.Stop()
				tick = t.C
			}
			buf := make([]byte, 0, batch*(size+1))
			for sent := 0; sent < perMember; {
				if tick != nil {
					<-tick
				}
				buf = buf[:0]
				for k := 0; k < batch && sent < perMember; k++ {
					n := len(buf)
					buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
					buf = append(buf, ' ')
					buf = append(buf, pad[:size-(len(buf)-n)]...)
					buf = append(buf, '\n')
					sent++
				}
				if err := c.WriteLines(buf); err != nil {
					b.Errorf("write: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return lat
}

func parseNanos(b []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int64(b[i]-'0')
	}
	return n, i > 0
}

// benchJoin connects to the room with the scheme's client and joins.
func benchJoin(b testing.TB, sch schemes.Scheme, addr, name string) schemes.Conn {
	b.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c, err := sch.Client(nc)
	if err != nil {
		b.Fatal(err)
	}
	sent := false
	for {
		line, err := c.ReadMessage()
		if err != nil {
			b.Fatalf("joining %s: %v", name, err)
		}
		switch {
		case bytes.HasPrefix(line, []byte("* choose a name")) && !sent:
			if err := c.WriteLines([]byte(name + "\n")); err != nil {
				b.Fatal(err)
			}
			sent = true
		case bytes.HasPrefix(line, []byte("* welcome, ")):
			return c
		case bytes.HasPrefix(line, []byte("! ")):
			b.Fatalf("joining %s: %s", name, line)
		}
	}
}

// BenchmarkStalledMember measures delivery latency under a steady load (20
// members, each sending a 1000-byte line every 5 ms) with and without one
// extra member that never reads. The stalled member must be closed as too
// slow without moving everyone else's p99.
//
//	go test ./room -run '^$' -bench StalledMember -benchtime 1x
func BenchmarkStalledMember(b *testing.B) {
	for _, stalled := range []bool{false, true} {
		name := "without"
		if stalled {
			name = "with"
		}
		b.Run(name, func(b *testing.B) {
			sch, _ := schemes.New("plain", schemes.Config{})
			r, addr := startRoom(b, Config{Scheme: sch, Rate: -1, MaxQueue: 256 << 10, WriteTimeout: 2 * time.Second})
			const members, perMember = 20, 400
			conns := make([]schemes.Conn, members)
			for i := range conns {
				conns[i] = benchJoin(b, sch, addr, fmt.Sprintf("m%02d", i))
			}
			if stalled {
				stuck := benchJoin(b, sch, addr, "stuck")
				defer stuck.Close()
			}
			for len(r.Members()) < len(conns)+map[bool]int{true: 1}[stalled] {
				time.Sleep(time.Millisecond)
			}
			var lat []time.Duration
			b.ResetTimer()
			for range b.N {
				lat = append(lat, exchange(b, conns, perMember, 1000, 1, 5*time.Millisecond)...)
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(0, "ns/op")
			if stalled && slices.Contains(r.Members(), "stuck") {
				b.Error("the stalled member was not closed as too slow")
			}
			for _, c := range conns {
				c.Close()
			}
		})
	}
}
