package etcdstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Defaults for Config.
const (
	DefaultPrefix         = "/medianet"
	DefaultRequestTimeout = 2 * time.Second
	DefaultDialTimeout    = 2 * time.Second
	DefaultIdleRelease    = 10 * time.Minute
)

// Config says how to reach etcd. Only Endpoints is required.
type Config struct {
	// Endpoints are client URLs, http:// or https://.
	Endpoints []string
	// Prefix is the key prefix (default "/medianet").
	Prefix string
	// CAFile, CertFile, KeyFile: PEM files for TLS. CAFile alone verifies
	// the server; CertFile and KeyFile (both or neither) add a client
	// certificate.
	CAFile, CertFile, KeyFile string
	// Username and Password for etcd authentication (both or neither).
	Username, Password string
	// DialTimeout bounds establishing the connection and, with
	// authentication, fetching the token (default 2 s; never more than
	// RequestTimeout).
	DialTimeout time.Duration
	// RequestTimeout bounds one whole operation, such as a claim with all
	// its retries (default 2 s).
	RequestTimeout time.Duration
	// IdleRelease is how long a block stays empty before ReleaseIdle gives
	// it back (default 10 min; negative: never).
	IdleRelease time.Duration
	// Now, when set, is the clock of the times written to etcd that a
	// later decision reads (a claim's EmptySince); nil means time.Now.
	// The deterministic simulator (internal/sim) sets its fake clock.
	Now func() time.Time
	// Hook, when set, is called at the start of every etcd request (txn
	// and get) with the request's context and description; an error it
	// returns is that request's error (as etcd unreachable). For the
	// deterministic simulator (internal/sim): a yield point per request.
	Hook func(ctx context.Context, op string) error
}

// withDefaults returns c with defaults filled in, or an error naming the
// invalid field.
func (c Config) withDefaults() (Config, error) {
	if len(c.Endpoints) == 0 {
		return c, fmt.Errorf("etcd endpoints: at least one URL is required, e.g. http://127.0.0.1:2379: %w", ErrConfig)
	}
	for _, e := range c.Endpoints {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("etcd endpoint %q: want a URL like http://127.0.0.1:2379 or https://host:2379: %w", e, ErrConfig)
		}
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasPrefix(c.Prefix, "/") {
		return c, fmt.Errorf("etcd prefix %q: must start with /: %w", c.Prefix, ErrConfig)
	}
	c.Prefix = strings.TrimRight(c.Prefix, "/")
	if (c.CertFile == "") != (c.KeyFile == "") {
		return c, fmt.Errorf("etcd certFile and keyFile: give both or neither: %w", ErrConfig)
	}
	if (c.Username == "") != (c.Password == "") {
		return c, fmt.Errorf("etcd username and password: give both or neither: %w", ErrConfig)
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	c.DialTimeout = min(c.DialTimeout, c.RequestTimeout)
	if c.IdleRelease == 0 {
		c.IdleRelease = DefaultIdleRelease
	}
	return c, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("etcd caFile: %w: %w", err, ErrConfig)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd caFile %s: no PEM certificate found: %w", c.CAFile, ErrConfig)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd certFile %s / keyFile %s: %w: %w", c.CertFile, c.KeyFile, err, ErrConfig)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// Client is a connection to etcd, made on first use. It is safe for
// concurrent use.
type Client struct {
	cfg Config

	mu  sync.Mutex // guards cli
	cli *clientv3.Client

	writes   atomic.Uint64 // successful etcd writes (puts and deletes)
	requests atomic.Uint64 // etcd round trips attempted
	failed   atomic.Uint64 // etcd round trips that failed (unreachable, refused)
}

// New checks cfg and that its TLS files exist; it neither parses them
// nor contacts etcd (both happen on first use, so an ADD served from held
// blocks pays for neither).
func New(cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, f := range []struct{ field, path string }{{"caFile", cfg.CAFile}, {"certFile", cfg.CertFile}, {"keyFile", cfg.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("etcd %s: %w: %w", f.field, err, ErrConfig)
		}
	}
	return &Client{cfg: cfg}, nil
}

// Config returns the configuration with defaults filled in.
func (c *Client) Config() Config { return c.cfg }

// Writes returns the number of etcd writes this client made (claims,
// config records, releases, marks), for benchmarks.
func (c *Client) Writes() uint64 { return c.writes.Load() }

// Requests returns the number of etcd round trips this client attempted.
func (c *Client) Requests() uint64 { return c.requests.Load() }

// Failed returns the number of etcd round trips that failed.
func (c *Client) Failed() uint64 { return c.failed.Load() }

// now is the client's clock (Config.Now).
func (c *Client) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

// hook runs Config.Hook, if set, before a request.
func (c *Client) hook(ctx context.Context, op string) error {
	if c.cfg.Hook == nil {
		return nil
	}
	if err := c.cfg.Hook(ctx, op); err != nil {
		c.failed.Add(1)
		return c.wrap(op, err)
	}
	return nil
}

// Close closes the connection, if one was made.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cli == nil {
		return nil
	}
	err := c.cli.Close()
	c.cli = nil
	return err
}

// conn returns the etcd client, dialling on first use.
func (c *Client) conn(ctx context.Context) (*clientv3.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cli != nil {
		return c.cli, nil
	}
	dial := c.cfg.DialTimeout
	if dl, ok := ctx.Deadline(); ok {
		dial = min(dial, time.Until(dl))
	}
	if dial <= 0 {
		return nil, c.wrap("connect", context.DeadlineExceeded)
	}
	tc, err := c.cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.cfg.Endpoints,
		DialTimeout: dial,
		TLS:         tc,
		Username:    c.cfg.Username,
		Password:    c.cfg.Password,
		Logger:      zap.NewNop(), // CNI plugins own stdout; keep stderr quiet too
		Context:     context.Background(),
		// gRPC's reconnect backoff grows to 2 minutes by default; a
		// long-lived client (medianetd) should see etcd again within a
		// second or so of its return.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		return nil, c.wrap("connect", err)
	}
	c.cli = cli
	return cli, nil
}

// wrap turns an etcd error into ErrAuth or ErrUnavailable, naming the
// endpoints and what was being done.
func (c *Client) wrap(op string, err error) error {
	eps := strings.Join(c.cfg.Endpoints, ",")
	if isAuth(err) {
		return fmt.Errorf("etcd at %s: %s as user %q: %w: %v", eps, op, c.cfg.Username, ErrAuth, err)
	}
	return fmt.Errorf("etcd at %s: %s: %w: %v", eps, op, ErrUnavailable, err)
}

func isAuth(err error) bool {
	for _, e := range []error{rpctypes.ErrAuthFailed, rpctypes.ErrPermissionDenied,
		rpctypes.ErrUserEmpty, rpctypes.ErrInvalidAuthToken, rpctypes.ErrUserNotFound,
		rpctypes.ErrInvalidAuthMgmt, rpctypes.ErrAuthOldRevision} {
		if errors.Is(err, e) || rpctypes.Error(err) == e {
			return true
		}
	}
	return false
}

// txn runs one transaction, counting it and, when it wrote, its write.
// Without a deadline of the caller's, it is bounded by RequestTimeout.
func (c *Client) txn(ctx context.Context, op string, cmps []clientv3.Cmp, then, els []clientv3.Op) (*clientv3.TxnResponse, error) {
	if err := c.hook(ctx, op); err != nil {
		return nil, err
	}
	ctx, cancel := c.boundOne(ctx)
	defer cancel()
	cli, err := c.conn(ctx)
	if err != nil {
		c.failed.Add(1)
		return nil, err
	}
	c.requests.Add(1)
	resp, err := cli.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
	if err != nil {
		c.failed.Add(1)
		return nil, c.wrap(op, err)
	}
	ops := els
	if resp.Succeeded {
		ops = then
	}
	for _, o := range ops {
		if o.IsPut() || o.IsDelete() {
			c.writes.Add(1)
		}
	}
	return resp, nil
}

// get runs one range read, bounded as txn is.
func (c *Client) get(ctx context.Context, op, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if err := c.hook(ctx, op); err != nil {
		return nil, err
	}
	ctx, cancel := c.boundOne(ctx)
	defer cancel()
	cli, err := c.conn(ctx)
	if err != nil {
		c.failed.Add(1)
		return nil, err
	}
	c.requests.Add(1)
	resp, err := cli.Get(ctx, key, opts...)
	if err != nil {
		c.failed.Add(1)
		return nil, c.wrap(op, err)
	}
	return resp, nil
}

// bound returns ctx limited by RequestTimeout.
func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.RequestTimeout)
}

// boundOne bounds one round trip by RequestTimeout unless the caller set
// a deadline (a whole claim is bounded as one).
func (c *Client) boundOne(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return c.bound(ctx)
}

// RawGet returns the value of key ("" when absent), for tools and tests
// that inspect what medianet wrote.
func (c *Client) RawGet(ctx context.Context, key string) (string, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	resp, err := c.get(ctx, "read "+key, key)
	if err != nil || len(resp.Kvs) == 0 {
		return "", err
	}
	return string(resp.Kvs[0].Value), nil
}
