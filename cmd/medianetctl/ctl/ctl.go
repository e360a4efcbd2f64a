// Package ctl is medianetctl's logic: operator commands over the IPAM
// store (list, verify, release, gc, check) and the preflight doctor
// (package doctor). cmd/medianetctl only calls Run.
package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/medianet/medianet/cni"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/ipam/boltstore"
)

// Exit codes.
const (
	ExitOK       = 0
	ExitError    = 1 // runtime error, corrupt store, or verify found a conflict
	ExitUsage    = 2
	ExitFindings = 3 // check: consistent, but with findings to act on
)

const usage = `usage:
  medianetctl [--data-dir DIR] [--timeout D] ipam ...   (D: how long to wait for a busy store, default 10s)
  medianetctl [--data-dir DIR] ipam list [--network NAME] [--json]
  medianetctl ipam list --kubeconfig F [--network NAME] [--json]      (the block claims in the Kubernetes API)
  medianetctl [--data-dir DIR] ipam verify CONFIG...
  medianetctl [--data-dir DIR] ipam release --network NAME --container ID [--ifname IF]
  medianetctl [--data-dir DIR] ipam gc --network NAME --valid ID:IF[,ID:IF...]
  medianetctl [--data-dir DIR] ipam check [--json] [--kubeconfig F] [CONFIG...]
  medianetctl [--data-dir DIR] ipam sync [--kubeconfig F] CONFIG...
  medianetctl ipam reclaim --node NAME --etcd-endpoints URLS [--network NAME] [--force] [--dry-run]
              [--etcd-prefix P] [--etcd-ca F --etcd-cert F --etcd-key F] [--etcd-user U]
  medianetctl ipam reclaim --kubeconfig F (--node NAME | --gone) [--network NAME] [--force] [--dry-run]
  medianetctl doctor --parent IFACE [--vlan N] [--gateway IP] [--peer IP] [--json]
`

// Run executes medianetctl with args (without the program name).
func Run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("medianetctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fmt.Fprintln(stderr, "flags before ipam:")
		fs.PrintDefaults()
	}
	dataDir := fs.String("data-dir", cni.DefaultDataDir, "IPAM store directory")
	timeout := fs.Duration("timeout", boltstore.DefaultTimeout, "how long to wait for a busy store")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	rest := fs.Args()
	if len(rest) > 0 && rest[0] == "doctor" {
		return runDoctor(rest[1:], stdout, stderr)
	}
	if len(rest) < 2 || rest[0] != "ipam" {
		fs.Usage()
		return ExitUsage
	}
	c := &cmd{dataDir: *dataDir, timeout: *timeout, out: stdout, errw: stderr}
	run, ok := map[string]func([]string) error{
		"list": c.list, "verify": c.verify, "release": c.release, "gc": c.gc, "check": c.check,
		"reclaim": c.reclaim, "sync": c.sync,
	}[rest[1]]
	if !ok {
		fmt.Fprintf(stderr, "medianetctl: unknown command ipam %q\n%s", rest[1], usage)
		return ExitUsage
	}
	if err := run(rest[2:]); err != nil {
		if errors.Is(err, errFindings) {
			return ExitFindings
		}
		if errors.Is(err, errUsage) {
			if err != errUsage { // it says what was wrong
				fmt.Fprintf(stderr, "medianetctl: %v\n", err)
			}
			fmt.Fprint(stderr, usage)
			return ExitUsage
		}
		fmt.Fprintf(stderr, "medianetctl: %v\n", err)
		return ExitError
	}
	return ExitOK
}

var errUsage = errors.New("usage")

// errFindings: check found states to act on (printed already).
var errFindings = errors.New("findings")

type cmd struct {
	dataDir string
	timeout time.Duration
	out     io.Writer
	errw    io.Writer
}

func (c *cmd) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.errw)
	return fs
}

func (c *cmd) withStore(fn func(ctx context.Context, st *boltstore.Store) error) error {
	ctx := context.Background()
	if _, err := os.Stat(c.dataDir); err != nil {
		return fmt.Errorf("--data-dir %s: %w (no allocation on this node yet, or the wrong directory)", c.dataDir, err)
	}
	st, err := boltstore.Open(ctx, c.dataDir, boltstore.Options{Timeout: c.timeout})
	if err != nil {
		return fmt.Errorf("--data-dir %s: %w", c.dataDir, err)
	}
	defer st.Close()
	return fn(ctx, st)
}

// listEntry is one allocation in `ipam list --json`.
type listEntry struct {
	Network     string    `json:"network"`
	ContainerID string    `json:"containerID"`
	IfName      string    `json:"ifname"`
	IPs         []string  `json:"ips"`
	Created     time.Time `json:"created"`
	// Workload is the pod ("namespace/name") when the runtime said.
	Workload string `json:"workload,omitempty"`
	// HeldUntil is set on a sticky hold: the workload's addresses kept
	// for it until then (ContainerID "sticky:<workload>").
	HeldUntil time.Time `json:"heldUntil,omitzero"`
	// LeaseExpires, LeaseState and LeaseServer are set on a DHCP lease
	// (ipam.dhcp) the node agent keeps: when it ends unless renewed,
	// "bound" or "expired", and the server that leased it.
	LeaseExpires time.Time `json:"leaseExpires,omitzero"`
	LeaseState   string    `json:"leaseState,omitempty"`
	LeaseServer  string    `json:"leaseServer,omitempty"`
	// Conflict is set on a quarantine (ContainerID "conflict:<MAC>",
	// IfName the address): the MAC that answered a probe for the
	// address, which is not handed out before RetryAt.
	Conflict string    `json:"conflict,omitempty"`
	RetryAt  time.Time `json:"retryAt,omitzero"`
}

func (c *cmd) list(args []string) error {
	fs := c.flags("ipam list")
	network := fs.String("network", "", "only this network")
	asJSON := fs.Bool("json", false, "print JSON")
	kubeconfig := fs.String("kubeconfig", "", "list the block claims kept in the Kubernetes API (ipam.kubernetes), every node's, instead of this node's allocations")
	if fs.Parse(args) != nil || fs.NArg() != 0 {
		return errUsage
	}
	if *kubeconfig != "" {
		return c.listKube(*kubeconfig, *network, *asJSON)
	}
	return c.withStore(func(ctx context.Context, st *boltstore.Store) error {
		allocs, err := ipam.List(ctx, st, *network)
		if err != nil {
			return err
		}
		entries := make([]listEntry, 0, len(allocs))
		for _, a := range allocs {
			e := listEntry{Network: a.Network, ContainerID: a.ContainerID, IfName: a.IfName, Created: a.Created,
				Workload: a.Workload, HeldUntil: a.HeldUntil, Conflict: a.Conflict, RetryAt: a.RetryAt}
			for _, ip := range a.IPs {
				e.IPs = append(e.IPs, ip.String())
			}
			entries = append(entries, e)
		}
		leases, err := leaseEntries(c.dataDir, *network)
		if err != nil {
			return err
		}
		entries = append(entries, leases...)
		if *asJSON {
			enc := json.NewEncoder(c.out)
			enc.SetIndent("", "  ")
			return enc.Encode(entries)
		}
		tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NETWORK\tCONTAINER\tIFNAME\tADDRESSES\tWORKLOAD\tCREATED\tHELD UNTIL\tLEASE EXPIRES")
		for _, e := range entries {
			held, lease := "-", "-"
			switch {
			case !e.HeldUntil.IsZero():
				held = e.HeldUntil.Format(time.RFC3339)
			case e.Conflict != "":
				// A quarantine is held until its retry time.
				held = e.RetryAt.Format(time.RFC3339) + " (conflict)"
			}
			if !e.LeaseExpires.IsZero() {
				lease = e.LeaseExpires.Format(time.RFC3339)
				if e.LeaseState != "" && e.LeaseState != "bound" {
					lease += " (" + e.LeaseState + ")"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Network, e.ContainerID, e.IfName, strings.Join(e.IPs, ","),
				orDash(e.Workload), e.Created.Format(time.RFC3339), held, lease)
		}
		return tw.Flush()
	})
}

func (c *cmd) release(args []string) error {
	fs := c.flags("ipam release")
	network := fs.String("network", "", "network name (required)")
	container := fs.String("container", "", "container ID (required)")
	ifname := fs.String("ifname", "", "interface; all of the container's when empty")
	if fs.Parse(args) != nil || fs.NArg() != 0 || *network == "" || *container == "" {
		return errUsage
	}
	return c.withStore(func(ctx context.Context, st *boltstore.Store) error {
		allocs, err := ipam.List(ctx, st, *network)
		if err != nil {
			return err
		}
		n := 0
		for _, a := range allocs {
			if a.ContainerID != *container || (*ifname != "" && a.IfName != *ifname) {
				continue
			}
			n++
			if a.IsHold() {
				// A hold is ended, not freed here: on an etcd network its
				// record may let another node move it at any moment, so
				// only the sync (or a plugin's next ADD or DEL) frees it,
				// through etcd (docs/design.md, "Sticky addresses").
				if err := expireHold(ctx, st, a.Key); err != nil {
					return err
				}
				fmt.Fprintf(c.out, "expired %s/%s on %s: %s (freed by the next sync, ADD or DEL on this node)\n", a.ContainerID, a.IfName, a.Network, joinAddrs(a))
				continue
			}
			if _, _, err := ipam.Release(ctx, st, a.Key); err != nil {
				return err
			}
			fmt.Fprintf(c.out, "released %s/%s on %s: %s\n", a.ContainerID, a.IfName, a.Network, joinAddrs(a))
		}
		if n == 0 {
			return fmt.Errorf("network %q: no allocation for container %q: %w", *network, *container, ipam.ErrNotFound)
		}
		return nil
	})
}

// expireHold ends the sticky hold k now.
func expireHold(ctx context.Context, st *boltstore.Store, k ipam.Key) error {
	return st.Update(ctx, func(tx ipam.Tx) error {
		h, ok, err := tx.Allocation(k)
		if err != nil || !ok || !h.IsHold() {
			return err
		}
		h.HeldUntil = time.Now().UTC()
		return tx.PutAllocation(h)
	})
}

func (c *cmd) gc(args []string) error {
	fs := c.flags("ipam gc")
	network := fs.String("network", "", "network name (required)")
	valid := fs.String("valid", "", "attachments to keep, ID:IF[,ID:IF...]")
	if fs.Parse(args) != nil || fs.NArg() != 0 || *network == "" {
		return errUsage
	}
	var keep []ipam.Attachment
	for _, v := range strings.Split(*valid, ",") {
		if v == "" {
			continue
		}
		id, ifn, ok := strings.Cut(v, ":")
		if !ok || id == "" || ifn == "" {
			return fmt.Errorf("--valid: %q is not ID:IF", v)
		}
		keep = append(keep, ipam.Attachment{ContainerID: id, IfName: ifn})
	}
	return c.withStore(func(ctx context.Context, st *boltstore.Store) error {
		released, err := ipam.GC(ctx, st, *network, keep)
		for _, a := range released {
			fmt.Fprintf(c.out, "released %s/%s on %s: %s\n", a.ContainerID, a.IfName, a.Network, joinAddrs(a))
		}
		return err
	})
}

func joinAddrs(a ipam.Allocation) string {
	s := make([]string, len(a.IPs))
	for i, ip := range a.IPs {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
