package schemes

import "net"

func init() {
	register(Properties{
		Name:     "plain",
		Summary:  "the room's lines as they are, no protection at all",
		Insecure: true,
		Warning:  "plain is INSECURE: every line crosses the network as readable text that anyone on the path can read and rewrite.",
		Leaks:    []string{"everything: every line, every name, every command"},
		Weaknesses: []string{
			"an eavesdropper reads every message",
			"a man in the middle rewrites, drops or injects messages undetected",
			"names are self-asserted: anyone can claim any name",
		},
		Teaches: "everything is readable and rewritable",
	}, func(cfg Config) (Scheme, error) { return plain{max: cfg.maxMessage()}, nil })
}

// plain frames room lines by newline and protects nothing. nc, ncat and
// telnet are working clients.
type plain struct{ max int }

var _ Scheme = plain{}

func (plain) Name() string { p, _ := Describe("plain"); return p.Name }

func (plain) Properties() Properties { p, _ := Describe("plain"); return p }

func (s plain) Server(c net.Conn) (Conn, error) { return newLineConn(c, s.max, Peer{}), nil }

func (s plain) Client(c net.Conn) (Conn, error) { return newLineConn(c, s.max, Peer{}), nil }
