package capture

import (
	"errors"
	"fmt"
	"sync"

	"github.com/google/gopacket/layers"
	"golang.org/x/net/bpf"
)

// LiveConfig configures a live capture.
type LiveConfig struct {
	// Interface is the network interface to sniff, such as "lo".
	Interface string
	// Ports limits the capture to TCP packets from or to these ports (a
	// kernel BPF filter, so nothing else is even copied); empty means every
	// TCP packet.
	Ports []int
}

// Errors of OpenLive; check them with errors.Is.
var (
	// ErrLivePermission reports a process without the privilege to open a
	// raw packet socket.
	ErrLivePermission = errors.New("capture: live capture needs root or the CAP_NET_RAW capability")
	// ErrLiveUnsupported reports an OS without our live capture source.
	ErrLiveUnsupported = errors.New("capture: live capture is Linux-only; use capture tap")
)

// LiveStats counts what a live capture saw.
type LiveStats struct {
	Packets int // packets captured
	Dropped int // packets the kernel dropped because we read too slowly
}

// A Live captures packets from a network interface. OpenLive opens it,
// Capture reads until told to stop, WriteFile writes the packets as pcapng,
// Close releases the socket and buffer. Close may be called from any
// goroutine, also to end Capture; the other methods are for one goroutine.
type Live struct {
	cfg      LiveConfig
	linkType layers.LinkType

	mu   sync.Mutex // guards pkts and stats
	pkts packetBuffer
	st   LiveStats

	src liveSource
}

// WriteFile writes the captured packets to a pcapng file at path.
func (l *Live) WriteFile(path string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return writeCaptureFile(path, l.linkType, l.cfg.Interface, nil, &l.pkts)
}

// Stats reports what was captured and dropped so far.
func (l *Live) Stats() LiveStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// maxFilterPorts bounds the ports of one BPF filter, so that its jumps fit
// in the 8-bit offsets of classic BPF.
const maxFilterPorts = 32

// portFilter builds a classic BPF program that accepts TCP over IPv4 or
// IPv6 (without extension headers) from or to one of ports (any port when
// ports is empty). linkHeader is the length of the link-layer header: 14
// for Ethernet, whose EtherType is checked, or 0 for raw IP, whose version
// nibble is.
func portFilter(ports []int, linkHeader int) ([]bpf.Instruction, error) {
	if len(ports) > maxFilterPorts {
		return nil, fmt.Errorf("capture: at most %d ports per capture, got %d", maxFilterPorts, len(ports))
	}
	for _, p := range ports {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("capture: port %d is out of range 1-65535", p)
		}
	}
	a := &bpfAsm{labels: map[string]int{}}
	base := uint32(linkHeader)
	if linkHeader == 14 {
		a.add(bpf.LoadAbsolute{Off: 12, Size: 2})
		a.jeq(0x0800, "v4", "")
		a.jeq(0x86dd, "v6", "reject")
	} else {
		a.add(bpf.LoadAbsolute{Off: 0, Size: 1})
		a.add(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
		a.jeq(4, "v4", "")
		a.jeq(6, "v6", "reject")
	}
	a.label("v4")
	a.add(bpf.LoadAbsolute{Off: base + 9, Size: 1})
	a.jeq(6, "", "reject")
	if len(ports) == 0 {
		a.jump("accept")
	} else {
		a.add(bpf.LoadAbsolute{Off: base + 6, Size: 2})
		a.jset(0x1fff, "reject", "") // a later fragment has no TCP header
		a.add(bpf.LoadMemShift{Off: base})
		a.add(bpf.LoadIndirect{Off: base, Size: 2})
		a.ports(ports, "")
		a.add(bpf.LoadIndirect{Off: base + 2, Size: 2})
		a.ports(ports, "reject")
	}
	a.label("v6")
	a.add(bpf.LoadAbsolute{Off: base + 6, Size: 1})
	a.jeq(6, "", "reject")
	if len(ports) == 0 {
		a.jump("accept")
	} else {
		a.add(bpf.LoadAbsolute{Off: base + 40, Size: 2})
		a.ports(ports, "")
		a.add(bpf.LoadAbsolute{Off: base + 42, Size: 2})
		a.ports(ports, "reject")
	}
	a.label("accept")
	a.add(bpf.RetConstant{Val: 1 << 18})
	a.label("reject")
	a.add(bpf.RetConstant{Val: 0})
	return a.assemble()
}

// bpfAsm assembles classic BPF with symbolic jump targets; "" means the
// next instruction.
type bpfAsm struct {
	ins    []bpfIns
	labels map[string]int
}

type bpfIns struct {
	ins    bpf.Instruction
	jt, jf string
	always bool
}

func (a *bpfAsm) add(i bpf.Instruction) { a.ins = append(a.ins, bpfIns{ins: i}) }
func (a *bpfAsm) label(l string)        { a.labels[l] = len(a.ins) }
func (a *bpfAsm) jeq(v uint32, t, f string) {
	a.ins = append(a.ins, bpfIns{ins: bpf.JumpIf{Cond: bpf.JumpEqual, Val: v}, jt: t, jf: f})
}
func (a *bpfAsm) jset(v uint32, t, f string) {
	a.ins = append(a.ins, bpfIns{ins: bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: v}, jt: t, jf: f})
}
func (a *bpfAsm) jump(l string) { a.ins = append(a.ins, bpfIns{jt: l, always: true}) }

// ports compares A with each port, jumping to accept on a match and to
// otherwise after the last.
func (a *bpfAsm) ports(ports []int, otherwise string) {
	for i, p := range ports {
		f := ""
		if i == len(ports)-1 {
			f = otherwise
		}
		a.jeq(uint32(p), "accept", f)
	}
}

func (a *bpfAsm) assemble() ([]bpf.Instruction, error) {
	out := make([]bpf.Instruction, len(a.ins))
	skip := func(i int, l string) (uint8, error) {
		if l == "" {
			return 0, nil
		}
		j, ok := a.labels[l]
		if !ok || j <= i || j-i-1 > 255 {
			return 0, fmt.Errorf("capture: bad BPF jump to %s", l)
		}
		return uint8(j - i - 1), nil
	}
	for i, in := range a.ins {
		if in.always {
			s, err := skip(i, in.jt)
			if err != nil {
				return nil, err
			}
			out[i] = bpf.Jump{Skip: uint32(s)}
			continue
		}
		j, ok := in.ins.(bpf.JumpIf)
		if !ok {
			out[i] = in.ins
			continue
		}
		var err error
		if j.SkipTrue, err = skip(i, in.jt); err != nil {
			return nil, err
		}
		if j.SkipFalse, err = skip(i, in.jf); err != nil {
			return nil, err
		}
		out[i] = j
	}
	return out, nil
}
