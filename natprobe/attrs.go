package natprobe

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/pion/stun/v3"
)

// CHANGE-REQUEST flags (RFC 5780 section 7.2).
const (
	changeIP   = 0x4
	changePort = 0x2
)

// changeRequest is the CHANGE-REQUEST attribute; it implements stun.Setter.
type changeRequest struct{ ip, port bool }

func (c changeRequest) AddTo(m *stun.Message) error {
	var v uint32
	if c.ip {
		v |= changeIP
	}
	if c.port {
		v |= changePort
	}
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, v)
	m.Add(stun.AttrChangeRequest, b)
	return nil
}

// getChangeRequest reads CHANGE-REQUEST; ok is false when it is absent.
func getChangeRequest(m *stun.Message) (c changeRequest, ok bool, err error) {
	b, err := m.Get(stun.AttrChangeRequest)
	if err != nil {
		return c, false, nil
	}
	if len(b) != 4 {
		return c, true, fmt.Errorf("natprobe: CHANGE-REQUEST length %d, want 4", len(b))
	}
	v := binary.BigEndian.Uint32(b)
	return changeRequest{ip: v&changeIP != 0, port: v&changePort != 0}, true, nil
}

// responsePort is the RESPONSE-PORT attribute (RFC 5780 section 7.5).
type responsePort uint16

func (p responsePort) AddTo(m *stun.Message) error {
	b := make([]byte, 4)
	binary.BigEndian.PutUint16(b, uint16(p))
	m.Add(stun.AttrResponsePort, b)
	return nil
}

func getResponsePort(m *stun.Message) (port uint16, ok bool, err error) {
	b, err := m.Get(stun.AttrResponsePort)
	if err != nil {
		return 0, false, nil
	}
	if len(b) != 4 {
		return 0, true, fmt.Errorf("natprobe: RESPONSE-PORT length %d, want 4", len(b))
	}
	return binary.BigEndian.Uint16(b), true, nil
}

// toUDPAddr and fromIPPort convert between netip and the net types pion uses.
func toIP(a netip.Addr) net.IP { return net.IP(a.Unmap().AsSlice()) }

func fromIPPort(ip net.IP, port int) (netip.AddrPort, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || port < 0 || port > 0xffff {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

// replyAddrs holds the addresses read from a Binding success response.
type replyAddrs struct {
	xorMapped netip.AddrPort // XOR-MAPPED-ADDRESS
	mapped    netip.AddrPort // MAPPED-ADDRESS (RFC 3489 servers, ALG check)
	origin    netip.AddrPort // RESPONSE-ORIGIN
	other     netip.AddrPort // OTHER-ADDRESS
}

// reflexive is the server-reflexive address: XOR-MAPPED-ADDRESS, or
// MAPPED-ADDRESS from a server that sends only that.
func (r replyAddrs) reflexive() netip.AddrPort {
	if r.xorMapped.IsValid() {
		return r.xorMapped
	}
	return r.mapped
}

// parseReply reads the address attributes of a Binding success response.
func parseReply(m *stun.Message) (replyAddrs, error) {
	var r replyAddrs
	if m.Type != stun.BindingSuccess {
		return r, fmt.Errorf("natprobe: reply type %v, want binding success", m.Type)
	}
	var x stun.XORMappedAddress
	if x.GetFrom(m) == nil {
		r.xorMapped, _ = fromIPPort(x.IP, x.Port)
	}
	var ma stun.MappedAddress
	if ma.GetFrom(m) == nil {
		r.mapped, _ = fromIPPort(ma.IP, ma.Port)
	}
	var o stun.ResponseOrigin
	if o.GetFrom(m) == nil {
		r.origin, _ = fromIPPort(o.IP, o.Port)
	}
	var oa stun.OtherAddress
	if oa.GetFrom(m) == nil {
		r.other, _ = fromIPPort(oa.IP, oa.Port)
	}
	if !r.reflexive().IsValid() {
		return r, fmt.Errorf("natprobe: binding success without a mapped address")
	}
	return r, nil
}
