package schemes

import (
	"net"
	"testing"
	"time"
)

// benchmarkHandshakes measures full handshakes per second as the server
// sees them, over loopback TCP, with a client in another goroutine. No
// session is resumed: every handshake is a full one (RFC 8446 §2).
func benchmarkHandshakes(b *testing.B, scheme, clientCert string) {
	p := newTestPKI(b)
	srv := newScheme(b, scheme, p.serverConfig(b, "server"))
	cli := newScheme(b, scheme, p.clientConfig(b, clientCert))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		for range b.N {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				errc <- err
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			conn, err := cli.Client(c)
			if err != nil {
				c.Close()
				errc <- err
				return
			}
			conn.Close()
		}
		errc <- nil
	}()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		c, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		conn, err := srv.Server(c)
		if err != nil {
			b.Fatal(err)
		}
		conn.Close()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

func BenchmarkTLSHandshake(b *testing.B)  { benchmarkHandshakes(b, "tls", "") }
func BenchmarkMTLSHandshake(b *testing.B) { benchmarkHandshakes(b, "mtls", "alice") }
