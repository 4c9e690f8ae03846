package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// pcapBuilder writes a classic pcap of hand-made TCP packets.
type pcapBuilder struct {
	buf      bytes.Buffer
	linkType uint32
	t        time.Time
}

func newPcap(linkType uint32) *pcapBuilder {
	b := &pcapBuilder{linkType: linkType, t: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	var hdr [24]byte
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 262144)
	binary.LittleEndian.PutUint32(hdr[20:], linkType)
	b.buf.Write(hdr[:])
	return b
}

// seg describes one TCP segment from the client (c) or server.
type seg struct {
	fromClient bool
	flags      string // any of "S", "A", "F", "R"
	seq, ack   uint32
	data       string
}

var (
	testClient = net.IPv4(10, 0, 0, 1).To4()
	testServer = net.IPv4(10, 0, 0, 2).To4()
)

func (b *pcapBuilder) add(t *testing.T, s seg) {
	t.Helper()
	src, dst, sp, dp := testClient, testServer, layers.TCPPort(40000), layers.TCPPort(5050)
	if !s.fromClient {
		src, dst, sp, dp = dst, src, dp, sp
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
	tcp := &layers.TCP{SrcPort: sp, DstPort: dp, Seq: s.seq, Ack: s.ack, Window: 65535,
		SYN: strings.Contains(s.flags, "S"), ACK: strings.Contains(s.flags, "A"),
		FIN: strings.Contains(s.flags, "F"), RST: strings.Contains(s.flags, "R")}
	tcp.SetNetworkLayerForChecksum(ip)
	sb := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(sb, opts, ip, tcp, gopacket.Payload(s.data)); err != nil {
		t.Fatal(err)
	}
	ipPkt := sb.Bytes()
	var frame []byte
	switch b.linkType {
	case linkEthernet:
		frame = append([]byte{0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00}, ipPkt...)
	case linkSLL:
		frame = append([]byte{0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00}, ipPkt...)
	case linkSLL2:
		frame = append([]byte{0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 0, 0, 0, 0, 0, 1, 0, 0}, ipPkt...)
	case linkNull:
		frame = append([]byte{2, 0, 0, 0}, ipPkt...)
	case linkLoop:
		frame = append([]byte{0, 0, 0, 2}, ipPkt...)
	case linkRaw:
		frame = ipPkt
	default:
		t.Fatalf("link type %d not supported by the test builder", b.linkType)
	}
	b.t = b.t.Add(time.Millisecond)
	var hdr [16]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(b.t.Unix()))
	binary.LittleEndian.PutUint32(hdr[4:], uint32(b.t.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(frame)))
	binary.LittleEndian.PutUint32(hdr[12:], uint32(len(frame)))
	b.buf.Write(hdr[:])
	b.buf.Write(frame)
}

// Sequence numbers of the hand-made conversation.
const (
	cISN = 1000
	sISN = 5000
)

// conversationSegs is a plain conversation: handshake, a server greeting,
// three client lines in three segments, FINs.
func conversationSegs() []seg {
	greet := "* hello\n"
	l1, l2, l3 := "line one\n", "line two\n", "line three\n"
	c := uint32(cISN + 1)
	s := uint32(sISN + 1)
	segs := []seg{
		{true, "S", cISN, 0, ""},
		{false, "SA", sISN, c, ""},
		{true, "A", c, s, ""},
		{false, "A", s, c, greet},
		{true, "A", c, s + uint32(len(greet)), l1},
		{true, "A", c + uint32(len(l1)), s + uint32(len(greet)), l2},
		{true, "A", c + uint32(len(l1)+len(l2)), s + uint32(len(greet)), l3},
	}
	cEnd := c + uint32(len(l1)+len(l2)+len(l3))
	sEnd := s + uint32(len(greet))
	segs = append(segs,
		seg{true, "FA", cEnd, sEnd, ""},
		seg{false, "FA", sEnd, cEnd + 1, ""},
		seg{true, "A", cEnd + 1, sEnd + 1, ""},
	)
	return segs
}

func readBytes(t *testing.T, data []byte, opts ReadOptions) ([]Event, error) {
	t.Helper()
	var evs []Event
	err := Read(bytes.NewReader(data), opts, func(e Event) error {
		evs = append(evs, e)
		return nil
	})
	return evs, err
}

// messages returns "direction: plaintext" of every message.
func messages(evs []Event) []string {
	var out []string
	for _, e := range evs {
		if e.Type == EventMessage {
			out = append(out, e.Direction+": "+e.Plaintext)
		}
	}
	return out
}

func notes(evs []Event) string {
	var out []string
	for _, e := range evs {
		if e.Type == EventNote {
			out = append(out, e.Text)
		}
	}
	return strings.Join(out, "\n")
}

func TestReassembly(t *testing.T) {
	all := []string{"server: * hello", "client: line one", "client: line two", "client: line three"}
	tests := []struct {
		name     string
		order    []int // indexes into conversationSegs
		want     []string
		wantNote string
		wantMid  bool
		wantIDs  int
	}{
		{name: "in order", order: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, want: all},
		{name: "out of order", order: []int{0, 1, 2, 3, 4, 6, 5, 7, 8, 9}, want: all},
		{name: "retransmission", order: []int{0, 1, 2, 3, 4, 4, 5, 5, 6, 7, 8, 9}, want: all},
		{name: "gap", order: []int{0, 1, 2, 3, 4, 6, 7, 8, 9},
			want:     []string{"server: * hello", "client: line one", "client: line three"},
			wantNote: "gap: 9 bytes from the client were not captured"},
		{name: "mid-stream start", order: []int{5, 3, 6, 7, 8, 9},
			want:    []string{"client: line two", "server: * hello", "client: line three"},
			wantMid: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			segs := conversationSegs()
			b := newPcap(linkEthernet)
			for _, i := range tc.order {
				b.add(t, segs[i])
			}
			evs, err := readBytes(t, b.buf.Bytes(), ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := messages(evs)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got messages %q, want %q", got, tc.want)
			}
			if tc.wantNote != "" && !strings.Contains(notes(evs), tc.wantNote) {
				t.Errorf("got notes %q, want one containing %q", notes(evs), tc.wantNote)
			}
			streams := 0
			for _, e := range evs {
				if e.Type == EventStream {
					streams++
					if e.Stream != "10.0.0.1:40000-10.0.0.2:5050" {
						t.Errorf("got stream %q, want client 10.0.0.1:40000 first", e.Stream)
					}
					if e.Scheme != "plain" {
						t.Errorf("got scheme %q, want plain", e.Scheme)
					}
					if mid := strings.Contains(e.Text, "mid-stream"); mid != tc.wantMid {
						t.Errorf("stream text %q: mid-stream %v, want %v", e.Text, mid, tc.wantMid)
					}
				}
			}
			if streams != 1 {
				t.Errorf("got %d streams, want 1", streams)
			}
		})
	}
}

func TestLinkTypes(t *testing.T) {
	for _, lt := range []struct {
		name string
		typ  uint32
	}{{"ethernet", linkEthernet}, {"linux-sll", linkSLL}, {"linux-sll2", linkSLL2}, {"null", linkNull}, {"loop", linkLoop}, {"raw", linkRaw}} {
		t.Run(lt.name, func(t *testing.T) {
			b := newPcap(lt.typ)
			for _, s := range conversationSegs() {
				b.add(t, s)
			}
			evs, err := readBytes(t, b.buf.Bytes(), ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := messages(evs); len(got) != 4 {
				t.Errorf("got messages %q, want 4", got)
			}
		})
	}
}

func TestPortAndSchemeOverrides(t *testing.T) {
	b := newPcap(linkEthernet)
	for _, s := range conversationSegs() {
		b.add(t, s)
	}
	tests := []struct {
		name       string
		opts       ReadOptions
		wantScheme string
		wantMsgs   int
	}{
		{"port matches", ReadOptions{Ports: []int{5050}}, "plain", 4},
		{"port filters out", ReadOptions{Ports: []int{6000}}, "", 0},
		{"scheme forced", ReadOptions{Scheme: "unknown"}, "unknown", 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := readBytes(t, b.buf.Bytes(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			scheme, n := "", 0
			for _, e := range evs {
				if e.Type == EventStream {
					scheme = e.Scheme
				}
				if e.Type == EventMessage {
					n++
				}
			}
			if scheme != tc.wantScheme || n != tc.wantMsgs {
				t.Errorf("got scheme %q and %d messages, want %q and %d", scheme, n, tc.wantScheme, tc.wantMsgs)
			}
		})
	}
}

func TestBadFiles(t *testing.T) {
	good := newPcap(linkEthernet)
	for _, s := range conversationSegs() {
		good.add(t, s)
	}
	pcap := good.buf.Bytes()
	ng, err := readTestdata("plain.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	badBlock := bytes.Clone(ng)
	binary.LittleEndian.PutUint32(badBlock[len(badBlock)-4:], 7) // trailing length of the last block
	tests := []struct {
		name     string
		data     []byte
		want     error
		wantMsgs bool // some messages are still shown
	}{
		{"empty", nil, ErrNotCapture, false},
		{"text", []byte("hello, this is not a capture\n"), ErrNotCapture, false},
		{"pcap header cut", pcap[:10], ErrTruncated, false},
		{"pcap cut mid-packet", pcap[:len(pcap)-20], ErrTruncated, true},
		{"pcapng cut mid-block", ng[:len(ng)-30], ErrTruncated, true},
		{"pcapng bad block length", badBlock, ErrCorrupt, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := readBytes(t, tc.data, ReadOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			if got := len(messages(evs)) > 0; got != tc.wantMsgs {
				t.Errorf("got messages %v before the error, want %v", got, tc.wantMsgs)
			}
		})
	}
}
