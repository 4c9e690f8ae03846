package main

import (
	"os"
	"syscall"
)

// syscallInterrupts are the signals that stop a long-running command
// cleanly: Ctrl-C and, where it exists, SIGTERM.
func syscallInterrupts() []os.Signal { return []os.Signal{os.Interrupt, syscall.SIGTERM} }
