package natprobe

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// TURN transports (TURNReport.Transport).
const (
	TransportUDP = "udp"
	TransportTCP = "tcp"
	TransportTLS = "tls"
)

// TURNServer is a parsed --server URI.
type TURNServer struct {
	URI       string
	Host      string
	Port      uint16
	Transport string // udp, tcp or tls
}

// ParseTURNURI reads turn:HOST[:PORT][?transport=udp|tcp] or
// turns:HOST[:PORT] (RFC 7065; ports default to 3478 and 5349). It parses
// the URI itself: pion/stun's ParseURI recurses without end on some
// inputs (found by FuzzParseTURNURI, "turn:[:1------]34tratransport=u").
func ParseTURNURI(raw string) (TURNServer, error) {
	bad := func(why string) error {
		return fmt.Errorf("natprobe: %q: %s: want turn:HOST:PORT[?transport=udp|tcp] or turns:HOST:PORT: %w", raw, why, ErrBadTURNURI)
	}
	scheme, rest, ok := strings.Cut(raw, ":")
	secure := strings.EqualFold(scheme, "turns")
	if !ok || !(secure || strings.EqualFold(scheme, "turn")) {
		return TURNServer{}, bad("scheme " + strconv.Quote(scheme))
	}
	hostport, query, hasQuery := strings.Cut(rest, "?")
	transport := ""
	if hasQuery {
		k, v, _ := strings.Cut(query, "=")
		if k != "transport" || (v != "udp" && v != "tcp") {
			return TURNServer{}, bad("query " + strconv.Quote(query) + ": only transport=udp or transport=tcp")
		}
		transport = v
	}
	host, port, err := splitHostPort(hostport, secure)
	if err != nil {
		return TURNServer{}, bad(err.Error())
	}
	s := TURNServer{URI: raw, Host: host, Port: port, Transport: TransportUDP}
	switch {
	case secure && transport == "udp":
		return TURNServer{}, bad("turns over UDP (DTLS) is not supported: use turns:HOST:PORT (TLS over TCP)")
	case secure:
		s.Transport = TransportTLS
	case transport == "tcp":
		s.Transport = TransportTCP
	}
	return s, nil
}

// splitHostPort reads HOST[:PORT], with IPv6 in brackets, and checks the
// host is an IP address or a DNS name.
func splitHostPort(hostport string, secure bool) (string, uint16, error) {
	host, portStr := hostport, ""
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, portStr = h, p
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1]
	}
	port := uint16(3478)
	if secure {
		port = 5349
	}
	if portStr != "" {
		n, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || n == 0 {
			return "", 0, fmt.Errorf("port %q: want 1 to 65535", portStr)
		}
		port = uint16(n)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" || (a.Is6() && !strings.HasPrefix(hostport, "[")) {
			return "", 0, fmt.Errorf("host %q: put an IPv6 address in brackets, without a zone", host)
		}
		return host, port, nil
	}
	if !dnsName(host) {
		return "", 0, fmt.Errorf("host %q: want an IP address or a DNS name", host)
	}
	return host, port, nil
}

// dnsName reports whether s is a plausible DNS name: labels of letters,
// digits and hyphens, 1 to 63 long, 253 in all.
func dnsName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// RESTCredentials makes TURN REST API credentials from a shared secret, as
// coturn's use-auth-secret expects: the username is the expiry time in
// Unix seconds, then ":" and user when given; the password is
// base64(HMAC-SHA1(secret, username)).
func RESTCredentials(secret, user string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10)
	if user != "" {
		username += ":" + user
	}
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// restExpiry reads the expiry time of a TURN REST API username; ok is
// false when the username does not have that form.
func restExpiry(username string) (time.Time, bool) {
	ts, _, _ := strings.Cut(username, ":")
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n < 1e9 {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// explainError turns a TURN error response into what to fix.
func (c *TURNCheck) explainError(method string, code int, reason string) string {
	base := fmt.Sprintf("%s: error %d %s", method, code, reason)
	switch code {
	case 401:
		return base + ": " + c.explainAuth()
	case 403:
		return base + ": the server forbids this (coturn: denied-peer-ip, allowed-peer-ip, no-loopback-peers, no-multicast-peers, or the client address is not allowed)"
	case 437, 438:
		return base + ": the server dropped the allocation or its nonce went stale; run the check again"
	case 442:
		return base + ": the server refuses UDP relays (coturn no-udp-relay); ICE needs UDP relays"
	case 486:
		return base + ": the user has too many allocations (coturn user-quota, total-quota)"
	case 508:
		return base + ": the server is out of relay ports or bandwidth (coturn min-port..max-port, max-bps)"
	}
	return base
}

// explainAuth says why credentials may have been refused.
func (c *TURNCheck) explainAuth() string {
	if c.Secret != "" {
		return fmt.Sprintf("the server refused the TURN REST credentials made with the secret (%s; username %q): check that the secret equals the server's static-auth-secret, that the server has use-auth-secret on, and that the two clocks agree", c.SecretFrom, c.username)
	}
	if exp, ok := restExpiry(c.username); ok && exp.Before(c.now()) {
		return fmt.Sprintf("the TURN REST username %q expired at %s (%s ago): ask the application for fresh credentials, or pass --secret to make them",
			c.username, exp.UTC().Format(time.RFC3339), c.now().Sub(exp).Round(time.Second))
	}
	return fmt.Sprintf("wrong --user %q or password (%s) for realm %q: check them against the server's users (coturn: user=NAME:PASSWORD with lt-cred-mech)", c.username, c.PasswordFrom, c.realm)
}

// adviseTURN fills the report's advice for its verdict.
func adviseTURN(r *TURNReport) {
	switch r.Verdict {
	case TURNOK:
		return
	case TURNUnreachable:
		r.Advice = append(r.Advice, "clients behind restrictive firewalls need TURN reachable over TCP or TLS (turns: on port 443); check each transport you give clients")
	case TURNRefused:
		r.Advice = append(r.Advice, "fix the server's configuration or the credentials as the error says; clients get the same refusal")
	case TURNRelayFailed:
		r.Advice = append(r.Advice, "open the relay port range (coturn min-port..max-port, UDP) between the TURN server and the media servers and clients")
	}
}
