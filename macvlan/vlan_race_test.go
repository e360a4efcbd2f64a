package macvlan

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fakeLinks is a host namespace at the netlink seam of ensureVLAN, for
// kernels without 802.1q (this one): links by name, and a hook standing
// for another process acting between ensureVLAN's lookup and its create.
// It has no delete: vlanLinks gives ensureVLAN none, so it cannot remove
// a link another process made.
type fakeLinks struct {
	mu     sync.Mutex
	links  map[string]netlink.Link
	adds   int                                      // LinkAdd calls
	ups    []string                                 // LinkSetUp calls
	before func(f *fakeLinks, l netlink.Link) error // runs in LinkAdd first; non-nil error returned
}

func newFakeLinks() *fakeLinks {
	m := &netlink.Device{LinkAttrs: netlink.NewLinkAttrs()}
	m.Name, m.Index = "mv0", 2
	return &fakeLinks{links: map[string]netlink.Link{"mv0": m}}
}

func (f *fakeLinks) LinkByName(name string) (netlink.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.links[name]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("link %q: %w", name, unix.ENODEV)
}

func (f *fakeLinks) LinkAdd(l netlink.Link) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.adds++
	if f.before != nil {
		if err := f.before(f, l); err != nil {
			return err
		}
	}
	if _, ok := f.links[l.Attrs().Name]; ok {
		return unix.EEXIST
	}
	l.Attrs().Index = 100 + len(f.links)
	f.links[l.Attrs().Name] = l
	return nil
}

func (f *fakeLinks) LinkSetUp(l netlink.Link) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ups = append(f.ups, l.Attrs().Name)
	l.Attrs().Flags |= net.FlagUp
	return nil
}

// vlanLink is an 802.1q link named name with id on parent, as another
// process would have made it (down).
func vlanLink(name string, id, parent int) netlink.Link {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.ParentIndex, attrs.Index = name, parent, 50
	return &netlink.Vlan{LinkAttrs: attrs, VlanId: id}
}

// otherProcess makes ensureVLAN's create lose the race: link appears just
// before it, as when another ADD created it after this one's lookup.
func otherProcess(link netlink.Link) func(*fakeLinks, netlink.Link) error {
	return func(f *fakeLinks, _ netlink.Link) error {
		if _, ok := f.links[link.Attrs().Name]; !ok {
			f.links[link.Attrs().Name] = link
		}
		return nil
	}
}

func TestEnsureVLANSeam(t *testing.T) {
	for _, tc := range []struct {
		name        string
		existing    netlink.Link
		before      func(*fakeLinks, netlink.Link) error
		master      string
		wantCreated bool
		wantErr     error  // errors.Is target; nil for success
		wantMsg     string // in the error message
		wantUp      bool   // ensureVLAN had to set the link up
		wantAdds    int
	}{
		{name: "missing: created up in one request", wantCreated: true, wantAdds: 1},
		{name: "present and down: adopted and set up", existing: vlanLink("mv0.100", 100, 2), wantUp: true},
		{name: "created by another process meanwhile (EEXIST): adopted",
			before: otherProcess(vlanLink("mv0.100", 100, 2)), wantUp: true, wantAdds: 1},
		{name: "another process made a different vlan under the name",
			before: otherProcess(vlanLink("mv0.100", 200, 2)), wantErr: ErrNotVLAN, wantAdds: 1},
		{name: "another process made it on another master",
			before: otherProcess(vlanLink("mv0.100", 100, 7)), wantErr: ErrNotVLAN, wantAdds: 1},
		{name: "another process made a macvlan under the name",
			before:  otherProcess(&netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "mv0.100", ParentIndex: 2}}),
			wantErr: ErrNotVLAN, wantAdds: 1},
		{name: "vlan 100 exists on mv0 under another name",
			before:  func(*fakeLinks, netlink.Link) error { return unix.EEXIST },
			wantErr: unix.EEXIST, wantMsg: "not under this name", wantAdds: vlanAttempts},
		{name: "kernel without 802.1q",
			before:  func(*fakeLinks, netlink.Link) error { return unix.EOPNOTSUPP },
			wantErr: unix.EOPNOTSUPP, wantMsg: "module 8021q", wantAdds: 1},
		{name: "master missing", master: "nosuch0", wantErr: ErrMasterNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLinks()
			f.before = tc.before
			if tc.existing != nil {
				f.links[tc.existing.Attrs().Name] = tc.existing
			}
			master := "mv0"
			if tc.master != "" {
				master = tc.master
			}
			created, err := ensureVLAN(f, master, 100)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) || !strings.Contains(fmt.Sprint(err), tc.wantMsg) {
				t.Fatalf("ensureVLAN error = %v, want %v containing %q", err, tc.wantErr, tc.wantMsg)
			}
			if created != tc.wantCreated {
				t.Errorf("created = %v, want %v", created, tc.wantCreated)
			}
			if f.adds != tc.wantAdds {
				t.Errorf("LinkAdd calls = %d, want %d", f.adds, tc.wantAdds)
			}
			if got := len(f.ups) > 0; got != tc.wantUp {
				t.Errorf("LinkSetUp calls = %v, want some: %v", f.ups, tc.wantUp)
			}
			if err != nil {
				return
			}
			v, ok := f.links["mv0.100"].(*netlink.Vlan)
			if !ok || v.VlanId != 100 || v.ParentIndex != 2 || v.Flags&net.FlagUp == 0 {
				t.Errorf("mv0.100 = %+v, want vlan 100 on index 2, up", f.links["mv0.100"])
			}
		})
	}
}

// TestEnsureVLANConcurrentFirstADDs: many first ADDs of a VLAN network at
// once all succeed, and exactly one of them reports it created the link.
func TestEnsureVLANConcurrentFirstADDs(t *testing.T) {
	f := newFakeLinks()
	// Every create waits until all callers have looked the link up, so
	// all but one lose the race with EEXIST.
	const n = 8
	var looked sync.WaitGroup
	looked.Add(n)
	release := make(chan struct{})
	go func() { looked.Wait(); close(release) }()
	var created, failed int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			c, err := ensureVLAN(&barrierLinks{fakeLinks: f, looked: &looked, release: release}, "mv0", 100)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("ensureVLAN: %v", err)
				failed++
			}
			if c {
				created++
			}
		})
	}
	wg.Wait()
	if created != 1 || failed != 0 {
		t.Errorf("%d callers created the link and %d failed, want 1 and 0", created, failed)
	}
	if f.adds != n {
		t.Errorf("LinkAdd calls = %d, want %d (each caller raced to create)", f.adds, n)
	}
}

// barrierLinks is one caller's view of a shared fakeLinks: its LinkAdd
// waits until every caller has done its first lookup of the VLAN link, so
// they all race on the create.
type barrierLinks struct {
	*fakeLinks
	looked  *sync.WaitGroup
	release chan struct{}
	counted bool
}

func (b *barrierLinks) LinkAdd(l netlink.Link) error {
	<-b.release
	return b.fakeLinks.LinkAdd(l)
}

func (b *barrierLinks) LinkByName(name string) (netlink.Link, error) {
	l, err := b.fakeLinks.LinkByName(name)
	if name == "mv0.100" && !b.counted {
		b.counted = true
		b.looked.Done()
	}
	return l, err
}
