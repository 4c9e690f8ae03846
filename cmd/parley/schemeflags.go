package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/parley-edu/parley/schemes"
)

// schemeFlags are the flags that choose and configure a scheme, for serve
// (server true) or join.
func schemeFlags(server bool) []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{
			Name:  "scheme",
			Value: "plain",
			Usage: "transport scheme: " + strings.Join(schemes.Names(), ", ") + " (see 'parley schemes')",
		},
		&cli.IntFlag{Name: "max-line", Value: schemes.DefaultMaxMessage, Usage: "longest message in bytes"},
	}
	flags = append(flags, recordFlags()...)
	return append(flags, tlsFlags(server)...)
}

// schemeFromFlags builds the scheme that the flags describe. serverAddr is
// the address join dials (empty for serve), whose host a TLS client verifies.
func schemeFromFlags(c *cli.Context, server bool, serverAddr string) (schemes.Scheme, error) {
	name := c.String("scheme")
	if _, err := schemes.Describe(name); err != nil {
		return nil, misuse(fmt.Sprintf("--scheme %q is not a scheme", name),
			"choose one of: "+strings.Join(schemes.Names(), ", "))
	}
	if c.Int("max-line") < 1 || c.Int("max-line") > 16<<20 {
		return nil, misuse(fmt.Sprintf("--max-line %d is out of range", c.Int("max-line")), "use 1 to 16777216 bytes")
	}
	cfg := schemes.Config{MaxMessage: c.Int("max-line")}
	if err := recordConfig(c, &cfg); err != nil {
		return nil, err
	}
	if err := tlsConfig(c, server, serverAddr, &cfg); err != nil {
		return nil, err
	}
	s, err := schemes.New(name, cfg)
	if err != nil {
		return nil, fail(err)
	}
	return s, nil
}

// checkAddr checks a host:port flag value up front, naming the flag.
func checkAddr(flag, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return misuse(fmt.Sprintf("--%s %q is not an address: %v", flag, addr, err),
			fmt.Sprintf("write it as HOST:PORT, e.g. --%s 127.0.0.1:5050 or --%s [::1]:5050", flag, flag))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return misuse(fmt.Sprintf("--%s %q has a bad port %q", flag, addr, port), "a port is a number from 0 to 65535")
	}
	if strings.ContainsAny(host, " /") {
		return misuse(fmt.Sprintf("--%s %q has a bad host %q", flag, addr, host))
	}
	return nil
}

// checkInputFile checks up front that the file a flag names can be read.
func checkInputFile(flag, path string, hints ...string) error {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return fail(fmt.Errorf("--%s: %s does not exist", flag, path), hints...)
		}
		return fail(fmt.Errorf("--%s: cannot read %s: %w", flag, path, err), hints...)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return fail(fmt.Errorf("--%s: %s is a directory, not a file", flag, path), hints...)
	}
	return nil
}

// checkOutputFile checks up front that a file can be created at path: its
// folder exists and path is not a folder.
func checkOutputFile(flag, path string) error {
	if path == "" {
		return misuse(fmt.Sprintf("--%s needs a file name", flag))
	}
	if st, err := os.Lstat(path); err == nil && st.IsDir() {
		return misuse(fmt.Sprintf("--%s: %s is a directory; name a file inside it", flag, path))
	} else if err == nil && !st.Mode().IsRegular() {
		return misuse(fmt.Sprintf("--%s: %s is not a regular file (%s)", flag, path, st.Mode().Type()),
			"name a new file; parley replaces the file it writes, which would destroy a device, pipe or link")
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return fail(fmt.Errorf("--%s: folder %s does not exist", flag, dir), "create it first, or name a file in an existing folder")
	}
	// Find out now, not when a long capture ends, that nothing can be
	// written there: create and remove a probe file (modes alone do not
	// tell, e.g. for root or on read-only mounts).
	probe, err := os.CreateTemp(dir, ".parley-probe-*")
	if err != nil {
		return fail(fmt.Errorf("--%s: cannot write %s: %w", flag, path, err), "choose a folder you can write to")
	}
	probe.Close()
	os.Remove(probe.Name())
	return nil
}
