package capture

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// The benchmark capture: many plain chat streams, benchStreamsOpen of them
// open at once, interleaved packet by packet, in a classic pcap file of
// PARLEY_BENCH_MB megabytes (default 256). For the 1 GiB version:
//
//	PARLEY_BENCH_MB=1024 go test ./capture -run '^$' -bench BenchmarkRead -benchtime 1x
//
// The file is generated once per run in a temporary folder (kept with
// PARLEY_BENCH_KEEP=1, e.g. to time tshark -r FILE -q -z conv,tcp on it).
const (
	benchStreamsOpen  = 64
	benchBytesPerSide = 256 << 10
)

var (
	benchOnce sync.Once
	benchPath string
	benchErr  error
)

func benchFile(b *testing.B) string {
	benchOnce.Do(func() {
		mb := 256
		if s := os.Getenv("PARLEY_BENCH_MB"); s != "" {
			mb, benchErr = strconv.Atoi(s)
			if benchErr != nil {
				return
			}
		}
		dir, err := os.MkdirTemp("", "parley-bench-")
		if err != nil {
			benchErr = err
			return
		}
		benchPath = filepath.Join(dir, fmt.Sprintf("chat-%dMB.pcap", mb))
		benchErr = writeBenchCapture(benchPath, int64(mb)<<20)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchPath
}

// benchConn is one generated connection.
type benchConn struct {
	cli, srv   net.IP
	cport      uint16
	cseq, sseq uint32
	sent       [2]int
	state      int // 0 handshake, 1 data, 2 closing, 3 done
}

func writeBenchCapture(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	var hdr [24]byte
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 262144)
	binary.LittleEndian.PutUint32(hdr[20:], linkEthernet)
	w.Write(hdr[:])
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"hello", "alice", "bob", "the", "password", "is", "swordfish", "meet", "at", "noon", "ok", "see", "you", "there", "what", "about", "lunch"}
	var payload [1448]byte
	fill := func(n int) []byte {
		p := payload[:0]
		for len(p) < n-12 {
			p = append(p, words[rng.IntN(len(words))]...)
			if rng.IntN(8) == 0 {
				p = append(p, '\n')
			} else {
				p = append(p, ' ')
			}
		}
		for len(p) < n-1 {
			p = append(p, 'x')
		}
		return append(p, '\n')
	}
	sb := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: serverMAC, EthernetType: layers.EthernetTypeIPv4}
	ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var written int64 = 24
	var rec [16]byte
	emit := func(c *benchConn, fromClient bool, tcp layers.TCP, data []byte) error {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: c.cli, DstIP: c.srv}
		tcp.SrcPort, tcp.DstPort, tcp.Window = layers.TCPPort(c.cport), 5050, 65535
		if !fromClient {
			ip.SrcIP, ip.DstIP = c.srv, c.cli
			tcp.SrcPort, tcp.DstPort = 5050, layers.TCPPort(c.cport)
		}
		tcp.SetNetworkLayerForChecksum(ip)
		if err := gopacket.SerializeLayers(sb, opts, eth, ip, &tcp, gopacket.Payload(data)); err != nil {
			return err
		}
		ts = ts.Add(10 * time.Microsecond)
		frame := sb.Bytes()
		binary.LittleEndian.PutUint32(rec[0:], uint32(ts.Unix()))
		binary.LittleEndian.PutUint32(rec[4:], uint32(ts.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(frame)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(frame)))
		w.Write(rec[:])
		_, err := w.Write(frame)
		written += int64(16 + len(frame))
		return err
	}
	next := 0
	newConn := func() *benchConn {
		next++
		return &benchConn{
			cli: net.IPv4(10, byte(next>>16), byte(next>>8), byte(next)).To4(), srv: net.IPv4(10, 255, 0, 1).To4(),
			cport: uint16(1024 + next%60000), cseq: rng.Uint32(), sseq: rng.Uint32(),
		}
	}
	conns := make([]*benchConn, benchStreamsOpen)
	for i := range conns {
		conns[i] = newConn()
	}
	for i := 0; ; i = (i + 1) % len(conns) {
		c := conns[i]
		stopping := written >= size
		switch c.state {
		case 0:
			if stopping {
				c.state = 3
				break
			}
			emit(c, true, layers.TCP{SYN: true, Seq: c.cseq}, nil)
			c.cseq++
			emit(c, false, layers.TCP{SYN: true, ACK: true, Seq: c.sseq, Ack: c.cseq}, nil)
			c.sseq++
			emit(c, true, layers.TCP{ACK: true, Seq: c.cseq, Ack: c.sseq}, nil)
			c.state = 1
		case 1:
			side := rng.IntN(2)
			if c.sent[0] >= benchBytesPerSide && c.sent[1] >= benchBytesPerSide || stopping {
				c.state = 2
				break
			}
			n := 200 + rng.IntN(1248)
			data := fill(n)
			if side == 0 {
				emit(c, true, layers.TCP{ACK: true, PSH: true, Seq: c.cseq, Ack: c.sseq}, data)
				c.cseq += uint32(n)
			} else {
				emit(c, false, layers.TCP{ACK: true, PSH: true, Seq: c.sseq, Ack: c.cseq}, data)
				c.sseq += uint32(n)
			}
			c.sent[side] += n
		case 2:
			emit(c, true, layers.TCP{FIN: true, ACK: true, Seq: c.cseq, Ack: c.sseq}, nil)
			c.cseq++
			emit(c, false, layers.TCP{FIN: true, ACK: true, Seq: c.sseq, Ack: c.cseq}, nil)
			c.sseq++
			emit(c, true, layers.TCP{ACK: true, Seq: c.cseq, Ack: c.sseq}, nil)
			c.state = 3
		}
		if c.state == 3 {
			if stopping {
				done := true
				for _, o := range conns {
					if o.state != 3 {
						done = false
					}
				}
				if done {
					break
				}
				continue
			}
			conns[i] = newConn()
		}
	}
	return w.Flush()
}

// BenchmarkRead measures capture.Read (reassembly, recognition and the
// plain dissector, with events discarded) over the generated capture, and
// reports the largest heap seen while reading.
func BenchmarkRead(b *testing.B) {
	path := benchFile(b)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	if os.Getenv("PARLEY_BENCH_KEEP") == "" {
		b.Cleanup(func() { os.RemoveAll(filepath.Dir(path)) })
	} else {
		b.Logf("benchmark capture kept at %s", path)
	}
	b.SetBytes(st.Size())
	b.ReportAllocs()
	var maxHeap uint64
	var ms runtime.MemStats
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		err = Read(f, ReadOptions{}, func(e Event) error {
			n++
			if n%200000 == 0 {
				runtime.ReadMemStats(&ms)
				maxHeap = max(maxHeap, ms.HeapInuse)
			}
			return nil
		})
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(maxHeap)/(1<<20), "max-heap-MiB")
}
