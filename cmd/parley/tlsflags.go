package main

import (
	"github.com/urfave/cli/v2"

	"github.com/parley-edu/parley/schemes"
)

// tlsFlags are the TLS schemes' flags (placeholder until the TLS schemes land).
func tlsFlags(server bool) []cli.Flag { return nil }

// tlsConfig fills the TLS schemes' part of cfg from the flags.
func tlsConfig(c *cli.Context, server bool, serverAddr string, cfg *schemes.Config) error { return nil }
