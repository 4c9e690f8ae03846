// Package capture shows what an eavesdropper on the wire sees of a parley
// room: it records connections (a privilege-free tap relay, or a live
// AF_PACKET socket on Linux), writes them as pcapng files that Wireshark and
// tshark open directly, and reads pcap and pcapng files back, reassembling
// every TCP stream, recognising its scheme from the bytes and printing the
// eavesdropper's view message by message.
//
// Sources only produce packets (Tap and Recorder synthesise them, the live
// source reads them from the kernel); decoding is done by gopacket's layers,
// streams come from gopacket's reassembly, and each scheme's dissector is its
// own file (dissect_plain.go, dissect_xor.go, dissect_aes.go,
// dissect_tls.go, dissect_unknown.go). Whichever dissector recovers a
// room's login exchange (the server's password prompt and the client's
// answer), Read reports it as a credential event (credentials.go).
//
// pcapng files are written with a Decryption Secrets Block (pcapng §4.7,
// block type 0x0000000A, secrets type 'TLSK') ahead of the first packet
// whenever TLS keys are known, so that Wireshark decrypts TLS 1.3 without
// extra options; a key log in NSS key log format is saved beside the file (KeyLogPath) as
// well. Because the block must precede the packets, packets are buffered
// (spilling to a temporary file when large) and the file is written when the
// capture stops.
//
// pcapng files are read with a small block reader of our own
// (internal/pcapfile) rather than pcapgo.NgReader, because NgReader skips
// Decryption Secrets Blocks without exposing them; classic pcap files are
// read with pcapgo.Reader.
package capture
