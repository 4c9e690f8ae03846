// Package attack is Mallory: an active man-in-the-middle relay for every
// parley scheme, for an instructor to show, scheme by scheme, what an
// attacker between the members and the room can read, rewrite, replay or
// drop — and exactly why she fails against the strong schemes. It needs no
// privileges: members connect to the relay's address instead of the room's
// (`parley mitm` is its command line).
//
// # How it works
//
// NewRelay listens; for each member connection Serve dials the room
// (Config.Upstream; a room that is down is reported and the relay keeps
// listening), checks that both sides speak Config.Scheme, and then relays
// whole messages: it cuts each direction into the scheme's units, reports
// every unit as an Event and applies the actions to the member's units
// before passing them on.
//
//   - plain: units are lines. Mallory reads and rewrites everything; the
//     members notice nothing.
//   - xor: the room's first byte is the key + 10 (PROTOCOL.md, "xor"), so
//     Mallory has the key before the first record (with
//     Config.XORBruteForce she instead tries all 256 keys on the room's
//     greeting, as if she had joined late). Units are records, len(2) ‖
//     message XOR key; she reads them, rewrites them and re-encrypts them.
//   - aes-cbc and aes-cbc-hmac: the PRLY hellos pass through untouched and
//     give her nothing; units are records, len(4) ‖ IV ‖ ciphertext [‖ tag].
//     She cannot read them; she sees only their sizes. A flip in the IV
//     changes the first block's plaintext predictably in aes-cbc; in
//     aes-cbc-hmac every flip, replay, drop or injection makes the room
//     fail the record ("bad record MAC") and close the connection, which
//     the relay sees and reports as DETECTED.
//   - tls: Mallory terminates the member's TLS with a certificate of her
//     own (Config.Certificates, or one signed by a CA she makes on start,
//     NewMalloryCertificate) and connects to the room as a TLS client,
//     without verifying it. A member that verifies refuses her handshake
//     (BLOCKED, with the alert it sent); a member that skips verification
//     is as readable and rewritable as plain.
//   - mtls: as tls towards the member; towards the room she has no client
//     certificate from the room's CA, so the room refuses her (BLOCKED)
//     and nothing is relayed.
//
// When either side closes, the relay closes the other side too.
//
// # Record numbers
//
// The member's units are numbered from 1 in the order it sends them: record
// 1 is its name, record 2 its first line after joining. In aes-cbc and
// aes-cbc-hmac the key-confirmation record is record 0 and the numbers are
// the records' implicit sequence numbers (PROTOCOL.md, "Records"); no action
// touches record 0. The room's units are numbered the same way in their own
// direction.
//
// # Actions
//
// Actions apply to the member's units (Config):
//
//   - Replace rewrites text in both directions where Mallory can read it.
//   - Flip XORs a mask into the byte at an offset of the record body: the
//     bytes after the length field (for CBC offset 0 is the IV's first
//     byte), or the line itself for plain and tls. It applies to every
//     record from 2 on (the name is spared: a garbled name is merely
//     refused), or to one record with Flip.Record. The FLIPPED event says
//     what the receiver will get, e.g. "flipped byte 0 of the IV: plaintext
//     byte 0 XOR 0x20".
//   - Replay sends record N a second time, right behind the original.
//   - Drop swallows record N.
//   - Inject sends Mallory's own message right after record 1, as if from
//     the member; on aes schemes, where she cannot encrypt, a forged record
//     of random bytes of the right size.
//
// An action that makes no sense for the scheme (such as Replace on
// aes-cbc-hmac, where Mallory cannot read anything) is not an error: Check
// and Relay.Notes say why, and the relay runs without it.
//
// # Detection
//
// In aes-cbc-hmac the room checks each record's tag over its implicit
// sequence number before decrypting (encrypt-then-MAC), so tampering of any
// kind ends the connection at the first record the room reads after it. The
// relay cannot see inside the room: it reports DETECTED when the room closes
// the connection after such a record was passed on. In aes-cbc, where only
// a flip that breaks the padding is fatal, it reports DETECTED when the room
// closes after tampering without having sent anything since the last record
// Mallory passed on (an ordinary quit gets "* bye" first). A dropped last
// record (truncation) is not detected until the member sends another.
//
// # Events and recording
//
// Every step is an Event, given to Config.OnEvent one at a time: String is
// one plain line an instructor can read aloud (`READ alice→room: "hi"`,
// `DETECTED by the room: bad record MAC; ...`), and its JSON encoding is
// for scripts. With Config.Recorder both legs of every connection (member
// to Mallory, Mallory to room) are recorded as TCP packets, with the TLS
// secrets of both of Mallory's sessions, so the capture decrypts in
// Wireshark and in `parley capture read`.
//
// # Goroutines
//
// Serve owns one goroutine per member connection and waits for all of them
// before it returns; each connection's goroutine owns the two pumps (one per
// direction) and waits for both. Close, or the end of Serve's context,
// closes every connection, which ends every pump.
package attack
