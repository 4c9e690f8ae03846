package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/reassembly"

	"github.com/parley-edu/parley/capture/internal/pcapfile"
)

// ReadOptions tunes Read.
type ReadOptions struct {
	// Scheme, when set, overrides recognition: every stream is dissected as
	// this scheme ("plain", "xor", "aes-cbc-hmac", "aes-cbc", "tls", "mtls",
	// or "unknown" for a hex preview).
	Scheme string
	// Ports, when set, limits the view to streams with one end on one of
	// these ports, and that end is taken to be the server.
	Ports []int
	// PSK is the pre-shared key of aes-cbc-hmac / aes-cbc; with it their
	// records are decrypted (and, for aes-cbc-hmac, their tags verified).
	PSK []byte
	// KeyLog is TLS key log text in NSS format; with it TLS 1.3 application
	// data is decrypted. Decryption Secrets Blocks in a pcapng file are used
	// as well, unless IgnoreEmbeddedKeys is set.
	KeyLog []byte
	// IgnoreEmbeddedKeys skips the TLS keys a pcapng file carries, so that
	// a capture parley wrote reads as an eavesdropper without the keys sees
	// it.
	IgnoreEmbeddedKeys bool
}

// Errors of Read for files it cannot read; check them with errors.Is.
var (
	ErrNotCapture = errors.New("capture: not a pcap or pcapng file")
	ErrTruncated  = errors.New("capture: the capture file is truncated")
	ErrCorrupt    = errors.New("capture: the capture file is corrupted")
)

// fileError maps an error of package pcapfile to ours, keeping its detail.
func fileError(err error) error {
	for _, m := range []struct{ from, to error }{
		{pcapfile.ErrNotCapture, ErrNotCapture},
		{pcapfile.ErrTruncated, ErrTruncated},
		{pcapfile.ErrCorrupt, ErrCorrupt},
	} {
		if errors.Is(err, m.from) {
			return fmt.Errorf("%w%s", m.to, strings.TrimPrefix(err.Error(), m.from.Error()))
		}
	}
	return fmt.Errorf("capture: failed to read the capture: %w", err)
}

// ReadFile reads the pcap or pcapng file at path and returns every event.
// For a truncated file it returns the events read before the damage along
// with the error.
func ReadFile(path string, opts ReadOptions) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	defer f.Close()
	var evs []Event
	err = Read(f, opts, func(e Event) error {
		evs = append(evs, e)
		return nil
	})
	return evs, err
}

// Read reads a pcap or pcapng stream from r, reassembles its TCP streams and
// calls emit with every event, in order. It streams: memory grows with the
// number of open TCP streams and their unacknowledged gaps, not with the
// size of the file. When the file is truncated or corrupted, Read still
// emits what it could read (ending every stream) and then returns an error
// wrapping ErrTruncated or ErrCorrupt. An error from emit stops Read and is
// returned as is.
func Read(r io.Reader, opts ReadOptions, emit func(Event) error) error {
	rd := newReader(opts, emit)
	pr, err := pcapfile.NewReader(r, rd.onSecrets)
	if err != nil {
		return fileError(err)
	}
	var readErr error
	for rd.err == nil {
		p, err := pr.Next()
		if err != nil {
			if err != io.EOF {
				readErr = fileError(err)
			}
			break
		}
		rd.packet(p)
	}
	if rd.err != nil {
		return rd.err
	}
	rd.asm.FlushAll()
	if rd.err != nil {
		return rd.err
	}
	return readErr
}

// Memory bounds of the reassembly: pages of about 1900 bytes buffered for
// out-of-order data, per connection and in total; past them the assembler
// gives up waiting and reports a gap.
const (
	maxPagesPerConn = 1024
	maxPagesTotal   = 32768
	flushInterval   = 30 * time.Second
	idleTimeout     = 2 * time.Minute
)

// reader is the state of one Read.
type reader struct {
	opts  ReadOptions
	emit  func(Event) error
	err   error // first error from emit
	keys  *keyLog
	asm   *reassembly.Assembler
	ports map[uint16]bool

	ip4 layers.IPv4
	ip6 layers.IPv6
	tcp layers.TCP

	logins    map[int]string // stream id -> the name a login prompt asked for
	nextID    int
	lastFlush time.Time
	lastTime  time.Time
	nonTCP    int
}

func newReader(opts ReadOptions, emit func(Event) error) *reader {
	rd := &reader{opts: opts, emit: emit, keys: newKeyLog()}
	if len(opts.KeyLog) > 0 {
		rd.keys.add(opts.KeyLog)
		rd.keys.flush()
	}
	if len(opts.Ports) > 0 {
		rd.ports = map[uint16]bool{}
		for _, p := range opts.Ports {
			rd.ports[uint16(p)] = true
		}
	}
	rd.asm = reassembly.NewAssembler(reassembly.NewStreamPool(rd))
	rd.asm.MaxBufferedPagesPerConnection = maxPagesPerConn
	rd.asm.MaxBufferedPagesTotal = maxPagesTotal
	return rd
}

func (rd *reader) onSecrets(typ uint32, data []byte) {
	if typ == secretsTypeTLS && !rd.opts.IgnoreEmbeddedKeys {
		rd.keys.add(data)
		rd.keys.flush()
	}
}

func (rd *reader) send(e Event) {
	if rd.err != nil {
		return
	}
	rd.err = rd.emit(e)
	if c, ok := rd.watchLogin(e); ok && rd.err == nil {
		rd.err = rd.emit(c)
	}
}

// asmContext carries a packet's capture info through the assembler. The
// assembler keeps it with queued out-of-order data, so each packet needs
// its own.
type asmContext struct{ ci gopacket.CaptureInfo }

func (c *asmContext) GetCaptureInfo() gopacket.CaptureInfo { return c.ci }

func (rd *reader) packet(p pcapfile.Packet) {
	proto, l3 := linkPayload(p.LinkType, p.Data)
	var netFlow gopacket.Flow
	var seg []byte
	switch proto {
	case 4:
		if rd.ip4.DecodeFromBytes(l3, gopacket.NilDecodeFeedback) != nil || rd.ip4.Protocol != layers.IPProtocolTCP {
			rd.nonTCP++
			return
		}
		if rd.ip4.Flags&layers.IPv4MoreFragments != 0 || rd.ip4.FragOffset != 0 {
			rd.nonTCP++ // fragments of TCP are vanishingly rare; skip them
			return
		}
		netFlow, seg = rd.ip4.NetworkFlow(), rd.ip4.Payload
	case 6:
		if rd.ip6.DecodeFromBytes(l3, gopacket.NilDecodeFeedback) != nil || rd.ip6.NextHeader != layers.IPProtocolTCP {
			rd.nonTCP++
			return
		}
		netFlow, seg = rd.ip6.NetworkFlow(), rd.ip6.Payload
	default:
		rd.nonTCP++
		return
	}
	if rd.tcp.DecodeFromBytes(seg, gopacket.NilDecodeFeedback) != nil {
		rd.nonTCP++
		return
	}
	if rd.ports != nil && !rd.ports[uint16(rd.tcp.SrcPort)] && !rd.ports[uint16(rd.tcp.DstPort)] {
		return
	}
	rd.lastTime = p.Time
	ctx := &asmContext{ci: gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: p.Length}}
	rd.asm.AssembleWithContext(netFlow, &rd.tcp, ctx)
	if p.Time.Sub(rd.lastFlush) > flushInterval {
		if !rd.lastFlush.IsZero() {
			rd.asm.FlushCloseOlderThan(p.Time.Add(-idleTimeout))
		}
		rd.lastFlush = p.Time
	}
}

// Link types (https://www.tcpdump.org/linktypes.html).
const (
	linkNull     = 0
	linkEthernet = 1
	linkRawAlt1  = 12
	linkRawAlt2  = 14
	linkRaw      = 101
	linkLoop     = 108
	linkSLL      = 113
	linkIPv4     = 228
	linkIPv6     = 229
	linkSLL2     = 276
)

// linkPayload strips the link-layer header and returns the IP version (4
// or 6, 0 for anything else) and the IP packet.
func linkPayload(linkType uint16, b []byte) (int, []byte) {
	var etherType uint16
	switch linkType {
	case linkEthernet:
		if len(b) < 14 {
			return 0, nil
		}
		etherType, b = binary.BigEndian.Uint16(b[12:14]), b[14:]
		for (etherType == 0x8100 || etherType == 0x88a8) && len(b) >= 4 {
			etherType, b = binary.BigEndian.Uint16(b[2:4]), b[4:]
		}
	case linkSLL:
		if len(b) < 16 {
			return 0, nil
		}
		etherType, b = binary.BigEndian.Uint16(b[14:16]), b[16:]
	case linkSLL2:
		if len(b) < 20 {
			return 0, nil
		}
		etherType, b = binary.BigEndian.Uint16(b[0:2]), b[20:]
	case linkNull, linkLoop:
		if len(b) < 4 {
			return 0, nil
		}
		// The family is in the capturing host's byte order (null) or
		// network order (loop); values are small, so try both.
		fam := binary.LittleEndian.Uint32(b[0:4])
		if fam > 0xffff {
			fam = binary.BigEndian.Uint32(b[0:4])
		}
		b = b[4:]
		switch fam {
		case 2:
			return 4, b
		case 10, 24, 28, 30:
			return 6, b
		}
		return 0, nil
	case linkRaw, linkRawAlt1, linkRawAlt2, linkIPv4, linkIPv6:
		if len(b) == 0 {
			return 0, nil
		}
		switch b[0] >> 4 {
		case 4:
			return 4, b
		case 6:
			return 6, b
		}
		return 0, nil
	default:
		return 0, nil
	}
	switch etherType {
	case 0x0800:
		return 4, b
	case 0x86dd:
		return 6, b
	}
	return 0, nil
}

// New is called by the assembler for every new TCP connection.
func (rd *reader) New(netFlow, tcpFlow gopacket.Flow, tcp *layers.TCP, ac reassembly.AssemblerContext) reassembly.Stream {
	s := &stream{rd: rd, first: ac.GetCaptureInfo().Timestamp, sawSYN: tcp.SYN}
	src := endpointString(netFlow.Src(), tcpFlow.Src())
	dst := endpointString(netFlow.Dst(), tcpFlow.Dst())
	sp, dp := uint16(tcp.SrcPort), uint16(tcp.DstPort)
	// Who is the client: the SYN tells; without it (a capture that starts
	// mid-stream), --port, else the lower port is taken to be the server.
	switch {
	case tcp.SYN && !tcp.ACK:
		s.firstIsClient = true
	case tcp.SYN && tcp.ACK:
		s.firstIsClient = false
	case rd.ports != nil && rd.ports[dp] != rd.ports[sp]:
		s.firstIsClient = rd.ports[dp]
		s.midStream = true
	default:
		s.firstIsClient = dp < sp
		s.midStream = true
		s.guessed = true
	}
	if s.firstIsClient {
		s.name = src + "-" + dst
	} else {
		s.name = dst + "-" + src
	}
	return s
}

func endpointString(ip, port gopacket.Endpoint) string {
	return net.JoinHostPort(ip.String(), port.String())
}

// chunk is data held back while a stream's scheme is not yet known.
type chunk struct {
	side Side
	t    time.Time
	data []byte
	gap  int
}

// maxPending bounds what a stream holds back before its scheme is decided.
const maxPending = 8 << 10

// stream is one TCP connection: it implements reassembly.Stream, holds back
// the first bytes until its scheme is recognised, then feeds its dissector.
type stream struct {
	rd            *reader
	id            int
	name          string
	first         time.Time
	last          time.Time // time of the latest packet
	firstIsClient bool      // the assembler's client-to-server direction is our client's
	midStream     bool
	guessed       bool
	sawSYN        bool

	scheme  string
	d       dissector
	pending []chunk
	npend   [2]int
	ended   bool
	reset   [2]bool
}

// A dissector turns one stream's reassembled bytes into events for one
// scheme. Bytes passed to data are only valid during the call.
type dissector interface {
	data(side Side, t time.Time, b []byte)
	gap(side Side, t time.Time, n int)
	end(t time.Time)
}

func (s *stream) side(dir reassembly.TCPFlowDirection) Side {
	if (dir == reassembly.TCPDirClientToServer) == s.firstIsClient {
		return Client
	}
	return Server
}

// Accept is called for every packet; it forces the start of a stream whose
// SYN was not captured and notes resets.
func (s *stream) Accept(tcp *layers.TCP, ci gopacket.CaptureInfo, dir reassembly.TCPFlowDirection, nextSeq reassembly.Sequence, start *bool, ac reassembly.AssemblerContext) bool {
	s.last = ci.Timestamp
	if nextSeq == -1 && !tcp.SYN {
		*start = true
	}
	if tcp.RST {
		side := s.side(dir)
		if !s.reset[side] {
			s.reset[side] = true
			s.resetAt(side, ci.Timestamp)
		}
	}
	return true
}

func (s *stream) resetAt(side Side, t time.Time) {
	if s.d == nil {
		s.pending = append(s.pending, chunk{side: side, t: t, gap: -1})
		return
	}
	s.note(side, t, side.String()+" reset the connection (RST)")
}

// ReassembledSG is called with reassembled data, in order per direction.
func (s *stream) ReassembledSG(sg reassembly.ScatterGather, ac reassembly.AssemblerContext) {
	n, _ := sg.Lengths()
	dir, _, _, skip := sg.Info()
	side := s.side(dir)
	t := s.last
	if ac != nil {
		t = ac.GetCaptureInfo().Timestamp
	}
	if skip > 0 {
		s.feedGap(side, t, skip)
	}
	if n > 0 {
		s.feed(side, t, sg.Fetch(n))
	}
}

// ReassemblyComplete is called once, when the connection is over.
func (s *stream) ReassemblyComplete(ac reassembly.AssemblerContext) bool {
	if s.ended {
		return true
	}
	s.ended = true
	t := s.last // the assembler passes no context here
	if s.d == nil {
		if len(s.pending) == 0 && !s.sawSYN {
			// Only the tail of a connection (a last ACK or FIN after an
			// earlier stream ended, or an idle connection): nothing to show.
			return true
		}
		s.decide(true)
	}
	s.d.end(t)
	return true
}

func (s *stream) feed(side Side, t time.Time, b []byte) {
	if s.d != nil {
		s.d.data(side, t, b)
		return
	}
	s.pending = append(s.pending, chunk{side: side, t: t, data: append([]byte(nil), b...)})
	s.npend[side] += len(b)
	s.decide(s.npend[Client] > maxPending || s.npend[Server] > maxPending)
}

func (s *stream) feedGap(side Side, t time.Time, n int) {
	if s.d != nil {
		s.d.gap(side, t, n)
		return
	}
	s.pending = append(s.pending, chunk{side: side, t: t, gap: n})
	s.midStream = true
}

// decide recognises the scheme from the bytes held back (or takes it from
// the options) and, once known, starts the dissector and replays them.
// With final, it must decide.
func (s *stream) decide(final bool) {
	how := "recognised from the bytes"
	scheme := s.rd.opts.Scheme
	if scheme != "" {
		how = "set by --scheme"
	} else {
		var first [2][]byte
		for _, c := range s.pending {
			if c.gap != 0 {
				continue
			}
			if len(first[c.side]) < 512 {
				first[c.side] = append(first[c.side], c.data...)
			}
		}
		var ok bool
		scheme, ok = detectScheme(first[Client], first[Server], s.midStream, final)
		if !ok {
			return
		}
	}
	if s.midStream {
		how += "; the capture starts mid-stream"
	}
	if s.guessed {
		how += "; client and server guessed from the ports (use --port to say which is the server)"
	}
	s.scheme = scheme
	s.rd.nextID++
	s.id = s.rd.nextID
	s.rd.send(Event{Type: EventStream, Stream: s.name, StreamID: s.id, Scheme: scheme, Time: s.first, Text: how})
	s.d = newDissector(scheme, s)
	pending := s.pending
	s.pending = nil
	for _, c := range pending {
		switch {
		case c.gap < 0:
			s.resetAt(c.side, c.t)
		case c.gap > 0:
			s.d.gap(c.side, c.t, c.gap)
		default:
			s.d.data(c.side, c.t, c.data)
		}
	}
}

func newDissector(scheme string, s *stream) dissector {
	switch scheme {
	case "plain":
		return newPlainDissector(s)
	case "tls", "mtls":
		return newTLSDissector(s)
	case "xor":
		return newXORDissector(s)
	case "aes-cbc-hmac", "aes-cbc":
		return newAESDissector(s)
	}
	return newUnknownDissector(s)
}

// event returns an event of this stream with the common fields set.
func (s *stream) event(typ string, side Side, t time.Time) Event {
	return Event{Type: typ, Stream: s.name, StreamID: s.id, Direction: side.String(), Scheme: s.scheme, Time: t}
}

func (s *stream) note(side Side, t time.Time, text string) {
	e := s.event(EventNote, side, t)
	e.Text = text
	s.rd.send(e)
}

func gapText(side Side, n int) string {
	return "gap: " + strconv.Itoa(n) + " bytes from the " + side.String() + " were not captured"
}
