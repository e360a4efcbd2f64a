package etcdtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestStartInNSBlackhole(t *testing.T) {
	s := etcdtest.StartInNS(t, etcdtest.Options{})
	cli, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	get := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := cli.Get(ctx, "k")
		return err
	}
	if err := get(); err != nil {
		t.Fatalf("Get before the blackhole: %v", err)
	}
	if err := s.Blackhole(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := get(); err == nil {
		t.Fatal("Get through the blackhole succeeded")
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("Get through the blackhole failed after %v: refused, not dropped", d)
	}
	if !s.Running() {
		t.Error("etcd stopped: a blackhole must leave it running")
	}
	if err := s.Heal(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for get() != nil {
		if time.Now().After(deadline) {
			t.Fatal("Get after Heal still failing")
		}
	}
}
