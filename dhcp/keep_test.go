package dhcp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/medianet/medianet/dhcp/dhcpapi"
)

// TestLocal: a renewal that sent nothing (no namespace or link, or a link
// with no address or route yet) is retried soon; one the server did not
// answer or refused waits as RFC 2131 says.
func TestLocal(t *testing.T) {
	sendErr := func(errno syscall.Errno) error {
		op := &net.OpError{Op: "write", Net: "udp4", Err: os.NewSyscallError("sendto", errno)}
		return fmt.Errorf("server 10.0.0.2: got an error while processing the request: %w", fmt.Errorf("error writing packet to connection: %w", op))
	}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"netns gone", fmt.Errorf("network namespace x is gone: %w", dhcpapi.ErrBadRequest), true},
		{"link gone", fmt.Errorf("link eth0: %w", errLinkGone), true},
		{"no route yet", sendErr(syscall.ENETUNREACH), true},
		{"no address yet", sendErr(syscall.EADDRNOTAVAIL), true},
		{"no answer", fmt.Errorf("server 10.0.0.2 did not answer: %w", dhcpapi.ErrNoAnswer), false},
		{"NAK", fmt.Errorf("server 10.0.0.2 answered DHCPNAK: %w", dhcpapi.ErrNAK), false},
		{"other", errors.New("boom"), false},
	} {
		if got := local(c.err); got != c.want {
			t.Errorf("%s: local(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
