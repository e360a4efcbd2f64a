package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEtcdFlags(t *testing.T) {
	t.Setenv("MEDIANET_ETCD_PASSWORD", "pw")
	tests := []struct {
		name    string
		args    []string
		wantNil bool
		wantErr string
		wantEPs []string
	}{
		{"off", nil, true, "", nil},
		{"endpoints", []string{"--etcd-endpoints", "http://a:2379, http://b:2379", "--etcd-user", "u"}, false, "", []string{"http://a:2379", "http://b:2379"}},
		{"tls without endpoints", []string{"--etcd-ca", "ca.pem"}, true, "need --etcd-endpoints", nil},
		{"zero sync interval", []string{"--etcd-endpoints", "http://a:2379", "--etcd-sync-interval", "0s"}, true, "--etcd-sync-interval", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("medianetd", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var ef etcdFlags
			ef.register(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := ef.config()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg == nil; got != tt.wantNil {
				t.Fatalf("config nil = %t, want %t", got, tt.wantNil)
			}
			if cfg == nil {
				return
			}
			if !slices.Equal(cfg.Endpoints, tt.wantEPs) {
				t.Errorf("endpoints = %q, want %q", cfg.Endpoints, tt.wantEPs)
			}
			if cfg.Username != "u" || cfg.Password != "pw" {
				t.Errorf("credentials = %q/%q, want u and the password from MEDIANET_ETCD_PASSWORD", cfg.Username, cfg.Password)
			}
			if cfg.Prefix != "/medianet" || cfg.IdleRelease != 10*time.Minute {
				t.Errorf("prefix %q idle %v, want /medianet and 10m", cfg.Prefix, cfg.IdleRelease)
			}
		})
	}
}
