package dhcpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
)

// Client calls the agent of one data directory.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client of the agent serving dataDir's socket.
func NewClient(dataDir string) *Client {
	sock := SocketPath(dataDir)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &Client{socket: sock, hc: &http.Client{Transport: tr}}
}

// Acquire asks for a lease and waits for it (bounded by req.Timeout on
// the agent's side, and by ctx).
func (c *Client) Acquire(ctx context.Context, req AcquireRequest) (Lease, error) {
	var l Lease
	err := c.call(ctx, PathAcquire, req, &l)
	return l, err
}

// Release gives the attachment's lease back (RELEASE unless sticky) and
// forgets it; no lease is success.
func (c *Client) Release(ctx context.Context, k Key) error {
	return c.call(ctx, PathRelease, k, nil)
}

// Get returns the attachment's lease.
func (c *Client) Get(ctx context.Context, k Key) (Lease, error) {
	var l Lease
	err := c.call(ctx, PathGet, k, &l)
	return l, err
}

// GC releases the network's leases of attachments not in valid, and
// returns them.
func (c *Client) GC(ctx context.Context, network string, valid []Key) ([]Lease, error) {
	var ls []Lease
	err := c.call(ctx, PathGC, GCRequest{Network: network, Valid: valid}, &ls)
	return ls, err
}

// List returns the leases the agent holds.
func (c *Client) List(ctx context.Context, network string) ([]Lease, error) {
	var ls []Lease
	err := c.call(ctx, PathList, ListRequest{Network: network}, &ls)
	return ls, err
}

func (c *Client) call(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("dhcp agent %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://medianetd"+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("dhcp agent %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("%w: %s: start medianetd with this data directory (the node agent keeps DHCP leases): %v", ErrNoAgent, c.socket, err)
		}
		return fmt.Errorf("dhcp agent %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("dhcp agent %s: read answer: %w", c.socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			return fmt.Errorf("dhcp agent %s: %s: %s", c.socket, resp.Status, bytes.TrimSpace(b))
		}
		return &agentError{msg: eb.Error, kind: kinds[eb.Kind]}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("dhcp agent %s: answer: %w", c.socket, err)
	}
	return nil
}

// agentError is an error the agent answered: its text as the agent wrote
// it, matching its sentinel (if any) with errors.Is.
type agentError struct {
	msg  string
	kind error
}

func (e *agentError) Error() string { return e.msg }
func (e *agentError) Unwrap() error { return e.kind }
