package natprobe

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v4"
)

// TURN verdicts (TURNReport.Verdict) and their exit codes.
const (
	TURNOK          = "ok"           // 0: allocated, data went through the relay and back
	TURNUnreachable = "unreachable"  // 4: no answer, connection refused, TLS failed
	TURNRefused     = "refused"      // 6: the server answered with an error
	TURNRelayFailed = "relay-failed" // 7: allocated, but data did not come back
)

// TURN check stages (TURNReport.Stage): where a failed check stopped.
const (
	StageConnect    = "connect"
	StageAllocate   = "allocate"
	StagePermission = "permission"
	StageRelay      = "relay"
)

// relayPings is how many round trips through the relay are measured.
const relayPings = 5

// TURNReport is the result of a TURN check (natprobe turn --json).
type TURNReport struct {
	Server           string  `json:"server"`
	Transport        string  `json:"transport"`
	Local            string  `json:"local,omitempty"`
	Mapped           string  `json:"mapped,omitempty"` // our address as the TURN server saw it
	Relayed          string  `json:"relayed,omitempty"`
	RelayedTransport string  `json:"relayedTransport,omitempty"`
	Username         string  `json:"username,omitempty"`
	AllocationMs     float64 `json:"allocationMs,omitempty"`
	PermissionMs     float64 `json:"permissionMs,omitempty"`
	RelayRTTMs       float64 `json:"relayRttMs,omitempty"` // median of the round trips peer -> relay -> us -> relay -> peer
	// Peer is what sent data through the relay: "udp" (a UDP socket here)
	// or, over TCP or TLS when UDP from here does not pass, "relay" (a
	// second allocation on the same server).
	Peer            string   `json:"peer,omitempty"`
	LifetimeSeconds int64    `json:"lifetimeSeconds,omitempty"`
	Verdict         string   `json:"verdict"`
	Stage           string   `json:"stage,omitempty"`
	Error           string   `json:"error,omitempty"`
	Advice          []string `json:"advice"`
	DurationMs      int64    `json:"durationMs"`
}

// TURNExitCode maps a TURN verdict to the natprobe turn exit code.
func TURNExitCode(verdict string) int {
	switch verdict {
	case TURNOK:
		return 0
	case TURNUnreachable:
		return 4
	case TURNRefused:
		return 6
	}
	return 7
}

// TURNCheck allocates a relay on a TURN server, creates a permission for
// a peer socket of its own, and sends data from that peer through the
// relay to itself and back.
type TURNCheck struct {
	Server TURNServer
	// Addr is the server's resolved address.
	Addr netip.AddrPort
	// User and Password are long-term credentials. With Secret, the check
	// makes TURN REST API credentials instead (User, when set, is their
	// user part) valid for TTL (default 1h).
	User, Password, Secret string
	// PasswordFrom and SecretFrom name where Password and Secret came
	// from (a flag, a file, an environment variable), for errors;
	// default "--password" and "--secret".
	PasswordFrom, SecretFrom string
	TTL                      time.Duration
	// CAFile holds the PEM certificates trusted for turns: (default: the
	// system's).
	CAFile string
	// Timeout bounds each stage; default 5s.
	Timeout time.Duration
	// Net opens sockets; default HostNetwork.
	Net TURNNetwork
	// Now is the clock; default time.Now.
	Now func() time.Time

	server   TURNServer
	username string
	realm    string
	roots    *x509.CertPool // from CAFile; nil: the system's
}

func (c *TURNCheck) now() time.Time { return c.Now() }

func (c *TURNCheck) defaults() error {
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.TTL <= 0 {
		c.TTL = time.Hour
	}
	if c.Net == nil {
		c.Net = HostNetwork{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.PasswordFrom == "" {
		c.PasswordFrom = "--password"
	}
	if c.SecretFrom == "" {
		c.SecretFrom = "--secret"
	}
	c.server = c.Server
	if c.CAFile != "" {
		var err error
		if c.roots, err = loadCA(c.CAFile); err != nil {
			return err
		}
	}
	switch {
	case c.Secret != "":
		var pw string
		c.username, pw = RESTCredentials(c.Secret, c.User, c.Now().Add(c.TTL))
		c.Password = pw
	case c.User == "" || c.Password == "":
		return fmt.Errorf("natprobe: turn: give --user and --password, or --secret: %w", ErrNoCredentials)
	default:
		c.username = c.User
	}
	return nil
}

// Run checks the server. An error means the check could not run (bad
// input); a server that fails is a report with its verdict.
func (c *TURNCheck) Run() (*TURNReport, error) {
	if err := c.defaults(); err != nil {
		return nil, err
	}
	start := c.Now()
	rep := &TURNReport{Server: c.Server.URI, Transport: c.Server.Transport, Username: c.username, Advice: []string{}}
	c.run(rep)
	rep.DurationMs = c.Now().Sub(start).Milliseconds()
	adviseTURN(rep)
	return rep, nil
}

func (c *TURNCheck) fail(rep *TURNReport, stage, verdict string, err error) {
	rep.Stage, rep.Verdict, rep.Error = stage, verdict, err.Error()
}

func (c *TURNCheck) run(rep *TURNReport) {
	conn, err := c.connect(c.Addr)
	if err != nil {
		c.fail(rep, StageConnect, TURNUnreachable, err)
		return
	}
	sn := &sniffer{PacketConn: conn}
	defer sn.Close()
	rep.Local = conn.LocalAddr().String()
	client, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: c.Addr.String(), TURNServerAddr: c.Addr.String(),
		Username: c.username, Password: c.Password, Conn: sn, LoggerFactory: quietLogs(),
		RTO: 100 * time.Millisecond, Software: "natprobe",
	})
	if err != nil {
		c.fail(rep, StageConnect, TURNUnreachable, fmt.Errorf("turn client: %w", err))
		return
	}
	defer client.Close()
	if err := client.Listen(); err != nil {
		c.fail(rep, StageConnect, TURNUnreachable, fmt.Errorf("turn client: %w", err))
		return
	}
	relay, ok := c.allocate(client, sn, rep)
	if !ok {
		return
	}
	defer relay.Close()
	c.relayCheck(client, relay, sn, rep)
}

// bounded runs fn, closing the client when it takes longer than the
// check's timeout (pion/turn retransmits for about 25 s).
func (c *TURNCheck) bounded(client *turn.Client, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(c.Timeout):
		client.Close()
		<-done
		return errTimeout
	}
}

// quietLogs silences pion/turn's logging: failures come back as errors.
func quietLogs() logging.LoggerFactory {
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	return lf
}

// allocate requests the relay and records its address, lifetime and
// time; on failure it says whether the server did not answer or refused.
func (c *TURNCheck) allocate(client *turn.Client, sn *sniffer, rep *TURNReport) (net.PacketConn, bool) {
	t0 := time.Now()
	var relay net.PacketConn
	err := c.bounded(client, func() (err error) { relay, err = client.Allocate(); return err })
	st := sn.state()
	c.realm = st.realm
	if err != nil {
		c.allocateFailed(rep, st, err)
		return nil, false
	}
	rep.AllocationMs = msSince(t0)
	rep.Relayed, rep.RelayedTransport = relay.LocalAddr().String(), TransportUDP
	rep.LifetimeSeconds = int64(st.lifetime / time.Second)
	if st.mapped.IsValid() {
		rep.Mapped = st.mapped.String()
	}
	return relay, true
}

func (c *TURNCheck) allocateFailed(rep *TURNReport, st sniffed, err error) {
	switch {
	case st.errCode == 401 && st.unauthorized >= 2, st.errCode != 0 && st.errCode != 401:
		c.fail(rep, StageAllocate, TURNRefused, errors.New(c.explainError(st.errMethod, st.errCode, st.errReason)))
	case st.readErr != nil && errors.Is(st.readErr, syscall.ECONNREFUSED):
		c.fail(rep, StageConnect, TURNUnreachable, fmt.Errorf("%v refused %s (ICMP port unreachable): nothing listens for %s there (coturn no-udp?): check the port or try transport=tcp or turns: : %w",
			c.Addr, c.server.Transport, c.server.Transport, st.readErr))
	case !st.answered:
		c.fail(rep, StageConnect, TURNUnreachable, fmt.Errorf("no answer from %v over %s within %v: check the address and port, that the TURN server runs, and that %s egress to it is open (or try transport=tcp, or turns: on 443)",
			c.Addr, c.server.Transport, c.Timeout, c.server.Transport))
	default:
		c.fail(rep, StageAllocate, TURNRefused, fmt.Errorf("allocate on %v: %w", c.Addr, err))
	}
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }
