package scenario

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/parley-edu/parley/capture"
)

// pcapng block types (pcapng §4: Section Header Block, §4.7: Decryption
// Secrets Block).
const (
	blockSHB     = 0x0A0D0D0A
	blockSecrets = 0x0000000A
	byteOrderBOM = 0x1A2B3C4D
)

// ReadAsEve reads the capture at path as an eavesdropper with nothing but
// the file would if the file carried no secrets: every Decryption Secrets
// Block is dropped before the packets are dissected, and neither a key log
// nor a pre-shared key is given. What it recovers is what crossed the wire
// in a readable form.
func ReadAsEve(path string) ([]capture.Event, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	stripped, err := StripSecrets(data)
	if err != nil {
		return nil, fmt.Errorf("scenario: %s: %w", path, err)
	}
	var evs []capture.Event
	err = capture.Read(bytes.NewReader(stripped), capture.ReadOptions{}, func(e capture.Event) error {
		evs = append(evs, e)
		return nil
	})
	if err != nil {
		return evs, fmt.Errorf("scenario: reading %s as an eavesdropper: %w", path, err)
	}
	return evs, nil
}

// ReadWithKeys reads the capture at path as its owner would: with the TLS
// keys embedded in it and, for the record schemes, the pre-shared key.
func ReadWithKeys(path string, psk []byte) ([]capture.Event, error) {
	evs, err := capture.ReadFile(path, capture.ReadOptions{PSK: psk})
	if err != nil {
		return evs, fmt.Errorf("scenario: %w", err)
	}
	return evs, nil
}

// StripSecrets returns a pcapng file without its Decryption Secrets Blocks.
// Other files (classic pcap) are returned as they are: they cannot carry
// secrets.
func StripSecrets(data []byte) ([]byte, error) {
	if len(data) < 12 || binary.LittleEndian.Uint32(data) != blockSHB {
		return data, nil
	}
	out := make([]byte, 0, len(data))
	var order binary.ByteOrder = binary.LittleEndian
	for off := 0; off < len(data); {
		if len(data)-off < 12 {
			return nil, errors.New("truncated pcapng block")
		}
		typ := binary.LittleEndian.Uint32(data[off:]) // SHB's type reads the same both ways
		if typ == blockSHB {
			switch bom := data[off+8 : off+12]; {
			case binary.LittleEndian.Uint32(bom) == byteOrderBOM:
				order = binary.LittleEndian
			case binary.BigEndian.Uint32(bom) == byteOrderBOM:
				order = binary.BigEndian
			default:
				return nil, errors.New("pcapng section header with a bad byte-order magic")
			}
		} else {
			typ = order.Uint32(data[off:])
		}
		n := int(order.Uint32(data[off+4:]))
		if n < 12 || n%4 != 0 || n > len(data)-off {
			return nil, fmt.Errorf("bad pcapng block length %d at offset %d", n, off)
		}
		if typ != blockSecrets {
			out = append(out, data[off:off+n]...)
		}
		off += n
	}
	return out, nil
}

// Contains reports whether any message event recovered text containing s.
func Contains(evs []capture.Event, s string) bool {
	for _, e := range evs {
		if e.Type == capture.EventMessage && e.RecoveredBy != "" && strings.Contains(e.Plaintext, s) {
			return true
		}
	}
	return false
}
