package capture

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// pcapng Decryption Secrets Block (pcapng draft §4.7).
const (
	blockTypeDSB   = 0x0000000A
	secretsTypeTLS = 0x544c534b // "TLSK": an NSS key log
)

// KeyLogPath is where the NSS key log of the capture at path is saved when
// its TLS keys are known: beside it, named after it (room.pcapng gets
// room.keys.log), so that several captures can share a folder.
func KeyLogPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".keys.log"
}

// defaultSpillThreshold is how many bytes of packets a packetBuffer keeps in
// memory before it moves them to a temporary file.
const defaultSpillThreshold = 32 << 20

// packetBuffer holds captured packets until the capture file can be written.
// It keeps them in memory up to a threshold, then spills them to a temporary
// file. Each packet is stored as timestamp (8 bytes, Unix nanoseconds), wire
// length (4), captured length (4) and data. It is not safe for concurrent
// use; its owner locks.
type packetBuffer struct {
	mem       []byte
	threshold int
	spill     *os.File
	spillW    *bufio.Writer
	n         int
	bytes     int64
	err       error
}

func (pb *packetBuffer) add(ts time.Time, wireLen int, data []byte) error {
	if pb.err != nil {
		return pb.err
	}
	var hdr [16]byte
	binary.LittleEndian.PutUint64(hdr[0:8], uint64(ts.UnixNano()))
	binary.LittleEndian.PutUint32(hdr[8:12], uint32(wireLen))
	binary.LittleEndian.PutUint32(hdr[12:16], uint32(len(data)))
	pb.n++
	pb.bytes += int64(len(data))
	if pb.spill == nil {
		pb.mem = append(pb.mem, hdr[:]...)
		pb.mem = append(pb.mem, data...)
		threshold := pb.threshold
		if threshold == 0 {
			threshold = defaultSpillThreshold
		}
		if len(pb.mem) <= threshold {
			return nil
		}
		f, err := os.CreateTemp("", "parley-capture-*.tmp")
		if err != nil {
			pb.err = fmt.Errorf("capture: failed to create spill file for packets: %w", err)
			return pb.err
		}
		pb.spill, pb.spillW = f, bufio.NewWriterSize(f, 1<<20)
		if _, err := pb.spillW.Write(pb.mem); err != nil {
			pb.err = fmt.Errorf("capture: failed to spill packets to %s: %w", f.Name(), err)
			return pb.err
		}
		pb.mem = nil
		return nil
	}
	pb.spillW.Write(hdr[:])
	if _, err := pb.spillW.Write(data); err != nil {
		pb.err = fmt.Errorf("capture: failed to spill packets to %s: %w", pb.spill.Name(), err)
	}
	return pb.err
}

// each calls f for every packet in order. data is only valid during f.
func (pb *packetBuffer) each(f func(ts time.Time, wireLen int, data []byte) error) error {
	if pb.err != nil {
		return pb.err
	}
	var r io.Reader
	if pb.spill == nil {
		r = &byteReader{b: pb.mem}
	} else {
		if err := pb.spillW.Flush(); err != nil {
			return fmt.Errorf("capture: failed to spill packets: %w", err)
		}
		r = bufio.NewReaderSize(io.NewSectionReader(pb.spill, 0, 1<<62), 1<<20)
	}
	var hdr [16]byte
	var data []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("capture: failed to read buffered packets: %w", err)
		}
		n := int(binary.LittleEndian.Uint32(hdr[12:16]))
		if cap(data) < n {
			data = make([]byte, n)
		}
		data = data[:n]
		if _, err := io.ReadFull(r, data); err != nil {
			return fmt.Errorf("capture: failed to read buffered packets: %w", err)
		}
		ts := time.Unix(0, int64(binary.LittleEndian.Uint64(hdr[0:8])))
		if err := f(ts, int(binary.LittleEndian.Uint32(hdr[8:12])), data); err != nil {
			return err
		}
	}
}

func (pb *packetBuffer) close() error {
	if pb.spill == nil {
		pb.mem = nil
		return nil
	}
	name := pb.spill.Name()
	err := pb.spill.Close()
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	pb.spill = nil
	return err
}

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// writePcapng writes a pcapng file with one interface of the given link
// type, a Decryption Secrets Block holding keyLog (when not empty) and then
// every packet of pb.
func writePcapng(w io.Writer, linkType layers.LinkType, ifName string, keyLog []byte, pb *packetBuffer) error {
	intf := pcapgo.NgInterface{
		Name:                ifName,
		OS:                  runtime.GOOS,
		LinkType:            linkType,
		SnapLength:          0,
		TimestampResolution: 9,
	}
	opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Hardware:    runtime.GOARCH,
		OS:          runtime.GOOS,
		Application: "parley capture",
	}}
	ngw, err := pcapgo.NewNgWriterInterface(w, intf, opts)
	if err != nil {
		return fmt.Errorf("capture: failed to write pcapng header: %w", err)
	}
	if len(keyLog) > 0 {
		// NgWriter has no API for Decryption Secrets Blocks: flush the section
		// header and interface block it buffered, then write the block on the
		// underlying writer, before the first packet.
		if err := ngw.Flush(); err != nil {
			return fmt.Errorf("capture: failed to write pcapng header: %w", err)
		}
		if _, err := w.Write(dsbBlock(keyLog)); err != nil {
			return fmt.Errorf("capture: failed to write decryption secrets block: %w", err)
		}
	}
	err = pb.each(func(ts time.Time, wireLen int, data []byte) error {
		ci := gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(data), Length: wireLen, InterfaceIndex: 0}
		if err := ngw.WritePacket(ci, data); err != nil {
			return fmt.Errorf("capture: failed to write packet: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := ngw.Flush(); err != nil {
		return fmt.Errorf("capture: failed to write packets: %w", err)
	}
	return nil
}

// dsbBlock encodes a Decryption Secrets Block holding an NSS key log, little
// endian like the rest of the section NgWriter writes: block type, block
// total length, secrets type, secrets length, secrets data padded to 4 bytes,
// block total length again.
func dsbBlock(keyLog []byte) []byte {
	pad := (4 - len(keyLog)%4) % 4
	total := 4 + 4 + 4 + 4 + len(keyLog) + pad + 4
	b := make([]byte, total)
	binary.LittleEndian.PutUint32(b[0:], blockTypeDSB)
	binary.LittleEndian.PutUint32(b[4:], uint32(total))
	binary.LittleEndian.PutUint32(b[8:], secretsTypeTLS)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(keyLog)))
	copy(b[16:], keyLog)
	binary.LittleEndian.PutUint32(b[total-4:], uint32(total))
	return b
}

// writeCaptureFile writes the pcapng file at path (atomically, through a
// temporary file in the same directory) and, when keyLog is not empty, the
// key log at KeyLogPath(path).
func writeCaptureFile(path string, linkType layers.LinkType, ifName string, keyLog []byte, pb *packetBuffer) error {
	// The file is replaced by a rename, which would turn a device, a pipe
	// or a symbolic link at path into a regular file (as root, /dev/null
	// included): refuse anything but a regular file.
	if st, err := os.Lstat(path); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("capture: %s is not a regular file (%s); name a new file to write the capture to", path, st.Mode().Type())
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".parley-capture-*")
	if err != nil {
		return fmt.Errorf("capture: failed to create %s: %w", path, err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = writePcapng(bw, linkType, ifName, keyLog, pb)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("capture: failed to write %s: %w", path, err)
	}
	if len(keyLog) > 0 {
		kp := KeyLogPath(path)
		// Key logs are secrets: 0600, like every key file parley writes.
		if err := os.WriteFile(kp, keyLog, 0o600); err != nil {
			return fmt.Errorf("capture: failed to write key log %s: %w", kp, err)
		}
	}
	return nil
}
