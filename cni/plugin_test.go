package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/medianet/medianet/internal/ipamtest"
	"github.com/medianet/medianet/ipam"
)

func conf(t *testing.T, dir, ver, ipamExtra string) []byte {
	t.Helper()
	return fmt.Appendf(nil, `{"cniVersion":%q,"name":"media","type":"medianet-ipam",
		"ipam":{"type":"medianet-ipam","subnets":["10.10.0.0/24","fd00:10::/64"],"node":"node-a","dataDir":%q%s}}`, ver, dir, ipamExtra)
}

func load(t *testing.T, p *Plugin, data []byte, cid, cniArgs string) (*skel.CmdArgs, *Config, []netip.Addr) {
	t.Helper()
	args := &skel.CmdArgs{ContainerID: cid, IfName: "eth0", Args: cniArgs, StdinData: data}
	c, ips, err := p.Load(args)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return args, c, ips
}

func TestVerbsInProcess(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var p Plugin
	for _, ver := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(ver, func(t *testing.T) {
			data := conf(t, dir, ver, "")
			args := &skel.CmdArgs{ContainerID: "c-" + ver, IfName: "eth0", StdinData: data}
			c, ips, err := p.Load(args)
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Add(ctx, args, c, ips)
			if err != nil {
				t.Fatalf("Add: %v", err)
			}
			conv, err := res.GetAsVersion(ver)
			if err != nil {
				t.Fatalf("convert to %s: %v", ver, err)
			}
			raw, _ := json.Marshal(conv)
			if !strings.Contains(string(raw), `"cniVersion":"`+ver+`"`) || !strings.Contains(string(raw), `/24","gateway":"10.10.0.1"`) || !strings.Contains(string(raw), `/64","gateway":"fd00:10::1"`) {
				t.Errorf("result %s lacks version, addresses or gateways", raw)
			}
			// CHECK with the converted result as prevResult.
			var withPrev map[string]any
			json.Unmarshal(data, &withPrev)
			var prev map[string]any
			json.Unmarshal(raw, &prev)
			withPrev["prevResult"] = prev
			checkData, _ := json.Marshal(withPrev)
			cargs := &skel.CmdArgs{ContainerID: args.ContainerID, IfName: "eth0", StdinData: checkData}
			cc, _, err := p.Load(cargs)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Check(ctx, cargs, cc); err != nil {
				t.Errorf("Check: %v", err)
			}
			if err := p.Del(ctx, args, c); err != nil {
				t.Errorf("Del: %v", err)
			}
			if err := p.Del(ctx, args, c); err != nil {
				t.Errorf("second Del: %v", err)
			}
			if err := p.Check(ctx, args, c); !errors.Is(err, ipam.ErrNotFound) {
				t.Errorf("Check after Del = %v, want ErrNotFound", err)
			}
		})
	}
	ipamtest.CheckDir(t, dir)
}

func TestRequestedAndGC(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var p Plugin
	data := conf(t, dir, "1.1.0", "")
	args, c, _ := load(t, &p, data, "keep", "")
	args.Args = "IP=10.10.0.77"
	_, ips, err := p.Load(args)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Add(ctx, args, c, ips)
	if err != nil || res.IPs[0].Address.IP.String() != "10.10.0.77" {
		t.Fatalf("Add with IP=10.10.0.77 = %v, %v", res, err)
	}
	other := &skel.CmdArgs{ContainerID: "other", IfName: "eth0", StdinData: data}
	_, err = p.Add(ctx, other, c, ips)
	if ce := Error(err); ce == nil || ce.Code != 7 || !strings.Contains(ce.Msg, "held by keep/eth0") {
		t.Fatalf("Add of a taken address: %v, want code 7 naming the holder", ce)
	}
	if _, err := p.Add(ctx, other, c, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.GC(ctx, c, []types.GCAttachment{{ContainerID: "keep", IfName: "eth0"}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Check(ctx, other, c); !errors.Is(err, ipam.ErrNotFound) {
		t.Errorf("after GC, other still allocated: %v", err)
	}
	if err := p.Check(ctx, args, c); err != nil {
		t.Errorf("after GC, keep lost: %v", err)
	}
	if err := p.Status(ctx, c); err != nil {
		t.Errorf("Status: %v", err)
	}
	ipamtest.CheckDir(t, dir)
}

// TestStoreDir: DEL and GC with a missing dataDir succeed without creating
// it (nothing to release); ADD creates it with mode 0700, as host-local
// and every other CNI IPAM do (a kubelet node does not make it); a dataDir
// that cannot be a directory is code 7 naming ipam.dataDir and the path.
func TestStoreDir(t *testing.T) {
	ctx := context.Background()
	var p Plugin
	missing := filepath.Join(t.TempDir(), "var", "lib", "medianet")
	args, c, _ := load(t, &p, conf(t, missing, "1.1.0", ""), "c1", "")
	if err := p.Del(ctx, args, c); err != nil {
		t.Errorf("Del with missing dataDir = %v, want nil (nothing to release)", err)
	}
	if err := p.GC(ctx, c, []types.GCAttachment{}); err != nil {
		t.Errorf("GC with missing dataDir = %v, want nil", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("DEL/GC created the missing dataDir: %v", err)
	}
	if _, err := p.Add(ctx, args, c, nil); err != nil {
		t.Fatalf("Add with missing dataDir = %v, want it created", err)
	}
	if fi, err := os.Stat(missing); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dataDir after Add: %v, %v; want mode 0700", fi.Mode(), err)
	}
	file := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	args, c, _ = load(t, &p, conf(t, file, "1.1.0", ""), "c2", "")
	_, err := p.Add(ctx, args, c, nil)
	if ce := Error(err); ce == nil || ce.Code != 7 || !strings.Contains(ce.Msg, "ipam.dataDir") || !strings.Contains(ce.Msg, file) {
		t.Errorf("Add with a file as dataDir: %v, want code 7 naming ipam.dataDir and the path", ce)
	}
}

// TestGCNeedsValidAttachments: a GC without cni.dev/valid-attachments is a
// configuration error (7) and releases nothing; an empty list releases all.
func TestGCNeedsValidAttachments(t *testing.T) {
	ctx := context.Background()
	var p Plugin
	dir := t.TempDir()
	args, c, _ := load(t, &p, conf(t, dir, "1.1.0", ""), "c1", "")
	if _, err := p.Add(ctx, args, c, nil); err != nil {
		t.Fatal(err)
	}
	err := p.GC(ctx, c, nil)
	if ce := Error(err); ce == nil || ce.Code != 7 || !strings.Contains(ce.Msg, "cni.dev/valid-attachments") {
		t.Fatalf("GC without valid-attachments: %v, want code 7 naming cni.dev/valid-attachments", ce)
	}
	if err := p.Check(ctx, args, c); err != nil {
		t.Fatalf("after a refused GC, the allocation is gone: %v", err)
	}
	if err := p.GC(ctx, c, []types.GCAttachment{}); err != nil {
		t.Fatal(err)
	}
	if err := p.Check(ctx, args, c); !errors.Is(err, ipam.ErrNotFound) {
		t.Errorf("after GC with an empty list: %v, want the allocation released", err)
	}
}

func TestStatusExhausted(t *testing.T) {
	ctx := context.Background()
	var p Plugin
	dir := t.TempDir()
	data := fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":"tiny","ipam":{"subnet":"10.11.0.0/30","dataDir":%q}}`, dir)
	args, c, _ := load(t, &p, data, "c1", "")
	if _, err := p.Add(ctx, args, c, nil); err != nil {
		t.Fatal(err)
	}
	err := p.Status(ctx, c)
	if ce := StatusError(err); ce == nil || ce.Code != 50 {
		t.Errorf("Status of a full network: %v, want code 50", ce)
	}
	_, err = p.Add(ctx, &skel.CmdArgs{ContainerID: "c2", IfName: "eth0", StdinData: data}, c, nil)
	if ce := Error(err); ce == nil || ce.Code != CodeExhausted || !strings.Contains(ce.Msg, `network "tiny"`) {
		t.Errorf("Add to a full network: %v, want code %d naming the network", ce, CodeExhausted)
	}
}

func TestErrorCodes(t *testing.T) {
	tests := []struct {
		err  error
		code uint
	}{
		{fmt.Errorf("x: %w", ipam.ErrConfig), 7},
		{fmt.Errorf("x: %w", ipam.ErrOverlap), 7},
		{fmt.Errorf("x: %w", ipam.ErrOutOfRange), 7},
		{fmt.Errorf("x: %w", ipam.ErrBusy), 11},
		{context.DeadlineExceeded, 11},
		{fmt.Errorf("x: %w", ipam.ErrExhausted), CodeExhausted},
		{fmt.Errorf("x: %w", ipam.ErrCorrupt), 999},
		{types.NewError(4, "env", ""), 4},
	}
	for _, tt := range tests {
		if got := Error(tt.err).Code; got != tt.code {
			t.Errorf("Error(%v).Code = %d, want %d", tt.err, got, tt.code)
		}
	}
	if Error(nil) != nil {
		t.Errorf("Error(nil) != nil")
	}
}
