package dockerplugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/medianet/medianet/dhcp/dhcpapi"
)

// StateFile is the driver's own bbolt file in the data directory, apart
// from the IPAM store (ipam.db), which holds the addresses.
const StateFile = "docker.db"

// stateVersion is the schema of StateFile, kept under meta/schema.
const stateVersion = "1"

var (
	bucketMeta      = []byte("meta")
	bucketNetworks  = []byte("networks")
	bucketEndpoints = []byte("endpoints")
	bucketPools     = []byte("pools")
	// bucketEtcdNets holds, by ipam network name, a copy of every pool
	// whose blocks are claimed in etcd, kept after the pool is released
	// until its blocks are given back (Driver.SyncEtcd).
	bucketEtcdNets = []byte("etcdnets")
)

// network is a created Docker network.
type network struct {
	ID          string     `json:"id"`
	Options     netOptions `json:"options"`
	CreatedVLAN bool       `json:"createdVlan,omitempty"`
	Gateway     netip.Addr `json:"gateway,omitzero"`
	Gateway6    netip.Addr `json:"gateway6,omitzero"`
	// Created is when CreateNetwork first recorded it; Reconcile leaves a
	// young network alone, which Docker may not list yet.
	Created time.Time `json:"created,omitzero"`
}

// endpoint is a created endpoint; its link's temporary name is
// linkName(ID).
type endpoint struct {
	ID        string       `json:"id"`
	NetworkID string       `json:"networkId"`
	Addr      netip.Prefix `json:"addr,omitzero"`
	Addr6     netip.Prefix `json:"addr6,omitzero"`
	MAC       string       `json:"mac"`
	// Lease names the endpoint's DHCP lease in medianetd's lease keeper
	// (a DHCP pool's endpoint, dhcp.go); the lease record owns the
	// address, its server and times.
	Lease *dhcpapi.Key `json:"lease,omitempty"`
	// Created is when CreateEndpoint recorded it; Reconcile leaves a
	// young endpoint alone, which Docker may not list yet.
	Created time.Time `json:"created,omitzero"`
}

// pool is an IPAM pool (one address family of one network).
type pool struct {
	ID      string       `json:"id"`
	Space   string       `json:"space"`
	Prefix  netip.Prefix `json:"prefix"`
	Range   netip.Prefix `json:"range,omitzero"` // --ip-range
	Options poolOptions  `json:"options"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
	Refs    int          `json:"refs"`
	// Net is the ipam network name when it is not ID: "docker-<subnet>"
	// for a pool whose blocks are claimed in etcd, the same on every host.
	Net string `json:"net,omitempty"`
	// Etcd: the pool's blocks are claimed in etcd (--etcd-endpoints).
	Etcd bool `json:"etcd,omitempty"`
	// Networks are the Docker networks using the pool, bound by
	// CreateNetwork (local space) or AllocateNetwork (global space); a
	// pool whose networks Docker no longer lists is stale (reconcile.go).
	Networks []string `json:"networks,omitempty"`
	// Requested is the time of the last RequestPool for the pool.
	Requested time.Time `json:"requested,omitzero"`
	// Allocated is the time of the last AllocateNetwork of the Swarm
	// network owning a global pool: by this leader's allocator when it is
	// not before notLeader (watch.go).
	Allocated time.Time `json:"allocated,omitzero"`
	// Aux are the --aux-address values of the Swarm network owning a
	// global pool (AllocateNetwork). swarmkit asks for them again each
	// time it allocates the network, so they are answered when held; any
	// other address it asks for must be free.
	Aux []netip.Addr `json:"aux,omitempty"`
}

// ipamNet is the name of the pool's network in the IPAM store.
func (p pool) ipamNet() string {
	if p.Net != "" {
		return p.Net
	}
	return p.ID
}

// state is the driver's persisted state: networks, endpoints and pools,
// one bbolt Update per Docker call.
type state struct {
	db *bolt.DB
}

// openState opens (creating) StateFile in dir. A second medianetd on the
// same directory fails after a second rather than waiting forever.
func openState(dir string) (*state, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dockerplugin: data dir %q: %w", dir, err)
	}
	path := filepath.Join(dir, StateFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("dockerplugin: %s is locked by another medianetd: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("dockerplugin: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketNetworks, bucketEndpoints, bucketPools, bucketEtcdNets} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get([]byte("schema")); {
		case v == nil:
			return meta.Put([]byte("schema"), []byte(stateVersion))
		case string(v) != stateVersion:
			return fmt.Errorf("schema version %q, want %q", v, stateVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("dockerplugin: init %s: %w", path, err)
	}
	return &state{db: db}, nil
}

func (s *state) close() error { return s.db.Close() }

// get reads key of bucket into v and reports whether it was there.
func get(tx *bolt.Tx, bucket []byte, key string, v any) (bool, error) {
	raw := tx.Bucket(bucket).Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("dockerplugin: decode %s/%s: %w", bucket, key, err)
	}
	return true, nil
}

func put(tx *bolt.Tx, bucket []byte, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put([]byte(key), raw)
}

func del(tx *bolt.Tx, bucket []byte, key string) error {
	return tx.Bucket(bucket).Delete([]byte(key))
}

// each calls fn for every record of bucket, decoded into a fresh T.
func each[T any](tx *bolt.Tx, bucket []byte, fn func(T) error) error {
	return tx.Bucket(bucket).ForEach(func(k, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("dockerplugin: decode %s/%s: %w", bucket, k, err)
		}
		return fn(v)
	})
}
