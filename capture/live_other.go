//go:build !linux

package capture

import "context"

type liveSource struct{}

// OpenLive reports ErrLiveUnsupported: live capture uses Linux's AF_PACKET
// sockets. capture tap works everywhere.
func OpenLive(cfg LiveConfig) (*Live, error) { return nil, ErrLiveUnsupported }

// Capture reports ErrLiveUnsupported.
func (l *Live) Capture(ctx context.Context, maxPackets int) error { return ErrLiveUnsupported }

// Close does nothing.
func (l *Live) Close() error { return nil }
