package dockerplugin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/medianet/medianet/doctor"
	"github.com/medianet/medianet/ipam"
)

// parseConflict reads --ipam-opt conflict-check=DURATION ("0": off) and
// conflict-retry=DURATION, as the CNI keys ipam.conflictCheck and
// ipam.conflictRetry.
func (o *poolOptions) parseConflict(k, v string) error {
	d, err := time.ParseDuration(v)
	if v == "0" {
		d, err = 0, nil
	}
	switch {
	case k == optConflictCheck && (err != nil || d < 0 || d > ipam.MaxConflictCheck):
		return fmt.Errorf("medianet: --ipam-opt %s=%q: %w: give a duration from 0 (no check) to %s, such as 200ms", k, v, ErrBadOption, ipam.MaxConflictCheck)
	case k == optConflictCheck:
		o.ConflictCheck = &d
	case err != nil || d < time.Second:
		return fmt.Errorf("medianet: --ipam-opt %s=%q: %w: give a duration of at least 1s, such as 10m", k, v, ErrBadOption)
	default:
		o.ConflictRetry = d
	}
	return nil
}

// conflict returns the pool's check and retry times, defaults filled in.
func (o poolOptions) conflict() (check, retry time.Duration) {
	check, retry = ipam.DefaultConflictCheck, ipam.DefaultConflictRetry
	if o.ConflictCheck != nil {
		check = *o.ConflictCheck
	}
	if o.ConflictRetry > 0 {
		retry = o.ConflictRetry
	}
	return check, retry
}

// OnConflicts makes fn count the addresses of an ipam network that
// another host answered for (medianetd: the metric
// medianet_ipam_address_conflicts_total).
func (d *Driver) OnConflicts(fn func(network string, n int)) { d.onConflicts.Store(&fn) }

// probeParent is the conflict probe; tests may replace it.
var probeParent = doctor.ProbeParent

// quarantiner is an addressBook that records quarantines (ipamBook).
type quarantiner interface {
	Quarantine(ctx context.Context, p pool, holder string, want netip.Addr, cs []ipam.Conflict, retryAt time.Time) error
}

// checkConflicts probes got, just allocated for an endpoint of a local
// pool, before RequestAddress returns it. The endpoint has no link yet:
// the probe goes from a short-lived macvlan in an anonymous namespace on
// the network's parent (doctor.ProbeParent). An address another host
// answers for is quarantined and the next one allocated and probed, at
// most ipam.ConflictTries times; a requested address (--ip) that is
// answered for fails. Swarm's global pools are allocated by a manager for
// tasks of any node, whose LAN it cannot probe: they are not checked.
// Never called under d.mu.
func (d *ipamDriver) checkConflicts(ctx context.Context, a addressReq, got netip.Addr) (netip.Addr, error) {
	check, retry := a.p.Options.conflict()
	q, ok := d.addrs.(quarantiner)
	if check <= 0 || !ok || a.p.Space != LocalAddressSpace || !strings.HasPrefix(a.holder, "docker-") {
		return got, nil
	}
	master, ok := d.masterOf(a.p)
	if !ok {
		return got, nil // no network bound yet: nothing to probe from
	}
	var seen []ipam.Conflict
	for try := 1; ; try++ {
		answers, err := probeParent(ctx, "", master, []netip.Addr{got}, check)
		switch {
		case errors.Is(err, doctor.ErrCannotProbe):
			// Nobody can answer on a parent that is down either; the
			// endpoint's Join reports the parent.
			d.log.Warn("conflict check skipped", "pool", a.p.ID, "address", got, "err", err)
			return got, nil
		case err != nil:
			return netip.Addr{}, d.giveBack(ctx, a.p, got, err)
		case len(answers) == 0:
			return got, nil
		}
		cs := make([]ipam.Conflict, len(answers))
		for i, an := range answers {
			cs[i] = ipam.Conflict{Addr: an.Addr, MAC: an.MAC, At: an.At}
		}
		seen = append(seen, cs...)
		if fn := d.onConflicts.Load(); fn != nil {
			(*fn)(a.p.ipamNet(), len(cs))
		}
		d.log.Warn("address answered by another host: quarantined", "pool", a.p.ID, "address", got, "mac", answers[0].MAC.String())
		if err := q.Quarantine(ctx, a.p, a.holder, a.want, cs, time.Now().Add(retry)); err != nil {
			return netip.Addr{}, d.giveBack(ctx, a.p, got, err)
		}
		if a.want.IsValid() || try >= ipam.ConflictTries {
			return netip.Addr{}, ipam.ConflictError(a.p.ipamNet(), try, seen)
		}
		if got, err = d.addrs.Allocate(ctx, a.p, d.node, a.holder, a.want); err != nil {
			return netip.Addr{}, fmt.Errorf("%w (after quarantining %d addresses other hosts answer for)", err, len(seen))
		}
	}
}

// giveBack releases got, allocated by a request that fails with err.
func (d *ipamDriver) giveBack(ctx context.Context, p pool, got netip.Addr, err error) error {
	if rerr := d.addrs.Release(ctx, p, got); rerr != nil {
		return fmt.Errorf("%w; releasing %s: %v", err, got, rerr)
	}
	return err
}

// masterOf returns the link the macvlans of p's network sit on.
func (d *ipamDriver) masterOf(p pool) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range p.Networks {
		var n network
		if ok, err := (*networkDriver)(d).view(bucketNetworks, id, &n); err == nil && ok {
			return n.Options.master(), true
		}
	}
	return "", false
}
