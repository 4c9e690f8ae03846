package room

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-edu/parley/certs"
	"github.com/parley-edu/parley/schemes"
)

// The load run: members on the tls scheme join, chat and leave in churn
// while every receiver checks that it gets every message broadcast while it
// was in the room, in order per sender. TestLoadChurnTLS is the small
// version that CI runs; BenchmarkLoadTLS is the big one:
//
//	go test ./room -run '^$' -bench LoadTLS -benchtime 1x -timeout 10m
//	go test ./room -run '^$' -bench LoadTLS -benchtime 1x -load.members 2000 -load.duration 20s
var (
	loadMembers  = flag.Int("load.members", 5000, "BenchmarkLoadTLS: members held at once")
	loadDuration = flag.Duration("load.duration", time.Minute, "BenchmarkLoadTLS: how long the members chat and churn")
)

type loadConfig struct {
	members   int           // held at once
	churners  int           // of those, how many leave and rejoin under a new name (they talk too)
	talkers   int           // how many more talk; the others only listen
	duration  time.Duration // of chat and churn, after every member has joined
	stay      time.Duration // a churner's average stay
	sendEvery time.Duration // each talker's average time between messages
	joiners   int           // handshakes in flight at once during the ramp-up
}

type loadResult struct {
	peak                 int   // members in the room at once
	joins                int64 // joins, counting every rejoin
	sent, delivered      int64 // chat messages
	losses               []string
	lat                  []time.Duration // delivery latency, a sample
	goroutines, fds      [2]int          // before and after
	rssBefore, rssAtPeak int64           // bytes
}

func (r *loadResult) report(tb testing.TB, cfg loadConfig) {
	slices.Sort(r.lat)
	pct := func(p int) time.Duration {
		if len(r.lat) == 0 {
			return 0
		}
		return r.lat[len(r.lat)*p/100]
	}
	tb.Logf("held %d members (peak %d), %d joins in all; %d messages sent, %d delivered, %d losses; "+
		"goroutines %d before / %d after, fds %d before / %d after; "+
		"RSS %.1f KiB per member (both ends of each connection, one process); "+
		"delivery latency p50 %s, p99 %s",
		cfg.members, r.peak, r.joins, r.sent, r.delivered, len(r.losses),
		r.goroutines[0], r.goroutines[1], r.fds[0], r.fds[1],
		float64(r.rssAtPeak-r.rssBefore)/1024/float64(cfg.members),
		pct(50), pct(99))
}

// TestLoadChurnTLS runs 200 members on tls for a few seconds, 50 of them
// leaving and rejoining: no message lost or reordered for any member, no
// goroutine or file descriptor left behind.
func TestLoadChurnTLS(t *testing.T) {
	cfg := loadConfig{members: 200, churners: 50, talkers: 150, duration: 3 * time.Second, stay: time.Second, sendEvery: 300 * time.Millisecond, joiners: 16}
	res := runLoad(t, cfg)
	res.report(t, cfg)
	checkLoad(t, cfg, res)
}

// BenchmarkLoadTLS is the full run: 5,000 members on tls (see the flags
// above) for a minute; 50 of them leave and rejoin every 20 s on average,
// and they and 50 more talk, a message every 10 s on average each. Every
// join, leave and message goes to 5,000 members: about 75,000 deliveries a
// second, half of what this test's two ends (both in one process) manage on
// two cores, so that latency measures the room rather than a saturated
// machine. It reports the figures as metrics and fails on any loss or leak.
func BenchmarkLoadTLS(b *testing.B) {
	cfg := loadConfig{
		members:   *loadMembers,
		churners:  50,
		talkers:   50,
		duration:  *loadDuration,
		stay:      20 * time.Second,
		sendEvery: 10 * time.Second,
		joiners:   64,
	}
	for range b.N {
		res := runLoad(b, cfg)
		res.report(b, cfg)
		checkLoad(b, cfg, res)
		b.ReportMetric(float64(res.peak), "members")
		b.ReportMetric(float64(res.delivered), "delivered")
		b.ReportMetric(float64(len(res.losses)), "losses")
		b.ReportMetric(float64(res.goroutines[1]-res.goroutines[0]), "leaked-goroutines")
		b.ReportMetric(float64(res.fds[1]-res.fds[0]), "leaked-fds")
		b.ReportMetric(float64(res.rssAtPeak-res.rssBefore)/1024/float64(cfg.members), "RSS-KiB/member")
		if len(res.lat) > 0 {
			b.ReportMetric(float64(res.lat[len(res.lat)*99/100].Microseconds()), "p99-µs")
		}
		b.ReportMetric(0, "ns/op")
	}
}

func checkLoad(tb testing.TB, cfg loadConfig, res *loadResult) {
	tb.Helper()
	for i, l := range res.losses {
		if i == 20 {
			tb.Errorf("... and %d more", len(res.losses)-20)
			break
		}
		tb.Errorf("loss: %s", l)
	}
	if res.peak < cfg.members {
		tb.Errorf("got at most %d members in the room at once, want %d", res.peak, cfg.members)
	}
	if res.delivered == 0 {
		tb.Errorf("got no deliveries")
	}
	if res.goroutines[1] > res.goroutines[0] {
		tb.Errorf("goroutines: got %d after the run, want at most %d as before", res.goroutines[1], res.goroutines[0])
	}
	if res.fds[1] > res.fds[0] {
		tb.Errorf("file descriptors: got %d after the run, want at most %d as before", res.fds[1], res.fds[0])
	}
}

// testTLS returns a tls scheme pair (server, client) with certificates from
// a fresh lab CA.
func testTLS(tb testing.TB) (server, client schemes.Scheme) {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "certs")
	if _, err := certs.Init(dir, certs.Options{}); err != nil {
		tb.Fatal(err)
	}
	if _, err := certs.IssueServer(dir, []string{"127.0.0.1"}, certs.Options{}); err != nil {
		tb.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, certs.ServerCertFile), filepath.Join(dir, certs.ServerKeyFile))
	if err != nil {
		tb.Fatal(err)
	}
	pool, err := certs.CAPool(dir)
	if err != nil {
		tb.Fatal(err)
	}
	if server, err = schemes.New("tls", schemes.Config{Certificates: []tls.Certificate{pair}}); err != nil {
		tb.Fatal(err)
	}
	if client, err = schemes.New("tls", schemes.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
		tb.Fatal(err)
	}
	return server, client
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

func rss() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n * 1024
		}
	}
	return 0
}

// settle polls until f() is at most want or 10 s pass, and returns f().
func settle(want int, f func() int) int {
	deadline := time.Now().Add(10 * time.Second)
	for f() > want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return f()
}

func runLoad(tb testing.TB, cfg loadConfig) *loadResult {
	tb.Helper()
	if runtime.GOOS != "linux" {
		tb.Skip("the load run counts file descriptors and RSS in /proc: it needs Linux")
	}
	srvScheme, cliScheme := testTLS(tb)
	res := &loadResult{}
	runtime.GC()
	res.goroutines[0], res.fds[0], res.rssBefore = runtime.NumGoroutine(), countFDs(), rss()

	r, err := New(Config{Scheme: srvScheme, MaxMembers: cfg.members + cfg.churners + 10})
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	served := make(chan error, 1)
	go func() { served <- r.Serve(l) }()

	var (
		mu      sync.Mutex // guards res.losses and res.lat
		ramp    sync.WaitGroup
		slots   sync.WaitGroup
		start   = make(chan struct{}) // closed when every member has joined
		stop    = make(chan struct{}) // closed at the end of the run
		joinSem = make(chan struct{}, cfg.joiners)
		failed  atomic.Bool
	)
	loss := func(format string, args ...any) {
		mu.Lock()
		res.losses = append(res.losses, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	ramp.Add(cfg.members)
	for i := range cfg.members {
		slots.Add(1)
		go func() {
			defer slots.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			churner := i < cfg.churners
			sendEvery := time.Duration(0)
			if i < cfg.churners+cfg.talkers {
				sendEvery = cfg.sendEvery
			}
			for gen := 0; ; gen++ {
				joinSem <- struct{}{}
				m, err := loadJoin(cliScheme, addr, fmt.Sprintf("m%dg%d", i, gen))
				<-joinSem
				if gen == 0 {
					ramp.Done()
				}
				if err != nil {
					select {
					case <-stop: // the room is shutting down
					default:
						if !failed.Swap(true) {
							loss("member %d could not join: %v", i, err)
						}
					}
					return
				}
				atomic.AddInt64(&res.joins, 1)
				if gen == 0 {
					<-start
				}
				var leave <-chan time.Time
				if churner {
					leave = time.After(time.Duration((0.5 + rng.Float64()) * float64(cfg.stay)))
				}
				m.run(rng, sendEvery, leave, stop, res, loss, &mu)
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	ramp.Wait()
	close(start)
	res.peak = len(r.Members())
	res.rssAtPeak = rss()
	sampler := time.NewTicker(100 * time.Millisecond)
	end := time.After(cfg.duration)
sample:
	for {
		select {
		case <-sampler.C:
			res.peak = max(res.peak, len(r.Members()))
		case <-end:
			break sample
		}
	}
	sampler.Stop()
	// The run ends as a class does: the room shuts down with everyone in
	// it, and every member must be told so.
	close(stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		tb.Errorf("shutdown: %v", err)
	}
	slots.Wait()
	if err := <-served; !errors.Is(err, ErrClosed) {
		tb.Errorf("Serve returned %v, want ErrClosed", err)
	}
	res.goroutines[1] = settle(res.goroutines[0], runtime.NumGoroutine)
	res.fds[1] = settle(res.fds[0], countFDs)
	return res
}

// loadMember is one member's connection in the load run.
type loadMember struct {
	name string
	conn schemes.Conn
}

func loadJoin(sch schemes.Scheme, addr, name string) (*loadMember, error) {
	nc, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := sch.Client(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if err := c.WriteLines([]byte(name + "\n")); err != nil {
		c.Close()
		return nil, err
	}
	for {
		line, err := c.ReadMessage()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("joining as %s: %w", name, err)
		}
		if bytes.HasPrefix(line, []byte("* welcome, ")) {
			break
		}
		if bytes.HasPrefix(line, []byte("! ")) {
			c.Close()
			return nil, fmt.Errorf("joining as %s: %s", name, line)
		}
	}
	nc.SetDeadline(time.Time{})
	return &loadMember{name: name, conn: c}, nil
}

// run chats until leave or stop: a message "seq N NANOS" every sendEvery
// on average (never when it is 0); at leave, "seq N NANOS last" and /quit; at stop, nothing more
// (the room is shutting down). Meanwhile it checks what it receives.
func (m *loadMember) run(rng *rand.Rand, sendEvery time.Duration, leave <-chan time.Time, stop <-chan struct{},
	res *loadResult, loss func(string, ...any), mu *sync.Mutex) {
	defer m.conn.Close()
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		m.receive(res, loss, mu, stop)
	}()
	seq := 0
	send := func(last bool) bool {
		line := fmt.Sprintf("seq %d %d", seq, time.Now().UnixNano())
		if last {
			line += " last"
		}
		if err := m.conn.WriteLines([]byte(line + "\n")); err != nil {
			select {
			case <-stop: // the room is shutting down
			default:
				loss("%s could not send: %v", m.name, err)
			}
			return false
		}
		seq++
		atomic.AddInt64(&res.sent, 1)
		return true
	}
	for {
		t := time.NewTimer(time.Duration(rng.Float64() * 2 * float64(sendEvery)))
		tick := t.C
		if sendEvery == 0 {
			tick = nil // a listener
		}
		select {
		case <-tick:
			if send(false) {
				continue
			}
		case <-leave:
			t.Stop()
			if send(true) {
				m.conn.WriteLines([]byte("/quit\n"))
			}
		case <-stop:
			t.Stop()
		case <-recvDone:
			t.Stop()
			return
		}
		break
	}
	select {
	case <-recvDone:
	case <-time.After(30 * time.Second):
		loss("%s: no goodbye within 30 s", m.name)
		m.conn.Close()
		<-recvDone
	}
}

// sender is what a receiver knows of one other member.
type sender struct {
	next   int  // the sequence number expected next
	strict bool // we saw it join, so we expect every message from seq 0
	seen   bool // we got a message from it
	done   bool // we got its last message
}

// receive reads until the room says goodbye or shuts down, and checks, for
// every other member, that messages arrive in order without gaps, from the
// first one when the sender joined after us, and up to the last one when it
// leaves before us. Latency is sampled until stop.
func (m *loadMember) receive(res *loadResult, loss func(string, ...any), mu *sync.Mutex, stop <-chan struct{}) {
	senders := map[string]*sender{}
	var lat []time.Duration
	var delivered int64
	shutdown := false
	defer func() {
		atomic.AddInt64(&res.delivered, delivered)
		mu.Lock()
		res.lat = append(res.lat, lat...)
		mu.Unlock()
	}()
	for {
		line, err := m.conn.ReadMessage()
		if err != nil {
			if !shutdown {
				loss("%s: connection ended before the goodbye: %v", m.name, err)
			}
			return
		}
		s := string(line)
		switch {
		case strings.HasPrefix(s, "* bye, "):
			return
		case s == "* server shutting down":
			shutdown = true
		case strings.HasPrefix(s, "! "):
			loss("%s got an error: %s", m.name, s)
		case strings.HasPrefix(s, "* "):
			who, rest, _ := strings.Cut(s[2:], " ")
			switch {
			case strings.HasPrefix(rest, "joined ("):
				senders[who] = &sender{strict: true}
			case strings.HasPrefix(rest, "left ("):
				if rest == "left (kicked by shutdown)" {
					// Shutdown closes members one by one: the others may
					// hear of it before their own notice.
					delete(senders, who)
					continue
				}
				if rest != "left (quit)" {
					loss("%s saw %s", m.name, s)
				}
				if st := senders[who]; st != nil && (st.strict || st.seen) && !st.done {
					loss("%s: %s left without its last message arriving (next expected seq %d)", m.name, who, st.next)
				}
				delete(senders, who)
			}
		default:
			who, msg, ok := strings.Cut(s, ": ")
			f := strings.Fields(msg)
			if !ok || len(f) < 3 || f[0] != "seq" {
				loss("%s got an unexpected line %q", m.name, s)
				continue
			}
			n, _ := strconv.Atoi(f[1])
			ts, _ := strconv.ParseInt(f[2], 10, 64)
			st := senders[who]
			if st == nil {
				st = &sender{}
				senders[who] = st
			}
			if (st.strict || st.seen) && n != st.next {
				loss("%s: from %s got seq %d, want %d", m.name, who, n, st.next)
			}
			st.seen, st.next = true, n+1
			st.done = len(f) > 3 && f[3] == "last"
			delivered++
			if delivered%8 == 0 {
				select {
				case <-stop:
				default:
					lat = append(lat, time.Duration(time.Now().UnixNano()-ts))
				}
			}
		}
	}
}
