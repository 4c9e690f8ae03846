//go:build linux

package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/google/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// liveSource is an AF_PACKET socket, wrapped in an *os.File so that the
// runtime poller serves it: read deadlines and Close unblock a read.
type liveSource struct {
	f              *os.File
	rc             syscall.RawConn
	ignoreOutgoing bool
}

// rcvBuf is the socket receive buffer we ask for, so that bursts on a busy
// loopback are not dropped while the reader is scheduled out.
const rcvBuf = 32 << 20

// OpenLive opens a raw packet socket on cfg.Interface with the port filter
// attached in the kernel. Without root or CAP_NET_RAW it returns an error
// wrapping ErrLivePermission.
func OpenLive(cfg LiveConfig) (*Live, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("capture: no interface %q: %w", cfg.Interface, err)
	}
	sockType, linkType, header := unix.SOCK_RAW, layers.LinkTypeEthernet, 14
	if ifi.Flags&net.FlagLoopback == 0 && len(ifi.HardwareAddr) != 6 {
		// Not Ethernet-like (a tunnel, say): take the IP packets without
		// their link header.
		sockType, linkType, header = unix.SOCK_DGRAM, layers.LinkTypeRaw, 0
	}
	prog, err := portFilter(cfg.Ports, header)
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("capture: failed to assemble the port filter: %w", err)
	}
	// Protocol 0: the socket receives nothing until it is bound, so no
	// packet slips in before the filter is attached.
	fd, err := unix.Socket(unix.AF_PACKET, sockType|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%w (opening a packet socket: %v)", ErrLivePermission, err)
		}
		return nil, fmt.Errorf("capture: failed to open a packet socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}); err != nil {
		return nil, fmt.Errorf("capture: failed to attach the port filter: %w", err)
	}
	// A loopback packet passes the tap twice, once outgoing and once
	// incoming; keep only the incoming copy (Linux 4.20+; older kernels
	// get the same effect from the packet type in Capture).
	ignore := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1) == nil
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return nil, fmt.Errorf("capture: failed to bind to %s: %w", cfg.Interface, err)
	}
	f := os.NewFile(uintptr(fd), "packet:"+cfg.Interface)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		ok = true
		return nil, fmt.Errorf("capture: packet socket: %w", err)
	}
	ok = true
	return &Live{cfg: cfg, linkType: linkType, src: liveSource{f: f, rc: rc, ignoreOutgoing: ignore}}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Capture reads packets until ctx is done, maxPackets (if positive) have
// been captured, or Close is called; each of those ends it with a nil
// error.
func (l *Live) Capture(ctx context.Context, maxPackets int) error {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
			l.src.f.SetReadDeadline(time.Now())
		case <-stop:
		}
	}()
	buf := make([]byte, 1<<18)
	defer l.readStats()
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := l.src.rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("capture: failed to read from %s: %w", l.cfg.Interface, err)
		}
		if rerr != nil {
			if rerr == unix.EINTR {
				continue
			}
			return fmt.Errorf("capture: failed to read from %s: %w", l.cfg.Interface, rerr)
		}
		ts := time.Now()
		if sll, ok := from.(*unix.SockaddrLinklayer); ok && sll.Pkttype == unix.PACKET_OUTGOING && !l.src.ignoreOutgoing {
			continue
		}
		l.mu.Lock()
		l.pkts.add(ts, n, buf[:min(n, len(buf))])
		l.st.Packets++
		done := maxPackets > 0 && l.st.Packets >= maxPackets
		l.mu.Unlock()
		if done {
			return nil
		}
	}
}

// readStats adds the kernel's drop count to the stats.
func (l *Live) readStats() {
	l.src.rc.Control(func(fd uintptr) {
		st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
		if err == nil {
			l.mu.Lock()
			l.st.Dropped += int(st.Drops)
			l.mu.Unlock()
		}
	})
}

// Close closes the socket (ending Capture) and releases the packets.
func (l *Live) Close() error {
	err := l.src.f.Close()
	l.mu.Lock()
	l.pkts.close()
	l.mu.Unlock()
	return err
}
