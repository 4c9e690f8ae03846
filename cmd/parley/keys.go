package main

import (
	"github.com/urfave/cli/v2"

	"github.com/parley-edu/parley/schemes"
)

// recordFlags are the record schemes' flags (placeholder until the record
// schemes land).
func recordFlags() []cli.Flag { return nil }

// recordConfig fills the record schemes' part of cfg from the flags.
func recordConfig(c *cli.Context, cfg *schemes.Config) error { return nil }
