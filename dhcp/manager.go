package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/medianet/medianet/dhcp/dhcpapi"
)

// Options configure a Manager.
type Options struct {
	// DataDir holds dhcp.db.
	DataDir string
	// Log receives renewals, expiries and failed RELEASEs; nil discards.
	Log *slog.Logger
	// MinRetry is the shortest wait between renewal attempts (RFC 2131
	// 4.4.5 says 60 s; tests with leases of seconds set less). 0: 60 s.
	MinRetry time.Duration
}

// Manager holds the node's leases: it acquires, renews and releases them
// and keeps dhcp.db in step. Its lock guards the map only and is never
// held across an exchange or a database write.
type Manager struct {
	st       *Store
	log      *slog.Logger
	minRetry time.Duration
	now      func() time.Time

	mu     sync.Mutex
	leases map[dhcpapi.Key]*entry
	// busy serialises the calls on one attachment (ADD, DEL, GC, the
	// keeper's own steps), without a lock across the network.
	busy map[dhcpapi.Key]chan struct{}
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// entry is one held lease and the goroutine keeping it.
type entry struct {
	rec  *Record
	stop context.CancelFunc
	done chan struct{}
}

// NewManager opens dataDir's leases and starts keeping every bound one:
// a lease whose T1 passed while no agent ran is renewed at once.
func NewManager(o Options) (*Manager, error) {
	st, err := NewStore(o.DataDir)
	if err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MinRetry <= 0 {
		o.MinRetry = time.Minute
	}
	ctx, stop := context.WithCancel(context.Background())
	m := &Manager{st: st, log: o.Log, minRetry: o.MinRetry, now: time.Now, leases: map[dhcpapi.Key]*entry{},
		busy: map[dhcpapi.Key]chan struct{}{}, ctx: ctx, stop: stop}
	recs, err := st.List()
	if err != nil {
		stop()
		return nil, err
	}
	for _, r := range recs {
		m.hold(r, false)
	}
	return m, nil
}

// Close stops the keepers; leases stay in dhcp.db for the next agent.
func (m *Manager) Close() {
	m.stop()
	m.wg.Wait()
}

// lock takes the attachment's turn, waiting for another call on it.
func (m *Manager) lock(ctx context.Context, k dhcpapi.Key) (func(), error) {
	for {
		m.mu.Lock()
		ch, held := m.busy[k]
		if !held {
			ch = make(chan struct{})
			m.busy[k] = ch
			m.mu.Unlock()
			return func() {
				m.mu.Lock()
				delete(m.busy, k)
				m.mu.Unlock()
				close(ch)
			}, nil
		}
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("lease of %s/%s busy: %w", k.ContainerID, k.IfName, ctx.Err())
		}
	}
}

// hold puts r in the map and starts its keeper: one that renews a bound
// lease (at once when soon), or tries to regain an expired one whose
// link is known.
func (m *Manager) hold(r *Record, soon bool) {
	ctx, stop := context.WithCancel(m.ctx)
	e := &entry{rec: r, stop: stop, done: make(chan struct{})}
	m.mu.Lock()
	m.leases[r.Key] = e
	m.mu.Unlock()
	if r.State != dhcpapi.StateBound && (r.State != dhcpapi.StateExpired || r.Netns == "") {
		close(e.done)
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(e.done)
		m.run(ctx, r.Key, soon)
	}()
}

// run keeps k's lease until ctx ends: renewals while it is bound, and
// after it expired, attempts to regain its address (regain.go).
func (m *Manager) run(ctx context.Context, k dhcpapi.Key, soon bool) {
	for ctx.Err() == nil {
		r := m.record(k)
		switch {
		case r == nil:
			return
		case r.State == dhcpapi.StateBound:
			m.keep(ctx, k, soon)
			soon = false
			if r := m.record(k); r == nil || r.State == dhcpapi.StateBound {
				return // stopped, or the lease is unreadable
			}
		case r.State == dhcpapi.StateExpired && r.Netns != "":
			if !m.regainLoop(ctx, k) {
				return
			}
		default:
			return
		}
	}
}

// unhold stops k's keeper and takes it out of the map; it returns the
// record it held.
func (m *Manager) unhold(k dhcpapi.Key) *Record {
	m.mu.Lock()
	e := m.leases[k]
	delete(m.leases, k)
	m.mu.Unlock()
	if e == nil {
		return nil
	}
	e.stop()
	<-e.done
	return e.rec
}

func (m *Manager) record(k dhcpapi.Key) *Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.leases[k]; e != nil {
		return e.rec
	}
	return nil
}

// setRecord replaces k's record (the keeper's renewals).
func (m *Manager) setRecord(r *Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.leases[r.Key]; e != nil {
		e.rec = r
	}
}

// Acquire obtains a lease for the attachment and starts keeping it. An
// attachment that holds one already gets a fresh exchange asking for the
// same address. Nothing is recorded when it fails.
func (m *Manager) Acquire(ctx context.Context, req dhcpapi.AcquireRequest) (dhcpapi.Lease, error) {
	if (req.Netns == "" && req.Parent == "") || req.IfName == "" || req.Network == "" || req.ClientID == "" {
		return dhcpapi.Lease{}, fmt.Errorf("acquire needs network, netns (or parent and mac), ifname and clientID: %w", dhcpapi.ErrBadRequest)
	}
	var onParent net.HardwareAddr
	if req.Parent != "" {
		var err error
		if onParent, err = net.ParseMAC(req.MAC); err != nil {
			return dhcpapi.Lease{}, fmt.Errorf("acquire on parent %q: mac %q: %w: %w", req.Parent, req.MAC, dhcpapi.ErrBadRequest, err)
		}
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	unlock, err := m.lock(ctx, req.Key)
	if err != nil {
		return dhcpapi.Lease{}, err
	}
	defer unlock()
	id := identity{clientID: clientID(req.ClientID), hostname: req.Hostname}
	// want is the address to ask for again; held says the server should
	// still have the client's lease of it (never released), so the
	// client asks in INIT-REBOOT; after a RELEASE only with option 50.
	var want netip.Addr
	held := false
	old := m.unhold(req.Key)
	if old != nil {
		if l, err := old.lease(); err == nil {
			want, _ = netip.AddrFromSlice(l.ACK.YourIPAddr.To4())
			held = old.State == dhcpapi.StateBound
		}
	} else if prev, released, err := m.st.Previous(id.clientID); err == nil && prev.IsValid() {
		want, held = prev, !released
	}
	netnsPath, lk := req.Netns, linkRef{name: req.IfName}
	if onParent != nil {
		sc, err := newScratch(req.Parent, onParent, req.Mode)
		if err != nil {
			if old != nil {
				m.hold(old, false)
			}
			return dhcpapi.Lease{}, fmt.Errorf("lease for %s/%s on %q: %w", req.ContainerID, req.IfName, req.Network, err)
		}
		defer sc.close()
		netnsPath, lk = sc.path, linkRef{name: scratchLink}
	}
	lease, mac, refused, err := acquire(ctx, netnsPath, lk, id, want, held)
	if err != nil {
		if old != nil {
			m.hold(old, false) // the attachment keeps what it had
		}
		if errors.Is(err, dhcpapi.ErrNoAnswer) {
			err = fmt.Errorf("%w%s", err, m.serversHint(req.Network))
		}
		return dhcpapi.Lease{}, fmt.Errorf("lease for %s/%s on %q (MAC %s) within %s: %w", req.ContainerID, req.IfName, req.Network, mac, timeout, err)
	}
	r := &Record{Key: req.Key, Netns: req.Netns, ClientID: id.clientID, Hostname: req.Hostname, MAC: mac.String(),
		Sticky: req.Sticky, Offer: lease.Offer.ToBytes(), ACK: lease.ACK.ToBytes(), Obtained: lease.CreationTime, Bound: lease.CreationTime, State: dhcpapi.StateBound}
	if onParent != nil {
		// The workload's link does not exist yet: Attach names its namespace.
		r.Netns, r.LinkByMAC, r.Parent, r.Mode = "", true, req.Parent, req.Mode
	}
	if err := m.st.Put(r); err != nil {
		// Not recorded, so not kept: give it back rather than squat.
		_ = release(netnsPath, lk, id, lease)
		return dhcpapi.Lease{}, err
	}
	m.hold(r, false)
	if refused != nil {
		m.log.Info("dhcp remembered address refused; a new lease taken", "network", req.Network, "container", req.ContainerID, "ifname", req.IfName, "refused", refused)
	}
	m.log.Info("dhcp lease bound", "network", req.Network, "container", req.ContainerID, "ifname", req.IfName, "address", lease.ACK.YourIPAddr, "server", lease.ACK.ServerIdentifier())
	return r.view()
}

// serversHint names the servers of the network's other leases, for the
// error of an exchange nobody answered (a server with an exhausted pool
// stays silent).
func (m *Manager) serversHint(network string) string {
	var servers []string
	m.mu.Lock()
	for k, e := range m.leases {
		if k.Network != network {
			continue
		}
		if l, err := e.rec.lease(); err == nil {
			if s := ipString(l.ACK.ServerIdentifier()); s != "" && !slices.Contains(servers, s) {
				servers = append(servers, s)
			}
		}
	}
	m.mu.Unlock()
	if len(servers) == 0 {
		return " (is a DHCP server on the master's LAN, or a relay?)"
	}
	return fmt.Sprintf(" (server %v leases this network's other addresses and did not offer one: is its pool exhausted?)", servers)
}

// Release gives k's lease back: RELEASE unicast to the server from the
// container's link (not for a sticky lease: the server keeps it for the
// workload), then forgets it. No lease is success; a RELEASE that cannot
// be sent (namespace or link gone) is logged, and the lease forgotten:
// the server ends it at expiry.
func (m *Manager) Release(ctx context.Context, k dhcpapi.Key) error {
	unlock, err := m.lock(ctx, k)
	if err != nil {
		return err
	}
	defer unlock()
	r := m.record(k)
	if r == nil {
		return nil
	}
	m.unhold(k)
	if err := m.st.Delete(k); err != nil {
		m.hold(r, false) // still recorded: keep keeping it
		return err
	}
	m.sendRelease(r)
	return nil
}

func (m *Manager) sendRelease(r *Record) {
	if r.Sticky || r.State != dhcpapi.StateBound {
		return
	}
	l, err := r.lease()
	if err == nil {
		err = m.release(r, l)
	}
	if err != nil {
		m.log.Warn("dhcp release not sent; the server ends the lease at its expiry", "network", r.Key.Network, "container", r.Key.ContainerID, "ifname", r.Key.IfName, "err", err)
		return
	}
	if err := m.st.Released(r.ClientID); err != nil {
		m.log.Warn("dhcp release not recorded; the next lease of the workload asks for the address in INIT-REBOOT", "container", r.Key.ContainerID, "err", err)
	}
	m.log.Info("dhcp lease released", "network", r.Key.Network, "container", r.Key.ContainerID, "ifname", r.Key.IfName, "address", l.ACK.YourIPAddr, "server", l.ACK.ServerIdentifier())
}

// release sends r's RELEASE from its link, or, when the link is gone and
// the lease was obtained on a parent (Docker), from a short-lived macvlan
// with its MAC and address on that parent.
func (m *Manager) release(r *Record, l *nclient4.Lease) error {
	var err error
	if r.Netns != "" {
		if err = release(r.Netns, r.link(), r.identity(), l); err == nil || r.Parent == "" {
			return err
		}
	}
	if r.Parent == "" {
		return fmt.Errorf("lease of %s/%s has no namespace: %w", r.Key.ContainerID, r.Key.IfName, errLinkGone)
	}
	mac, perr := net.ParseMAC(r.MAC)
	if perr != nil {
		return perr
	}
	p, perr := address(l.ACK)
	if perr != nil {
		return perr
	}
	sc, serr := newScratch(r.Parent, mac, r.Mode)
	if serr != nil {
		return errors.Join(err, fmt.Errorf("release from %q: %w", r.Parent, serr))
	}
	defer sc.close()
	var router net.IP
	if rs := l.ACK.Router(); len(rs) > 0 {
		router = rs[0]
	}
	if serr := sc.configure(p, l.ACK.ServerIdentifier(), router); serr != nil {
		return errors.Join(err, fmt.Errorf("release from %q: %w", r.Parent, serr))
	}
	return release(sc.path, linkRef{name: scratchLink}, r.identity(), l)
}

// Attach records netns as the namespace of k's link (found there by its
// MAC), for a lease obtained on a parent before the link existed; the
// keeper renews from there. It is persisted before it returns.
func (m *Manager) Attach(ctx context.Context, k dhcpapi.Key, netns string) error {
	unlock, err := m.lock(ctx, k)
	if err != nil {
		return err
	}
	defer unlock()
	r := m.record(k)
	if r == nil {
		return fmt.Errorf("no lease for %s/%s on %q: %w", k.ContainerID, k.IfName, k.Network, dhcpapi.ErrNotFound)
	}
	if r.Netns == netns && r.LinkByMAC {
		return nil
	}
	nr := *r
	nr.Netns, nr.LinkByMAC = netns, true
	m.unhold(k)
	if err := m.st.Put(&nr); err != nil {
		m.hold(r, false)
		return err
	}
	m.hold(&nr, false)
	return nil
}

// SetHostname makes name k's hostname (option 12), persisted, and has
// the keeper renew the lease at once so that the server's table shows
// it: Docker names a container only after its lease is taken, and
// medianetd learns the name later from the engine. name must be a
// hostname label (RFC 1123: letters, digits, hyphens, at most 63).
func (m *Manager) SetHostname(ctx context.Context, k dhcpapi.Key, name string) error {
	if !validHostname(name) {
		return fmt.Errorf("hostname %q for %s/%s: %w: give letters, digits and hyphens, at most 63, no hyphen at either end", name, k.ContainerID, k.IfName, dhcpapi.ErrBadRequest)
	}
	unlock, err := m.lock(ctx, k)
	if err != nil {
		return err
	}
	defer unlock()
	r := m.record(k)
	if r == nil {
		return fmt.Errorf("no lease for %s/%s on %q: %w", k.ContainerID, k.IfName, k.Network, dhcpapi.ErrNotFound)
	}
	if r.Hostname == name {
		return nil
	}
	nr := *r
	nr.Hostname = name
	m.unhold(k)
	if err := m.st.Put(&nr); err != nil {
		m.hold(r, false)
		return err
	}
	m.hold(&nr, nr.State == dhcpapi.StateBound)
	return nil
}

// validHostname reports whether s is one RFC 1123 label.
func validHostname(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Get returns k's lease.
func (m *Manager) Get(k dhcpapi.Key) (dhcpapi.Lease, error) {
	r := m.record(k)
	if r == nil {
		return dhcpapi.Lease{}, fmt.Errorf("no lease for %s/%s on %q: %w", k.ContainerID, k.IfName, k.Network, dhcpapi.ErrNotFound)
	}
	return r.view()
}

// List returns the leases held ("" network: all), sorted.
func (m *Manager) List(network string) ([]dhcpapi.Lease, error) {
	m.mu.Lock()
	var recs []*Record
	for k, e := range m.leases {
		if network == "" || k.Network == network {
			recs = append(recs, e.rec)
		}
	}
	m.mu.Unlock()
	out := []dhcpapi.Lease{}
	for _, r := range recs {
		v, err := r.view()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b dhcpapi.Lease) int {
		return cmpKeys(a.Key, b.Key)
	})
	return out, nil
}

func cmpKeys(a, b dhcpapi.Key) int {
	for _, p := range [][2]string{{a.Network, b.Network}, {a.ContainerID, b.ContainerID}, {a.IfName, b.IfName}} {
		if p[0] != p[1] {
			if p[0] < p[1] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// GC releases the network's leases of attachments not in valid and
// returns them.
func (m *Manager) GC(ctx context.Context, network string, valid []dhcpapi.Key) ([]dhcpapi.Lease, error) {
	held, err := m.List(network)
	if err != nil {
		return nil, err
	}
	var gone []dhcpapi.Lease
	for _, l := range held {
		if slices.ContainsFunc(valid, func(v dhcpapi.Key) bool {
			return v.ContainerID == l.ContainerID && v.IfName == l.IfName
		}) {
			continue
		}
		if err := m.Release(ctx, l.Key); err != nil {
			return gone, err
		}
		gone = append(gone, l)
	}
	return gone, nil
}
