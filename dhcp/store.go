package dhcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/medianet/medianet/dhcp/dhcpapi"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the lease database inside the data directory.
const FileName = "dhcp.db"

// Buckets and the schema version.
var (
	bucketLeases   = []byte("leases")
	bucketPrevious = []byte("previous") // client identifier -> last address (and 1 once released), for INIT-REBOOT or option 50
	bucketMeta     = []byte("meta")
	keyVersion     = []byte("version")
)

const schemaVersion = "1"

// ErrBusy: another process holds dhcp.db longer than the timeout.
var ErrBusy = errors.New("dhcp: lease database busy")

// Store is dhcp.db, opened for one transaction at a time so that
// medianetctl can read it while the agent runs.
type Store struct {
	path    string
	timeout time.Duration
}

// NewStore returns the store of dataDir (created 0700 when missing).
func NewStore(dataDir string) (*Store, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("dhcp: data directory %q: %w", dataDir, err)
	}
	return &Store{path: filepath.Join(dataDir, FileName), timeout: 10 * time.Second}, nil
}

func (s *Store) open(readOnly bool) (*bolt.DB, error) {
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.timeout, ReadOnly: readOnly})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", s.path, ErrBusy)
	}
	if err != nil {
		return nil, fmt.Errorf("dhcp: open %s: %w", s.path, err)
	}
	return db, nil
}

func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	db, err := s.open(false)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketLeases, bucketPrevious, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketMeta).Put(keyVersion, []byte(schemaVersion)); err != nil {
			return err
		}
		return fn(tx)
	})
}

func recordKey(k dhcpapi.Key) []byte {
	return []byte(k.Network + "\x00" + k.ContainerID + "\x00" + k.IfName)
}

// Put writes r, and remembers its address for its client identifier.
func (s *Store) Put(r *Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("dhcp: encode lease: %w", err)
	}
	l, err := r.lease()
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketLeases).Put(recordKey(r.Key), b); err != nil {
			return err
		}
		return tx.Bucket(bucketPrevious).Put(r.ClientID, l.ACK.YourIPAddr.To4())
	})
}

// Delete forgets the lease of k.
func (s *Store) Delete(k dhcpapi.Key) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketLeases).Delete(recordKey(k)) })
}

// Previous returns the last address leased to clientID on this node, if
// any, and whether it was released (RELEASE sent) since.
func (s *Store) Previous(clientID []byte) (addr netip.Addr, released bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketPrevious); b != nil {
			v := b.Get(clientID)
			if len(v) >= 4 {
				addr, released = netip.AddrFrom4([4]byte(v[:4])), len(v) == 5 && v[4] == 1
			}
		}
		return nil
	})
	return addr, released, err
}

// Released records that clientID's last address was given back
// (RELEASE sent): the server may have forgotten it.
func (s *Store) Released(clientID []byte) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPrevious)
		v := b.Get(clientID)
		if len(v) < 4 {
			return nil
		}
		return b.Put(clientID, append(append([]byte(nil), v[:4]...), 1))
	})
}

// List returns every record.
func (s *Store) List() ([]*Record, error) {
	var out []*Record
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLeases)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("dhcp: lease %q: %w", k, err)
			}
			out = append(out, &r)
			return nil
		})
	})
	return out, err
}

// view runs fn in a read transaction; a database not yet created is empty.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	if _, err := os.Stat(s.path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := s.open(true)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(fn)
}

// ReadLeases lists the leases of dataDir's dhcp.db as the API shows them
// (medianetctl), without an agent.
func ReadLeases(dataDir string) ([]dhcpapi.Lease, error) {
	s := &Store{path: filepath.Join(dataDir, FileName), timeout: 10 * time.Second}
	rs, err := s.List()
	if err != nil {
		return nil, err
	}
	var out []dhcpapi.Lease
	for _, r := range rs {
		v, err := r.view()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
