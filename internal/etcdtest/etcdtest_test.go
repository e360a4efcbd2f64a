package etcdtest

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
	"time"
)

func TestRestartKeepsData(t *testing.T) {
	for _, opts := range []Options{{}, {TLS: true, Auth: true}} {
		s := Start(t, opts)
		put := func() error {
			cli, err := s.RootClient()
			if err != nil {
				return err
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = cli.Put(ctx, "/medianet/k", "v")
			return err
		}
		if err := put(); err != nil {
			t.Fatalf("%+v: put: %v", opts, err)
		}
		s.Stop()
		if s.Running() {
			t.Fatalf("%+v: running after Stop", opts)
		}
		s.Restart()
		cli, err := s.RootClient()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cli.Get(ctx, "/medianet/k")
		cancel()
		cli.Close()
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
			t.Fatalf("%+v: after restart got %v, %v; want the key", opts, resp, err)
		}
	}
}

func TestGenerateTLS(t *testing.T) {
	f, err := GenerateTLS(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	ca := x509.NewCertPool()
	caPEM, _ := os.ReadFile(f.CAFile)
	if !ca.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate")
	}
	tests := []struct {
		file  string
		usage x509.ExtKeyUsage
		host  string
	}{
		{f.ServerCert, x509.ExtKeyUsageServerAuth, "127.0.0.1"},
		{f.ClientCert, x509.ExtKeyUsageClientAuth, ""},
	}
	for _, tt := range tests {
		raw, _ := os.ReadFile(tt.file)
		blk, _ := pem.Decode(raw)
		if blk == nil {
			t.Fatalf("%s: no PEM", tt.file)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: ca, DNSName: tt.host, KeyUsages: []x509.ExtKeyUsage{tt.usage}}); err != nil {
			t.Errorf("%s: %v", tt.file, err)
		}
	}
	if _, err := f.ClientConfig(); err != nil {
		t.Errorf("client config: %v", err)
	}
}
