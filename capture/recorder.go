package capture

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Side names one end of a recorded connection.
type Side int

// The two sides of a recorded connection.
const (
	Client Side = iota
	Server
)

func (s Side) String() string {
	if s == Client {
		return DirClient
	}
	return DirServer
}

func (s Side) other() Side { return 1 - s }

// Segment sizes of synthesised packets: an Ethernet MSS, and a pure ACK from
// the receiver at least every ackEvery segments so that the advertised
// window (65535, unscaled) is never overrun.
const (
	recorderMSS    = 1460
	recorderWindow = 65535
	ackEvery       = 32
)

var (
	clientMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	serverMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
)

// A Recorder turns what a relay sees — a connection opened, bytes from the
// client, bytes from the server, a close or a reset — into the Ethernet,
// IPv4 or IPv6, and TCP packets that a sniffer on the wire between client
// and server would have captured: a three-way handshake, consistent
// sequence and acknowledgement numbers, segments of at most one MSS, FIN or
// RST as they happened, with real timestamps. The tap uses one; so can any
// other relay (such as the MITM relay) for each of its legs.
//
// A Recorder is safe for concurrent use by many connections. Packets are
// buffered (in memory, then in a temporary file) until WriteTo or WriteFile;
// Close releases the buffer.
type Recorder struct {
	mu   sync.Mutex // guards everything below; taken by RecordedConn methods
	pkts packetBuffer
	buf  gopacket.SerializeBuffer
	last time.Time
	keys *keyLog
	now  func() time.Time
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{buf: gopacket.NewSerializeBuffer(), keys: newKeyLog(), now: time.Now}
}

// AddKeyLog adds TLS secrets in NSS key log format; they are written into
// the capture file's Decryption Secrets Block and into its key log (KeyLogPath).
func (r *Recorder) AddKeyLog(text []byte) { r.keys.add(text) }

// Packets reports how many packets were recorded so far.
func (r *Recorder) Packets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pkts.n
}

// WriteTo writes everything recorded so far as a pcapng stream to w. It may
// be called more than once.
func (r *Recorder) WriteTo(w io.Writer) (int64, error) {
	r.keys.flush()
	r.mu.Lock()
	defer r.mu.Unlock()
	cw := &countingWriter{w: w}
	err := writePcapng(cw, layers.LinkTypeEthernet, "parley-tap", r.keys.text(), &r.pkts)
	return cw.n, err
}

// WriteFile writes everything recorded so far to a pcapng file at path and,
// when TLS keys are known, the key log beside it (KeyLogPath).
func (r *Recorder) WriteFile(path string) error {
	r.keys.flush()
	r.mu.Lock()
	defer r.mu.Unlock()
	return writeCaptureFile(path, layers.LinkTypeEthernet, "parley-tap", r.keys.text(), &r.pkts)
}

// Close releases the packet buffer (and its temporary file, if any).
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pkts.close()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// endpoint is one side of a recorded connection.
type endpoint struct {
	mac  net.HardwareAddr
	addr netip.Addr
	port uint16
	seq  uint32 // next sequence number this side sends
	ipID uint16
	fin  bool // this side sent FIN or RST
}

// A RecordedConn records one TCP connection of a Recorder. Its methods are
// safe for concurrent use; events are recorded in the order the calls
// happen.
type RecordedConn struct {
	r     *Recorder
	ep    [2]endpoint
	v6    bool
	reset bool
}

// Open records the three-way handshake of a connection from client to
// server and returns the connection to record its traffic on.
func (r *Recorder) Open(client, server net.Addr) *RecordedConn {
	c := r.newConn(client, server)
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := r.stampLocked()
	cl, sv := &c.ep[Client], &c.ep[Server]
	r.packetLocked(c, Client, ts, layers.TCP{SYN: true, Seq: cl.seq}, nil)
	cl.seq++
	r.packetLocked(c, Server, ts, layers.TCP{SYN: true, ACK: true, Seq: sv.seq, Ack: cl.seq}, nil)
	sv.seq++
	r.packetLocked(c, Client, ts, layers.TCP{ACK: true, Seq: cl.seq, Ack: sv.seq}, nil)
	return c
}

// Refused records a connection attempt that the server answered with a
// reset (nothing listening, or the upstream went away).
func (r *Recorder) Refused(client, server net.Addr) {
	c := r.newConn(client, server)
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := r.stampLocked()
	cl := &c.ep[Client]
	r.packetLocked(c, Client, ts, layers.TCP{SYN: true, Seq: cl.seq}, nil)
	cl.seq++
	r.packetLocked(c, Server, ts, layers.TCP{RST: true, ACK: true, Seq: 0, Ack: cl.seq}, nil)
}

func (r *Recorder) newConn(client, server net.Addr) *RecordedConn {
	ca, cp := addrPort(client, 1)
	sa, sp := addrPort(server, 2)
	c := &RecordedConn{r: r}
	// A capture holds one address family per packet: when the two ends
	// differ (a v4 client of a v6 upstream), map the odd one into the
	// server's family.
	c.v6 = sa.Is6() && !sa.Is4In6()
	if c.v6 {
		if ca.Is4() {
			ca = netip.AddrFrom16(ca.As16())
		}
	} else {
		sa = sa.Unmap()
		ca = ca.Unmap()
		if !ca.Is4() {
			ca = netip.AddrFrom4([4]byte{192, 0, 2, 1})
		}
	}
	c.ep[Client] = endpoint{mac: clientMAC, addr: ca, port: cp, seq: randUint32(), ipID: uint16(randUint32())}
	c.ep[Server] = endpoint{mac: serverMAC, addr: sa, port: sp, seq: randUint32(), ipID: uint16(randUint32())}
	return c
}

func addrPort(a net.Addr, fallbackHost byte) (netip.Addr, uint16) {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		if ap.Addr().IsValid() {
			return ap.Addr(), ap.Port()
		}
	}
	if a != nil {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr(), ap.Port()
		}
	}
	return netip.AddrFrom4([4]byte{192, 0, 2, fallbackHost}), 0
}

func randUint32() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// Data records bytes that from sent to the other side, as segments of at
// most one MSS, each followed in time by the receiver's acknowledgement.
func (c *RecordedConn) Data(from Side, b []byte) {
	if len(b) == 0 {
		return
	}
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	snd, rcv := &c.ep[from], &c.ep[from.other()]
	if snd.fin || c.reset {
		return
	}
	ts := r.stampLocked()
	for i := 0; len(b) > 0; i++ {
		n := min(len(b), recorderMSS)
		seg := b[:n]
		b = b[n:]
		r.packetLocked(c, from, ts, layers.TCP{ACK: true, PSH: len(b) == 0, Seq: snd.seq, Ack: rcv.seq}, seg)
		snd.seq += uint32(n)
		if (i+1)%ackEvery == 0 && len(b) > 0 {
			r.packetLocked(c, from.other(), ts, layers.TCP{ACK: true, Seq: rcv.seq, Ack: snd.seq}, nil)
		}
	}
	r.packetLocked(c, from.other(), ts, layers.TCP{ACK: true, Seq: rcv.seq, Ack: snd.seq}, nil)
}

// ClientToServer records bytes sent by the client.
func (c *RecordedConn) ClientToServer(b []byte) { c.Data(Client, b) }

// ServerToClient records bytes sent by the server.
func (c *RecordedConn) ServerToClient(b []byte) { c.Data(Server, b) }

// Close records an orderly close (FIN) by side, and the other side's
// acknowledgement. Closing a side twice records nothing more.
func (c *RecordedConn) Close(side Side) {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	snd, rcv := &c.ep[side], &c.ep[side.other()]
	if snd.fin || c.reset {
		return
	}
	ts := r.stampLocked()
	r.packetLocked(c, side, ts, layers.TCP{FIN: true, ACK: true, Seq: snd.seq, Ack: rcv.seq}, nil)
	snd.seq++
	snd.fin = true
	r.packetLocked(c, side.other(), ts, layers.TCP{ACK: true, Seq: rcv.seq, Ack: snd.seq}, nil)
}

// Reset records an abortive close (RST) by side. Nothing is recorded on
// the connection after a reset.
func (c *RecordedConn) Reset(side Side) {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.reset {
		return
	}
	snd, rcv := &c.ep[side], &c.ep[side.other()]
	ts := r.stampLocked()
	r.packetLocked(c, side, ts, layers.TCP{RST: true, ACK: true, Seq: snd.seq, Ack: rcv.seq}, nil)
	c.reset = true
}

// stampLocked returns the current time, never earlier than the previous
// packet's, so that the capture's timestamps are monotonic.
func (r *Recorder) stampLocked() time.Time {
	t := r.now()
	if t.Before(r.last) {
		t = r.last
	}
	r.last = t
	return t
}

// packetLocked serialises one packet from side and appends it to the buffer.
func (r *Recorder) packetLocked(c *RecordedConn, from Side, ts time.Time, tcp layers.TCP, payload []byte) {
	src, dst := &c.ep[from], &c.ep[from.other()]
	tcp.SrcPort = layers.TCPPort(src.port)
	tcp.DstPort = layers.TCPPort(dst.port)
	if !tcp.RST {
		tcp.Window = recorderWindow
	}
	if tcp.SYN {
		tcp.Options = []layers.TCPOption{{
			OptionType: layers.TCPOptionKindMSS, OptionLength: 4,
			OptionData: []byte{byte(recorderMSS >> 8), byte(recorderMSS & 0xff)},
		}}
	}
	eth := layers.Ethernet{SrcMAC: src.mac, DstMAC: dst.mac}
	var netLayer gopacket.SerializableLayer
	if c.v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: src.addr.AsSlice(), DstIP: dst.addr.AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip)
		netLayer = ip
	} else {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: src.ipID, Flags: layers.IPv4DontFragment,
			Protocol: layers.IPProtocolTCP, SrcIP: src.addr.AsSlice(), DstIP: dst.addr.AsSlice()}
		src.ipID++
		tcp.SetNetworkLayerForChecksum(ip)
		netLayer = ip
	}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(r.buf, opts, &eth, netLayer, &tcp, gopacket.Payload(payload)); err != nil {
		// Only impossible inputs (such as a payload over 64 KiB) fail here.
		panic(fmt.Sprintf("capture: failed to serialise packet: %v", err))
	}
	data := r.buf.Bytes()
	r.pkts.add(ts, len(data), data)
}
