package labs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/gopacket/pcapgo"
)

// cutCapture copies the packets of the pcapng file src captured after t to
// dst: a recording that began late, in the middle of its TCP streams, as
// if the eavesdropper had started listening at t.
func cutCapture(src, dst string, t time.Time) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("labs: cannot open %s: %w", src, err)
	}
	defer in.Close()
	r, err := pcapgo.NewNgReader(bufio.NewReader(in), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		return fmt.Errorf("labs: cannot read %s: %w", src, err)
	}
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("labs: cannot create %s: %w", dst, err)
	}
	w, err := pcapgo.NewNgWriter(out, r.LinkType())
	if err != nil {
		out.Close()
		return fmt.Errorf("labs: cannot write %s: %w", dst, err)
	}
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			out.Close()
			return fmt.Errorf("labs: reading %s: %w", src, err)
		}
		if !ci.Timestamp.After(t) {
			continue
		}
		ci.InterfaceIndex = 0
		if err := w.WritePacket(ci, data); err != nil {
			out.Close()
			return fmt.Errorf("labs: writing %s: %w", dst, err)
		}
	}
	if err := w.Flush(); err != nil {
		out.Close()
		return fmt.Errorf("labs: writing %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("labs: writing %s: %w", dst, err)
	}
	return nil
}
