package main

import (
	"context"
	"log/slog"

	"github.com/medianet/medianet/dhcp"
)

// startDHCP starts keeping the DHCP leases of dataDir (those recorded
// are renewed at once when due) and serves the plugins on
// <dataDir>/dhcp.sock until ctx ends; Close stops the renewals and
// leaves the leases recorded for the next start.
func startDHCP(ctx context.Context, dataDir string, log *slog.Logger) (*dhcp.Manager, error) {
	l, err := dhcp.Listen(dataDir)
	if err != nil {
		return nil, err
	}
	m, err := dhcp.NewManager(dhcp.Options{DataDir: dataDir, Log: log.With("part", "dhcp")})
	if err != nil {
		l.Close()
		return nil, err
	}
	go func() {
		if err := m.Serve(ctx, l); err != nil {
			log.Error("dhcp socket stopped", "err", err)
		}
	}()
	return m, nil
}
