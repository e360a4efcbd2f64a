package cni

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/medianet/medianet/doctor"
)

// TestDoctorStatus: STATUS follows the node agent's doctor record of the
// network's link; the kernel side (the agent writing it, the plugin
// binary answering STATUS) is tested in test/doctor.
func TestDoctorStatus(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name    string
		vlan    int
		link    string // the record's link; "" for none
		verdict doctor.Verdict
		until   time.Duration
		wantErr bool
	}{
		{"no record", 0, "", "", 0, false},
		{"dropped", 0, "eth1", doctor.Dropped, time.Minute, true},
		{"dropped on the vlan", 7, "eth1.7", doctor.Dropped, time.Minute, true},
		{"another link's record", 7, "eth1", doctor.Dropped, time.Minute, false},
		{"expired", 0, "eth1", doctor.Dropped, -time.Minute, false},
		{"pass", 0, "eth1", doctor.Pass, time.Minute, false},
		{"no carrier", 0, "eth1", doctor.NoCarrier, time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"media","type":"medianet","master":"eth1","vlan":%d,
				"ipam":{"type":"medianet-ipam","subnet":"10.0.0.0/24","gateway":"10.0.0.254","dataDir":%q}}`, tc.vlan, dir)
			if tc.vlan == 0 {
				conf = strings.Replace(conf, `"vlan":0,`, "", 1)
			}
			c, err := ParseMainConfig([]byte(conf))
			if err != nil {
				t.Fatal(err)
			}
			if tc.link != "" {
				rec := doctor.Record{Report: doctor.Report{Parent: "eth1", Link: tc.link, Verdict: tc.verdict, Reason: "targets answer the parent only"},
					Checked: now, ValidUntil: now.Add(tc.until)}
				if err := doctor.WriteRecord(dir, rec); err != nil {
					t.Fatal(err)
				}
			}
			err = doctorStatus(c, "eth1", now)
			if (err != nil) != tc.wantErr {
				t.Fatalf("doctorStatus = %v, want error %v", err, tc.wantErr)
			}
			if err == nil {
				return
			}
			e := MainStatusError(err)
			if e.Code != types.ErrPluginNotAvailable || !strings.Contains(e.Msg, string(tc.verdict)) || !strings.Contains(e.Msg, `network "media"`) {
				t.Errorf("MainStatusError = %d %q; want 50 naming the network and the verdict", e.Code, e.Msg)
			}
			if !errors.Is(err, doctor.ErrNotCarrying) {
				t.Errorf("%v does not wrap ErrNotCarrying", err)
			}
		})
	}
}

func TestDoctorCheck(t *testing.T) {
	c, err := ParseMainConfig([]byte(`{"cniVersion":"1.1.0","name":"media","type":"medianet","master":"eth1","vlan":7,
		"ipam":{"type":"medianet-ipam","subnets":[{"subnet":"10.0.0.0/24","gateway":"10.0.0.254"},{"subnet":"fd00::/64","gateway":"fd00::fe"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.DoctorCheck()
	if err != nil || d.Link() != "eth1.7" || d.DataDir != DefaultDataDir || len(d.Gateways) != 2 {
		t.Fatalf("DoctorCheck = %+v (link %s), %v; want eth1.7, the default data dir, two gateways", d, d.Link(), err)
	}
}

// BenchmarkDoctorStatus measures what the doctor adds to STATUS: one
// config lookup and one small file read.
func BenchmarkDoctorStatus(b *testing.B) {
	dir := b.TempDir()
	c, err := ParseMainConfig([]byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"media","type":"medianet","master":"eth1",
		"ipam":{"type":"medianet-ipam","subnet":"10.0.0.0/24","dataDir":%q}}`, dir)))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	rec := doctor.Record{Report: doctor.Report{Parent: "eth1", Link: "eth1", Verdict: doctor.Pass}, Checked: now, ValidUntil: now.Add(time.Hour)}
	if err := doctor.WriteRecord(dir, rec); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := doctorStatus(c, "eth1", now); err != nil {
			b.Fatal(err)
		}
	}
}
