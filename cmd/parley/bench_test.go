package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkIdleMembersRSS joins 10,000 idle members to a real 'parley serve'
// process and reports its resident memory per member (Linux only). The
// members read and discard what the room sends (the join notices), as a
// terminal would.
//
//	go test ./cmd/parley -run '^$' -bench IdleMembersRSS -benchtime 1x
func BenchmarkIdleMembersRSS(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads /proc: Linux only")
	}
	const members = 10000
	for range b.N {
		p, addr := startServe(b, "--log-level", "warn")
		pid := p.cmd.Process.Pid
		before := rssKiB(b, pid)
		var welcomed sync.WaitGroup
		var drained atomic.Int64
		conns := make([]net.Conn, 0, members)
		for i := range members {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatalf("member %d: %v", i, err)
			}
			conns = append(conns, c)
			fmt.Fprintf(c, "idle%05d\n", i)
			welcomed.Add(1)
			go func() {
				r := bufio.NewReader(c)
				seen := false
				for {
					line, err := r.ReadSlice('\n')
					drained.Add(int64(len(line)))
					if err != nil && err != bufio.ErrBufferFull {
						if !seen {
							welcomed.Done()
						}
						return
					}
					if !seen && strings.HasPrefix(string(line), "* welcome, ") {
						seen = true
						welcomed.Done()
					}
				}
			}()
		}
		welcomed.Wait()
		// Let the join notices drain: wait until nothing arrives for 300ms.
		for last := int64(-1); drained.Load() != last; time.Sleep(300 * time.Millisecond) {
			last = drained.Load()
		}
		after := rssKiB(b, pid)
		b.ReportMetric(float64(after-before)/members, "KiB-RSS/member")
		b.ReportMetric(float64(after)/1024, "MiB-RSS-total")
		b.ReportMetric(0, "ns/op")
		for _, c := range conns {
			c.Close()
		}
		p.cmd.Process.Signal(os.Interrupt)
		p.wait(time.Minute)
	}
}

func rssKiB(b testing.TB, pid int) int {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	b.Fatal("no VmRSS in /proc status")
	return 0
}
