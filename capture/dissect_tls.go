package capture

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// TLS record content types (RFC 8446 §5.1) and limits.
const (
	tlsChangeCipherSpec = 20
	tlsAlert            = 21
	tlsHandshake        = 22
	tlsApplicationData  = 23
	maxTLSRecord        = 16384 + 2048
	maxHandshakeMsg     = 1 << 20
)

// TLS handshake message types (RFC 8446 §4, RFC 5246 §7.4).
const (
	hsClientHello         = 1
	hsServerHello         = 2
	hsNewSessionTicket    = 4
	hsEncryptedExtensions = 8
	hsCertificate         = 11
	hsServerKeyExchange   = 12
	hsCertificateRequest  = 13
	hsCertificateVerify   = 15
	hsFinished            = 20
	hsKeyUpdate           = 24
)

// helloRetryRandom is the ServerHello.random of a HelloRetryRequest
// (RFC 8446 §4.1.3).
var helloRetryRandom = []byte{
	0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
	0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
}

// tlsDir is the state of one direction of a TLS stream.
type tlsDir struct {
	buf       []byte // unparsed record bytes
	hs        []byte // unparsed handshake message bytes
	lines     lineSplitter
	encrypted bool         // records from now on are protected
	keys      *trafficKeys // current keys, nil when unknown
	epoch     int          // 0: handshake keys, 1: application keys, 2+: after KeyUpdate
	failed    bool         // decryption failed: stop trying
	lost      bool
}

// tlsDissector reads TLS 1.2 and 1.3 (and so tls and mtls): the handshake
// in the clear, record types and sizes, and with a key log the decrypted
// TLS 1.3 handshake and application data.
type tlsDissector struct {
	s            *stream
	dir          [2]tlsDir
	clientRandom []byte
	version      uint16
	suite        uint16
	noKeysNoted  bool
	failNoted    bool
}

func newTLSDissector(s *stream) *tlsDissector { return &tlsDissector{s: s} }

func (d *tlsDissector) data(side Side, t time.Time, b []byte) {
	dir := &d.dir[side]
	if dir.lost {
		// Resynchronise at the first thing that looks like a record header.
		dir.lost = false
		dir.buf = dir.buf[:0]
		i := 0
		for i < len(b) && !looksLikeTLSRecord(b[i:], false) {
			i++
		}
		if i == len(b) {
			dir.lost = true
			return
		}
		b = b[i:]
	}
	dir.buf = append(dir.buf, b...)
	buf := dir.buf
	for len(buf) >= 5 {
		n := int(binary.BigEndian.Uint16(buf[3:5]))
		if buf[0] < tlsChangeCipherSpec || buf[0] > tlsApplicationData+1 || buf[1] != 3 || n > maxTLSRecord {
			d.s.note(side, t, fmt.Sprintf("not a TLS record header (% x): record framing lost for this direction", buf[:5]))
			dir.lost = true
			buf = nil
			break
		}
		if len(buf) < 5+n {
			break
		}
		d.record(side, t, buf[:5+n])
		buf = buf[5+n:]
	}
	dir.buf = append(dir.buf[:0], buf...)
}

func (d *tlsDissector) gap(side Side, t time.Time, n int) {
	d.s.note(side, t, gapText(side, n)+"; resynchronising at the next record header")
	d.dir[side].lost = true
	d.dir[side].hs = nil
	if d.dir[side].keys != nil {
		d.dir[side].failed = true // sequence numbers are lost
	}
}

func (d *tlsDissector) end(t time.Time) {
	for _, side := range []Side{Client, Server} {
		if rest := d.dir[side].lines.rest(); len(rest) > 0 {
			e := d.s.event(EventMessage, side, t)
			e.Record = "application_data"
			e.Plaintext = string(rest)
			e.RecoveredBy = RecoveredTLSKeyLog
			e.Text = "(no newline before the end of the stream)"
			d.s.rd.send(e)
		}
	}
}

var recordNames = map[byte]string{
	tlsChangeCipherSpec: "change_cipher_spec",
	tlsAlert:            "alert",
	tlsHandshake:        "handshake",
	tlsApplicationData:  "application_data",
}

func (d *tlsDissector) record(side Side, t time.Time, rec []byte) {
	dir := &d.dir[side]
	typ, payload := rec[0], rec[5:]
	if dir.encrypted && typ != tlsChangeCipherSpec {
		d.encryptedRecord(side, t, rec)
		return
	}
	switch typ {
	case tlsHandshake:
		d.handshakeBytes(side, t, payload, false)
	case tlsChangeCipherSpec:
		e := d.s.event(EventMessage, side, t)
		e.Record, e.WireBytes, e.Wire = "change_cipher_spec", len(rec), append([]byte(nil), rec...)
		if d.version == tls.VersionTLS13 {
			e.Text = "(middlebox compatibility, RFC 8446 §D.4)"
		} else {
			e.Text = "(from now on this side encrypts)"
			dir.encrypted = true
		}
		d.s.rd.send(e)
	case tlsAlert:
		e := d.s.event(EventMessage, side, t)
		e.Record, e.WireBytes, e.Wire = "alert", len(rec), append([]byte(nil), rec...)
		e.Text = alertText(payload)
		d.s.rd.send(e)
	default:
		e := d.s.event(EventMessage, side, t)
		e.Record, e.WireBytes, e.Wire = recordNames[typ], len(rec), append([]byte(nil), rec...)
		d.s.rd.send(e)
	}
}

func alertText(b []byte) string {
	if len(b) != 2 {
		return fmt.Sprintf("(%d bytes)", len(b))
	}
	level := "warning"
	if b[0] == 2 {
		level = "fatal"
	}
	desc := map[byte]string{0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 40: "handshake_failure",
		42: "bad_certificate", 45: "certificate_expired", 46: "certificate_unknown", 48: "unknown_ca", 51: "decrypt_error",
		70: "protocol_version", 80: "internal_error", 112: "unrecognized_name", 116: "certificate_required"}[b[1]]
	if desc == "" {
		desc = fmt.Sprintf("alert %d", b[1])
	}
	return level + " " + desc
}

// keysFor returns the keys of side for its current epoch from the key log.
func (d *tlsDissector) keysFor(side Side) *trafficKeys {
	dir := &d.dir[side]
	labels := map[Side][2]string{
		Client: {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"},
		Server: {"SERVER_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0"},
	}[side]
	if dir.epoch > 1 {
		return nil
	}
	secret := d.s.rd.keys.secret(d.clientRandom, labels[dir.epoch])
	if secret == nil {
		return nil
	}
	k, err := newTrafficKeys(d.suite, secret)
	if err != nil {
		return nil
	}
	return k
}

// encryptedRecord shows a protected record, decrypting it when the key log
// has this session's secrets (TLS 1.3 only).
func (d *tlsDissector) encryptedRecord(side Side, t time.Time, rec []byte) {
	dir := &d.dir[side]
	if d.version == tls.VersionTLS13 && !dir.failed {
		if dir.keys == nil {
			dir.keys = d.keysFor(side)
		}
		if dir.keys != nil {
			typ, content, err := dir.keys.open(rec)
			if err != nil && dir.epoch == 0 {
				// The handshake epoch may have ended unseen: try the
				// application keys.
				dir.epoch = 1
				if k := d.keysFor(side); k != nil {
					dir.keys = k
					typ, content, err = k.open(rec)
				}
			}
			if err == nil {
				d.decrypted(side, t, rec, typ, content)
				return
			}
			dir.failed = true
			if !d.failNoted {
				d.failNoted = true
				d.s.note(side, t, "a record does not decrypt with the key log's secrets for this session: the rest stays encrypted")
			}
		} else if !d.noKeysNoted {
			d.noKeysNoted = true
			if len(d.clientRandom) == 32 {
				d.s.note(side, t, fmt.Sprintf("no key log entry for this session (client random %s): records stay encrypted; pass the room's key log with --keylog", hex.EncodeToString(d.clientRandom)))
			}
		}
	}
	e := d.s.event(EventMessage, side, t)
	e.WireBytes, e.Wire = len(rec), append([]byte(nil), rec...)
	n := len(rec) - 5
	switch {
	case d.version == tls.VersionTLS13:
		e.Record = "encrypted"
		// AEAD tag 16 bytes and the inner content type 1 byte (RFC 8446
		// §5.2); padding, which Go and most stacks do not add, would make
		// the content shorter.
		e.Text = fmt.Sprintf("(handshake or application data; at most %d bytes of content)", max(n-17, 0))
	case rec[0] == tlsHandshake:
		e.Record = "handshake"
		e.Text = "(encrypted Finished)"
	default:
		e.Record = recordNames[rec[0]]
		e.Text = fmt.Sprintf("(encrypted; TLS 1.2 records are not decrypted; about %d bytes of content)", max(n-24, 0))
	}
	d.s.rd.send(e)
}

// decrypted handles the content of a decrypted TLS 1.3 record.
func (d *tlsDissector) decrypted(side Side, t time.Time, rec []byte, typ byte, content []byte) {
	switch typ {
	case tlsHandshake:
		d.handshakeBytes(side, t, content, true)
	case tlsApplicationData:
		first := true
		d.dir[side].lines.add(content, func(line []byte, wire int) {
			e := d.s.event(EventMessage, side, t)
			e.Record = "application_data"
			if first {
				e.WireBytes = len(rec)
				e.Wire = append([]byte(nil), rec...)
				first = false
			} else {
				e.Text = "(same record)"
			}
			e.Plaintext = string(line)
			e.RecoveredBy = RecoveredTLSKeyLog
			d.s.rd.send(e)
		})
	case tlsAlert:
		e := d.s.event(EventMessage, side, t)
		e.Record, e.WireBytes, e.Wire = "alert", len(rec), append([]byte(nil), rec...)
		e.Text = alertText(content) + " (decrypted)"
		d.s.rd.send(e)
	}
}

// handshakeBytes reassembles handshake messages, which may span records.
func (d *tlsDissector) handshakeBytes(side Side, t time.Time, b []byte, decrypted bool) {
	dir := &d.dir[side]
	dir.hs = append(dir.hs, b...)
	for len(dir.hs) >= 4 {
		n := int(dir.hs[1])<<16 | int(dir.hs[2])<<8 | int(dir.hs[3])
		if n > maxHandshakeMsg {
			d.s.note(side, t, fmt.Sprintf("handshake message of %d bytes is implausible; skipping", n))
			dir.hs = nil
			return
		}
		if len(dir.hs) < 4+n {
			return
		}
		msg := dir.hs[:4+n]
		d.handshakeMessage(side, t, msg, decrypted)
		dir = &d.dir[side]
		dir.hs = dir.hs[4+n:]
	}
	if len(dir.hs) == 0 {
		dir.hs = nil
	}
}

func (d *tlsDissector) handshakeMessage(side Side, t time.Time, msg []byte, decrypted bool) {
	typ, body := msg[0], msg[4:]
	e := d.s.event(EventHandshake, side, t)
	e.WireBytes = len(msg)
	suffix := ""
	if decrypted {
		suffix = " (decrypted with the key log)"
	}
	switch typ {
	case hsClientHello:
		ch, ok := parseClientHello(body)
		if !ok {
			d.s.note(side, t, "malformed ClientHello")
			return
		}
		if d.clientRandom == nil {
			d.clientRandom = ch.random
		}
		ch.fill(&e)
	case hsServerHello:
		sh, ok := parseServerHello(body)
		if !ok {
			d.s.note(side, t, "malformed ServerHello")
			return
		}
		sh.fill(&e)
		if bytes.Equal(sh.random, helloRetryRandom) {
			e.Text = "HelloRetryRequest: " + e.Text
			break
		}
		d.version, d.suite = sh.version, sh.suite
		if sh.version == tls.VersionTLS13 {
			d.dir[Server].encrypted = true
			d.dir[Client].encrypted = true
			e.Text += "; TLS 1.3 encrypts everything after this point, certificates included"
		}
	case hsEncryptedExtensions:
		e.Text = "EncryptedExtensions" + suffix
		if alpn := parseEncryptedExtensionsALPN(body); alpn != "" {
			e.ALPN = []string{alpn}
			e.Text += ": ALPN " + alpn
		}
	case hsCertificate:
		certs, ok := parseCertificates(body, d.version == tls.VersionTLS13)
		if !ok {
			d.s.note(side, t, "malformed Certificate message"+suffix)
			return
		}
		e.Certificates = certs
		who := "server"
		if side == Client {
			who = "client"
			if len(certs) > 0 {
				d.setMTLS(side, t, "the client sent a certificate")
			}
		}
		if len(certs) == 0 {
			e.Text = "Certificate: the " + who + " sent no certificate" + suffix
			break
		}
		var parts []string
		for _, c := range certs {
			parts = append(parts, fmt.Sprintf("subject %q issued by %q", c.Subject, c.Issuer))
		}
		e.Text = "Certificate (" + who + ")" + suffix + ": " + strings.Join(parts, "; ")
	case hsCertificateRequest:
		e.Text = "CertificateRequest: the server asks for a client certificate" + suffix
		d.s.rd.send(e)
		d.setMTLS(side, t, "the server asked for a client certificate")
		return
	case hsServerKeyExchange:
		e.Text = "ServerKeyExchange"
		if len(body) >= 3 && body[0] == 3 {
			g := tls.CurveID(binary.BigEndian.Uint16(body[1:3]))
			e.KeyShareGroup = g.String()
			e.Text += ": ECDHE group " + g.String()
		}
	case hsFinished:
		e.Text = "Finished" + suffix
		if decrypted {
			// RFC 8446 §7.1: after its Finished, a side switches to the
			// application traffic secret.
			dir := &d.dir[side]
			dir.epoch = 1
			dir.keys = d.keysFor(side)
			if dir.keys == nil {
				dir.failed = true
			}
		}
	case hsCertificateVerify:
		e.Text = "CertificateVerify" + suffix
	case hsNewSessionTicket:
		e.Text = "NewSessionTicket" + suffix
	case hsKeyUpdate:
		e.Text = "KeyUpdate" + suffix
		dir := &d.dir[side]
		if dir.keys != nil {
			k, err := dir.keys.next(d.suite)
			if err != nil {
				dir.failed = true
			}
			dir.keys, dir.epoch = k, dir.epoch+1
		}
	default:
		e.Text = fmt.Sprintf("handshake message type %d%s", typ, suffix)
	}
	d.s.rd.send(e)
}

func (d *tlsDissector) setMTLS(side Side, t time.Time, why string) {
	if d.s.scheme == "mtls" {
		return
	}
	d.s.scheme = "mtls"
	d.s.note(side, t, why+": this is mutual TLS (mtls)")
}

type clientHello struct {
	random   []byte
	versions []uint16
	suites   []uint16
	sni      string
	alpn     []string
	shares   []uint16
}

func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLS 1.3"
	case tls.VersionTLS12:
		return "TLS 1.2"
	case tls.VersionTLS11:
		return "TLS 1.1"
	case tls.VersionTLS10:
		return "TLS 1.0"
	}
	if v&0x0f0f == 0x0a0a {
		return "GREASE"
	}
	return fmt.Sprintf("0x%04x", v)
}

func (ch clientHello) fill(e *Event) {
	for _, v := range ch.versions {
		if v&0x0f0f != 0x0a0a {
			e.OfferedVersions = append(e.OfferedVersions, versionName(v))
		}
	}
	for _, s := range ch.suites {
		if s&0x0f0f != 0x0a0a {
			e.OfferedSuites = append(e.OfferedSuites, tls.CipherSuiteName(s))
		}
	}
	var groups []string
	for _, g := range ch.shares {
		if g&0x0f0f != 0x0a0a {
			groups = append(groups, tls.CurveID(g).String())
		}
	}
	e.SNI, e.ALPN = ch.sni, ch.alpn
	e.KeyShareGroup = strings.Join(groups, ",")
	var b strings.Builder
	fmt.Fprintf(&b, "ClientHello in the clear: offers %s", strings.Join(e.OfferedVersions, ", "))
	if ch.sni != "" {
		fmt.Fprintf(&b, "; SNI %q", ch.sni)
	} else {
		b.WriteString("; no SNI")
	}
	if len(ch.alpn) > 0 {
		fmt.Fprintf(&b, "; ALPN %s", strings.Join(ch.alpn, ","))
	}
	if len(groups) > 0 {
		fmt.Fprintf(&b, "; key shares %s", e.KeyShareGroup)
	}
	fmt.Fprintf(&b, "; %d cipher suites", len(e.OfferedSuites))
	e.Text = b.String()
}

// parseClientHello parses a ClientHello body (RFC 8446 §4.1.2).
func parseClientHello(body []byte) (clientHello, bool) {
	var ch clientHello
	s := cryptobyte.String(body)
	var legacy uint16
	var random, sessionID, suites, compression, exts cryptobyte.String
	if !s.ReadUint16(&legacy) || !s.ReadBytes((*[]byte)(&random), 32) ||
		!s.ReadUint8LengthPrefixed(&sessionID) || !s.ReadUint16LengthPrefixed(&suites) ||
		!s.ReadUint8LengthPrefixed(&compression) {
		return ch, false
	}
	ch.random = append([]byte(nil), random...)
	for !suites.Empty() {
		var id uint16
		if !suites.ReadUint16(&id) {
			return ch, false
		}
		ch.suites = append(ch.suites, id)
	}
	if !s.Empty() && !s.ReadUint16LengthPrefixed(&exts) {
		return ch, false
	}
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return ch, false
		}
		switch typ {
		case 0: // server_name
			var list cryptobyte.String
			if !data.ReadUint16LengthPrefixed(&list) {
				return ch, false
			}
			for !list.Empty() {
				var nameType uint8
				var name cryptobyte.String
				if !list.ReadUint8(&nameType) || !list.ReadUint16LengthPrefixed(&name) {
					return ch, false
				}
				if nameType == 0 {
					ch.sni = string(name)
				}
			}
		case 16: // ALPN
			var list cryptobyte.String
			if !data.ReadUint16LengthPrefixed(&list) {
				return ch, false
			}
			for !list.Empty() {
				var proto cryptobyte.String
				if !list.ReadUint8LengthPrefixed(&proto) {
					return ch, false
				}
				ch.alpn = append(ch.alpn, string(proto))
			}
		case 43: // supported_versions
			var list cryptobyte.String
			if !data.ReadUint8LengthPrefixed(&list) {
				return ch, false
			}
			for !list.Empty() {
				var v uint16
				if !list.ReadUint16(&v) {
					return ch, false
				}
				ch.versions = append(ch.versions, v)
			}
		case 51: // key_share
			var list cryptobyte.String
			if !data.ReadUint16LengthPrefixed(&list) {
				return ch, false
			}
			for !list.Empty() {
				var g uint16
				var key cryptobyte.String
				if !list.ReadUint16(&g) || !list.ReadUint16LengthPrefixed(&key) {
					return ch, false
				}
				ch.shares = append(ch.shares, g)
			}
		}
	}
	if len(ch.versions) == 0 {
		ch.versions = []uint16{legacy}
	}
	return ch, true
}

type serverHello struct {
	random  []byte
	version uint16
	suite   uint16
	group   uint16
	alpn    string
}

func (sh serverHello) fill(e *Event) {
	e.TLSVersion = versionName(sh.version)
	e.CipherSuite = tls.CipherSuiteName(sh.suite)
	if sh.group != 0 {
		e.KeyShareGroup = tls.CurveID(sh.group).String()
	}
	e.Text = fmt.Sprintf("ServerHello in the clear: chose %s, %s", e.TLSVersion, e.CipherSuite)
	if e.KeyShareGroup != "" {
		e.Text += ", key share " + e.KeyShareGroup
	}
	if sh.alpn != "" {
		e.ALPN = []string{sh.alpn}
		e.Text += ", ALPN " + sh.alpn
	}
}

// parseServerHello parses a ServerHello body (RFC 8446 §4.1.3).
func parseServerHello(body []byte) (serverHello, bool) {
	var sh serverHello
	s := cryptobyte.String(body)
	var random, sessionID, exts cryptobyte.String
	var compression uint8
	if !s.ReadUint16(&sh.version) || !s.ReadBytes((*[]byte)(&random), 32) ||
		!s.ReadUint8LengthPrefixed(&sessionID) || !s.ReadUint16(&sh.suite) || !s.ReadUint8(&compression) {
		return sh, false
	}
	sh.random = append([]byte(nil), random...)
	if !s.Empty() && !s.ReadUint16LengthPrefixed(&exts) {
		return sh, false
	}
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return sh, false
		}
		switch typ {
		case 43:
			if !data.ReadUint16(&sh.version) {
				return sh, false
			}
		case 51:
			if !data.ReadUint16(&sh.group) {
				return sh, false
			}
		case 16:
			var list, proto cryptobyte.String
			if data.ReadUint16LengthPrefixed(&list) && list.ReadUint8LengthPrefixed(&proto) {
				sh.alpn = string(proto)
			}
		}
	}
	return sh, true
}

// parseEncryptedExtensionsALPN returns the ALPN protocol chosen in an
// EncryptedExtensions body, or "".
func parseEncryptedExtensionsALPN(body []byte) string {
	s := cryptobyte.String(body)
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) {
		return ""
	}
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return ""
		}
		if typ == 16 {
			var list, proto cryptobyte.String
			if data.ReadUint16LengthPrefixed(&list) && list.ReadUint8LengthPrefixed(&proto) {
				return string(proto)
			}
		}
	}
	return ""
}

// parseCertificates parses a Certificate message body: TLS 1.2
// (RFC 5246 §7.4.2) or TLS 1.3 (RFC 8446 §4.4.2, with a request context and
// per-certificate extensions). Certificates that do not parse are shown as
// such.
func parseCertificates(body []byte, tls13 bool) ([]Certificate, bool) {
	s := cryptobyte.String(body)
	if tls13 {
		var ctx cryptobyte.String
		if !s.ReadUint8LengthPrefixed(&ctx) {
			return nil, false
		}
	}
	var list cryptobyte.String
	if !s.ReadUint24LengthPrefixed(&list) {
		return nil, false
	}
	var out []Certificate
	for !list.Empty() {
		var der cryptobyte.String
		if !list.ReadUint24LengthPrefixed(&der) {
			return nil, false
		}
		if tls13 {
			var exts cryptobyte.String
			if !list.ReadUint16LengthPrefixed(&exts) {
				return nil, false
			}
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			out = append(out, Certificate{Subject: "(unparsable certificate)"})
			continue
		}
		out = append(out, Certificate{Subject: c.Subject.String(), Issuer: c.Issuer.String()})
	}
	return out, true
}
