// Package pcapfile reads classic pcap and pcapng capture files as a stream
// of packets, exposing the pcapng Decryption Secrets Blocks that
// pcapgo.NgReader skips. It checks every length against sane limits, so a
// corrupted or hostile file yields an error, never a panic or a huge
// allocation.
package pcapfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Errors returned by Reader; check them with errors.Is.
var (
	// ErrNotCapture reports a file that is neither pcap nor pcapng.
	ErrNotCapture = errors.New("pcapfile: not a pcap or pcapng file")
	// ErrTruncated reports a file that ends in the middle of a packet or block.
	ErrTruncated = errors.New("pcapfile: file is truncated")
	// ErrCorrupt reports a file whose structure is inconsistent.
	ErrCorrupt = errors.New("pcapfile: file is corrupted")
)

// Limits on untrusted lengths.
const (
	maxPacket = 1 << 20  // larger than any snap length in use (262144)
	maxBlock  = 16 << 20 // pcapng block, including secrets blocks
)

// Packet is one captured packet. Data is only valid until the next call of
// Next.
type Packet struct {
	Data      []byte
	Length    int // length on the wire
	Time      time.Time
	LinkType  uint16
	Interface int
}

// Reader reads packets from a pcap or pcapng stream.
type Reader struct {
	r  *bufio.Reader
	ng bool

	// classic pcap state
	pcapLink uint16
	nanos    bool
	hdr      [16]byte

	// pcapng state
	bo      binary.ByteOrder
	ifaces  []iface
	buf     []byte
	secrets func(typ uint32, data []byte)
	offset  int64
}

type iface struct {
	linkType uint16
	unit     float64 // seconds per timestamp tick
	tsOffset int64   // seconds
}

// NewReader detects the format of r and reads its header. secrets, if not
// nil, is called with the type and data of every Decryption Secrets Block
// as it is reached (pcapng writes them before the packets they decrypt).
func NewReader(r io.Reader, secrets func(typ uint32, data []byte)) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		if len(magic) == 0 {
			return nil, fmt.Errorf("%w (the file is empty)", ErrNotCapture)
		}
		return nil, fmt.Errorf("%w (only %d bytes)", ErrNotCapture, len(magic))
	}
	rd := &Reader{r: br, secrets: secrets}
	switch binary.LittleEndian.Uint32(magic) {
	case 0x0A0D0D0A:
		rd.ng = true
		if err := rd.readSectionHeader(); err != nil {
			return nil, err
		}
		return rd, nil
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
		// Classic pcap is read here rather than with pcapgo.Reader, whose
		// layers.LinkType is 8 bits wide (Linux SLL2 is 276) and which
		// allocates whatever snap length the header claims.
		var hdr [24]byte
		if n, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil, fmt.Errorf("%w: the pcap header ends after %d of 24 bytes", ErrTruncated, n)
		}
		switch binary.LittleEndian.Uint32(hdr[0:4]) {
		case 0xa1b2c3d4, 0xa1b23c4d:
			rd.bo = binary.LittleEndian
		default:
			rd.bo = binary.BigEndian
		}
		rd.nanos = rd.bo.Uint32(hdr[0:4]) == 0xa1b23c4d
		// The link type's upper bits may carry FCS information.
		rd.pcapLink = uint16(rd.bo.Uint32(hdr[20:24]) & 0xffff)
		rd.offset = 24
		return rd, nil
	}
	return nil, fmt.Errorf("%w (it starts with % x)", ErrNotCapture, magic)
}

// Next returns the next packet, io.EOF at the end of the file, or an error
// wrapping ErrTruncated or ErrCorrupt.
func (r *Reader) Next() (Packet, error) {
	if !r.ng {
		return r.nextPcap()
	}
	for {
		typ, body, err := r.readBlock()
		if err != nil {
			return Packet{}, err
		}
		switch typ {
		case 0x0A0D0D0A:
			if err := r.parseSectionHeader(body); err != nil {
				return Packet{}, err
			}
		case 1:
			if err := r.parseInterface(body); err != nil {
				return Packet{}, err
			}
		case 6, 2: // enhanced packet, obsolete packet
			if len(body) < 20 {
				return Packet{}, fmt.Errorf("%w: packet block of %d bytes", ErrCorrupt, len(body))
			}
			var id int
			if typ == 6 {
				id = int(r.bo.Uint32(body[0:4]))
			} else {
				id = int(r.bo.Uint16(body[0:2]))
			}
			if id >= len(r.ifaces) {
				return Packet{}, fmt.Errorf("%w: packet on interface %d, but the section has %d", ErrCorrupt, id, len(r.ifaces))
			}
			ts := uint64(r.bo.Uint32(body[4:8]))<<32 | uint64(r.bo.Uint32(body[8:12]))
			capLen := int(r.bo.Uint32(body[12:16]))
			wireLen := int(r.bo.Uint32(body[16:20]))
			if capLen > len(body)-20 || capLen < 0 {
				return Packet{}, fmt.Errorf("%w: packet of %d bytes in a block of %d", ErrCorrupt, capLen, len(body))
			}
			ifc := r.ifaces[id]
			return Packet{Data: body[20 : 20+capLen], Length: wireLen, Time: ifc.time(ts), LinkType: ifc.linkType, Interface: id}, nil
		case 3: // simple packet
			if len(r.ifaces) == 0 || len(body) < 4 {
				return Packet{}, fmt.Errorf("%w: simple packet block without interface", ErrCorrupt)
			}
			wireLen := int(r.bo.Uint32(body[0:4]))
			data := body[4:]
			if wireLen < len(data) {
				data = data[:wireLen]
			}
			return Packet{Data: data, Length: wireLen, LinkType: r.ifaces[0].linkType}, nil
		case 0x0A:
			if len(body) < 8 {
				return Packet{}, fmt.Errorf("%w: decryption secrets block of %d bytes", ErrCorrupt, len(body))
			}
			st, n := r.bo.Uint32(body[0:4]), int(r.bo.Uint32(body[4:8]))
			if n > len(body)-8 || n < 0 {
				return Packet{}, fmt.Errorf("%w: decryption secrets of %d bytes in a block of %d", ErrCorrupt, n, len(body))
			}
			if r.secrets != nil {
				r.secrets(st, body[8:8+n])
			}
		}
	}
}

// readSectionHeader reads the first block, which must be a section header.
func (r *Reader) readSectionHeader() error {
	hdr, err := r.r.Peek(12)
	if err != nil {
		return fmt.Errorf("%w: the pcapng section header ends after %d bytes", ErrTruncated, len(hdr))
	}
	switch binary.LittleEndian.Uint32(hdr[8:12]) {
	case 0x1A2B3C4D:
		r.bo = binary.LittleEndian
	case 0x4D3C2B1A:
		r.bo = binary.BigEndian
	default:
		return fmt.Errorf("%w: bad pcapng byte-order magic % x", ErrNotCapture, hdr[8:12])
	}
	typ, body, err := r.readBlock()
	if err != nil {
		return err
	}
	if typ != 0x0A0D0D0A {
		return fmt.Errorf("%w: first block is not a section header", ErrCorrupt)
	}
	return r.parseSectionHeader(body)
}

func (r *Reader) parseSectionHeader(body []byte) error {
	if len(body) < 12 {
		return fmt.Errorf("%w: section header of %d bytes", ErrCorrupt, len(body))
	}
	if major := r.bo.Uint16(body[4:6]); major != 1 {
		return fmt.Errorf("%w: pcapng version %d is not supported", ErrCorrupt, major)
	}
	r.ifaces = r.ifaces[:0]
	return nil
}

// readBlock reads one pcapng block and returns its type and body (without
// type, lengths and, for a section header, with the byte-order magic
// first). The body is valid until the next call.
func (r *Reader) readBlock() (uint32, []byte, error) {
	var hdr [8]byte
	n, err := io.ReadFull(r.r, hdr[:])
	if err != nil {
		if err == io.EOF {
			return 0, nil, io.EOF
		}
		return 0, nil, fmt.Errorf("%w: a block header ends after %d of 8 bytes at offset %d", ErrTruncated, n, r.offset)
	}
	typ := r.bo.Uint32(hdr[0:4])
	if typ == 0x0A0D0D0A {
		// A new section may change the byte order.
		bom, err := r.r.Peek(4)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: section header at offset %d", ErrTruncated, r.offset)
		}
		switch binary.LittleEndian.Uint32(bom) {
		case 0x1A2B3C4D:
			r.bo = binary.LittleEndian
		case 0x4D3C2B1A:
			r.bo = binary.BigEndian
		default:
			return 0, nil, fmt.Errorf("%w: bad byte-order magic at offset %d", ErrCorrupt, r.offset)
		}
	}
	total := r.bo.Uint32(hdr[4:8])
	if total < 12 || total%4 != 0 || total > maxBlock {
		return 0, nil, fmt.Errorf("%w: block of type %#x at offset %d has length %d", ErrCorrupt, typ, r.offset, total)
	}
	rest := int(total) - 8
	if cap(r.buf) < rest {
		r.buf = make([]byte, rest)
	}
	r.buf = r.buf[:rest]
	if n, err := io.ReadFull(r.r, r.buf); err != nil {
		return 0, nil, fmt.Errorf("%w: a block of %d bytes at offset %d ends after %d", ErrTruncated, total, r.offset, n+8)
	}
	if trailer := r.bo.Uint32(r.buf[rest-4:]); trailer != total {
		return 0, nil, fmt.Errorf("%w: block at offset %d has lengths %d and %d", ErrCorrupt, r.offset, total, trailer)
	}
	r.offset += int64(total)
	return typ, r.buf[:rest-4], nil
}

func (r *Reader) parseInterface(body []byte) error {
	if len(body) < 8 {
		return fmt.Errorf("%w: interface block of %d bytes", ErrCorrupt, len(body))
	}
	if len(r.ifaces) >= 1<<16 {
		return fmt.Errorf("%w: too many interfaces", ErrCorrupt)
	}
	ifc := iface{linkType: r.bo.Uint16(body[0:2]), unit: 1e-6}
	opts := body[8:]
	for len(opts) >= 4 {
		code, n := r.bo.Uint16(opts[0:2]), int(r.bo.Uint16(opts[2:4]))
		opts = opts[4:]
		if n > len(opts) {
			return fmt.Errorf("%w: interface option of %d bytes in %d", ErrCorrupt, n, len(opts))
		}
		val := opts[:n]
		switch {
		case code == 0:
			opts = nil
			continue
		case code == 9 && n >= 1: // if_tsresol
			v := val[0]
			if v&0x80 != 0 {
				ifc.unit = math.Pow(2, -float64(v&0x7f))
			} else {
				ifc.unit = math.Pow(10, -float64(v))
			}
		case code == 14 && n >= 8: // if_tsoffset
			ifc.tsOffset = int64(r.bo.Uint64(val))
		}
		pad := (4 - n%4) % 4
		if n+pad > len(opts) {
			break
		}
		opts = opts[n+pad:]
	}
	r.ifaces = append(r.ifaces, ifc)
	return nil
}

func (ifc iface) time(ts uint64) time.Time {
	switch ifc.unit {
	case 1e-9:
		return time.Unix(ifc.tsOffset, int64(ts))
	case 1e-6:
		return time.Unix(ifc.tsOffset, 0).Add(time.Duration(ts) * time.Microsecond)
	}
	sec := float64(ts) * ifc.unit
	whole := math.Floor(sec)
	return time.Unix(ifc.tsOffset+int64(whole), int64((sec-whole)*1e9))
}

func (r *Reader) nextPcap() (Packet, error) {
	n, err := io.ReadFull(r.r, r.hdr[:])
	if err != nil {
		if err == io.EOF {
			return Packet{}, io.EOF
		}
		return Packet{}, fmt.Errorf("%w: a packet header ends after %d of 16 bytes at offset %d", ErrTruncated, n, r.offset)
	}
	sec, frac := r.bo.Uint32(r.hdr[0:4]), r.bo.Uint32(r.hdr[4:8])
	capLen, wireLen := r.bo.Uint32(r.hdr[8:12]), r.bo.Uint32(r.hdr[12:16])
	if capLen > maxPacket {
		return Packet{}, fmt.Errorf("%w: packet of %d bytes at offset %d", ErrCorrupt, capLen, r.offset)
	}
	if cap(r.buf) < int(capLen) {
		r.buf = make([]byte, max(capLen, 64<<10))
	}
	data := r.buf[:capLen]
	if n, err := io.ReadFull(r.r, data); err != nil {
		return Packet{}, fmt.Errorf("%w: a packet of %d bytes at offset %d ends after %d", ErrTruncated, capLen, r.offset, n)
	}
	r.offset += 16 + int64(capLen)
	ns := int64(frac)
	if !r.nanos {
		ns *= 1000
	}
	return Packet{Data: data, Length: int(max(wireLen, capLen)), Time: time.Unix(int64(sec), ns), LinkType: r.pcapLink}, nil
}
