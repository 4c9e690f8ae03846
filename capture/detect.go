package capture

import (
	"bytes"
	"encoding/binary"

	"github.com/parley-edu/parley/schemes"
)

// detectScheme recognises a stream's scheme from the first bytes each side
// sent. It returns false while it needs more bytes; with final it always
// decides, "unknown" when nothing fits. mid says that the capture may have
// missed the start of the stream (no SYN, or a gap), so handshakes may be
// missing and only the record structure can tell.
func detectScheme(client, server []byte, mid, final bool) (string, bool) {
	if len(client) == 0 && len(server) == 0 {
		return "unknown", final
	}
	wait := false
	for _, b := range [][]byte{client, server} {
		switch {
		case len(b) == 0:
		case hasPrefixPart(b, schemes.HelloMagic):
			if len(b) < len(schemes.HelloMagic)+2 {
				wait = true
				continue
			}
			switch name := schemes.SchemeName(b[5]); name {
			case "aes-cbc-hmac", "aes-cbc":
				return name, true
			}
		case looksLikeTLSRecord(b, !mid):
			return "tls", true
		}
	}
	// The xor server's first byte is the key byte (key + 10) in the clear;
	// it may arrive in a segment of its own.
	if !mid && len(server) > 0 && !schemes.LooksLikeText(server) {
		if len(server) < 1+2+4 && !final {
			wait = true
		} else if xorRecordText(server[1:], schemes.XORKeyFromWire(server[0])) {
			return "xor", true
		}
	}
	for _, b := range [][]byte{server, client} {
		if len(b) > 0 && schemes.LooksLikeText(b) && bytes.IndexByte(b, '\n') >= 0 {
			return "plain", true
		}
	}
	// Without the key byte, xor and aes records are still recognisable by
	// their framing: length fields that chain exactly.
	for _, b := range [][]byte{client, server} {
		if xorChain(b) {
			if _, ok := bruteForceXOR(firstXORRecords(b)); ok {
				return "xor", true
			}
		}
		if aesChain(b) {
			return "aes-cbc-hmac", true
		}
	}
	if wait && !final {
		return "", false
	}
	if !final && len(client) < 256 && len(server) < 256 {
		return "", false
	}
	if (len(server) == 0 || schemes.LooksLikeText(server)) && (len(client) == 0 || schemes.LooksLikeText(client)) {
		return "plain", true
	}
	return "unknown", true
}

func hasPrefixPart(b []byte, prefix string) bool {
	n := min(len(b), len(prefix))
	return string(b[:n]) == prefix[:n]
}

// looksLikeTLSRecord reports whether b starts with a TLS record header
// (RFC 8446 §5.1): a content type, legacy version 3.x and a length within
// the limit. At the start of a stream only a handshake record fits.
func looksLikeTLSRecord(b []byte, atStart bool) bool {
	if len(b) < 5 || b[1] != 3 || b[2] > 4 {
		return false
	}
	n := int(binary.BigEndian.Uint16(b[3:5]))
	if n == 0 || n > maxTLSRecord {
		return false
	}
	if atStart {
		return b[0] == tlsHandshake
	}
	return b[0] >= tlsChangeCipherSpec && b[0] <= tlsApplicationData
}

// xorRecordText reports whether b starts with an xor record whose first
// bytes decode to text under key.
func xorRecordText(b []byte, key byte) bool {
	if len(b) < 2 {
		return false
	}
	n := int(binary.BigEndian.Uint16(b))
	body := b[2:min(len(b), 2+n)]
	if n == 0 || len(body) < min(n, 4) {
		return false
	}
	dec := make([]byte, len(body))
	for i, c := range body {
		dec[i] = c ^ key
	}
	return schemes.LooksLikeText(dec)
}

// xorChain reports whether b is a run of xor records (2-byte length, body)
// whose lengths chain: at least one complete record, and at most a partial
// one at the end.
func xorChain(b []byte) bool {
	complete := 0
	for len(b) >= 2 {
		n := int(binary.BigEndian.Uint16(b))
		if n == 0 {
			return false
		}
		if len(b) < 2+n {
			break
		}
		b = b[2+n:]
		complete++
	}
	return complete >= 1 && (complete >= 2 || len(b) == 0)
}

// firstXORRecords returns the bodies of the complete xor records at the
// start of b.
func firstXORRecords(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 2 {
		n := int(binary.BigEndian.Uint16(b))
		if n == 0 || len(b) < 2+n {
			break
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

// aesChain reports whether b is a run of aes-cbc(-hmac) records (4-byte
// length, IV, whole ciphertext blocks, tag) whose lengths chain.
func aesChain(b []byte) bool {
	complete := 0
	for len(b) >= 4 {
		n := binary.BigEndian.Uint32(b)
		if n < 2*16 || n%16 != 0 || n > 1<<20 {
			return false
		}
		if uint32(len(b)-4) < n {
			break
		}
		b = b[4+n:]
		complete++
	}
	return complete >= 1 && (complete >= 2 || len(b) == 0)
}
