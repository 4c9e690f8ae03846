package capture

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"golang.org/x/net/bpf"

	"github.com/parley-edu/parley/capture/internal/pcapfile"
)

func TestDSBLayout(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 4, 5, 97} {
		keys := bytes.Repeat([]byte{'k'}, n)
		b := dsbBlock(keys)
		pad := (4 - n%4) % 4
		if len(b) != 20+n+pad {
			t.Fatalf("%d bytes of keys: got block of %d bytes, want %d", n, len(b), 20+n+pad)
		}
		le := binary.LittleEndian
		for _, f := range []struct {
			name      string
			got, want uint32
		}{
			{"block type", le.Uint32(b[0:]), 0x0000000A},
			{"total length", le.Uint32(b[4:]), uint32(len(b))},
			{"secrets type", le.Uint32(b[8:]), 0x544c534b},
			{"secrets length", le.Uint32(b[12:]), uint32(n)},
			{"trailing total length", le.Uint32(b[len(b)-4:]), uint32(len(b))},
		} {
			if f.got != f.want {
				t.Errorf("%d bytes of keys: %s: got %#x, want %#x", n, f.name, f.got, f.want)
			}
		}
		if !bytes.Equal(b[16:16+n], keys) || !bytes.Equal(b[16+n:16+n+pad], make([]byte, pad)) {
			t.Errorf("%d bytes of keys: data or zero padding wrong: % x", n, b)
		}
	}
}

// TestRecorderWritesSecretsBeforePackets checks that the secrets block
// precedes the first packet and round-trips through our reader.
func TestRecorderWritesSecretsBeforePackets(t *testing.T) {
	r := NewRecorder()
	defer r.Close()
	const line = "CLIENT_TRAFFIC_SECRET_0 0001020304050607080900010203040506070809000102030405060708090001 aabbcc\n"
	r.AddKeyLog([]byte(line))
	c := r.Open(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5050})
	c.ClientToServer([]byte("hi\n"))
	c.Close(Client)
	var buf bytes.Buffer
	if _, err := r.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	var secrets []string
	packetsBefore := -1
	n := 0
	pr, err := pcapfile.NewReader(&buf, func(typ uint32, data []byte) {
		secrets = append(secrets, string(data))
		packetsBefore = n
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := pr.Next(); err != nil {
			break
		}
		n++
	}
	if len(secrets) != 1 || secrets[0] != line {
		t.Fatalf("got secrets %q, want [%q]", secrets, line)
	}
	if packetsBefore != 0 {
		t.Errorf("got the secrets block after %d packets, want before the first", packetsBefore)
	}
	if want := 3 + 2 + 2; n != want {
		t.Errorf("got %d packets, want %d (handshake, data + ACK, FIN + ACK)", n, want)
	}
}

// TestPacketBufferSpills checks that packets survive the move to the
// temporary file, in order.
func TestPacketBufferSpills(t *testing.T) {
	pb := packetBuffer{threshold: 1000}
	defer pb.close()
	var want [][]byte
	for i := 0; i < 100; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 10+i)
		want = append(want, p)
		if err := pb.add(time.Unix(1700000000, int64(i)), len(p), p); err != nil {
			t.Fatal(err)
		}
	}
	if pb.spill == nil {
		t.Fatal("got no spill file after 6 KB with a 1000-byte threshold")
	}
	i := 0
	err := pb.each(func(_ time.Time, wire int, data []byte) error {
		if !bytes.Equal(data, want[i]) || wire != len(want[i]) {
			t.Errorf("packet %d: got %d bytes, want %d", i, len(data), len(want[i]))
		}
		i++
		return nil
	})
	if err != nil || i != len(want) {
		t.Errorf("got %d packets and %v, want %d", i, err, len(want))
	}
}

func TestPortFilter(t *testing.T) {
	frame := func(proto layers.IPProtocol, sport, dport uint16, v6 bool) []byte {
		var pkt []byte
		if v6 {
			pkt = make([]byte, 14+40+20)
			binary.BigEndian.PutUint16(pkt[12:], 0x86dd)
			pkt[14+6] = byte(proto)
			binary.BigEndian.PutUint16(pkt[14+40:], sport)
			binary.BigEndian.PutUint16(pkt[14+42:], dport)
		} else {
			pkt = make([]byte, 14+24+20) // IPv4 with 4 bytes of options
			binary.BigEndian.PutUint16(pkt[12:], 0x0800)
			pkt[14] = 0x46
			pkt[14+9] = byte(proto)
			binary.BigEndian.PutUint16(pkt[14+24:], sport)
			binary.BigEndian.PutUint16(pkt[14+26:], dport)
		}
		return pkt
	}
	prog, err := portFilter([]int{5050, 7000}, 14)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"v4 to port", frame(layers.IPProtocolTCP, 40000, 5050, false), true},
		{"v4 from second port", frame(layers.IPProtocolTCP, 7000, 40000, false), true},
		{"v4 other port", frame(layers.IPProtocolTCP, 40000, 80, false), false},
		{"v4 udp", frame(layers.IPProtocolUDP, 40000, 5050, false), false},
		{"v6 to port", frame(layers.IPProtocolTCP, 40000, 5050, true), true},
		{"v6 other port", frame(layers.IPProtocolTCP, 40000, 81, true), false},
		{"arp", append(make([]byte, 12), 0x08, 0x06, 0, 0), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := vm.Run(tc.pkt)
			if err != nil {
				t.Fatal(err)
			}
			if got := n > 0; got != tc.want {
				t.Errorf("got accept %v, want %v", got, tc.want)
			}
		})
	}
}
