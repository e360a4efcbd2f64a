package cni

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/medianet/medianet/dhcp/dhcpapi"
	"github.com/medianet/medianet/doctor"
	"github.com/medianet/medianet/ipam"
	"github.com/medianet/medianet/macvlan"
)

// CodeExhausted is medianet's plugin-specific CNI error code (100 and up
// are the plugin's) for "no free address in this node's ranges" on ADD.
const CodeExhausted uint = 100

// CodeConflict is medianet's code for an ADD whose every try met an
// address another host on the LAN answers for (ipam.ErrConflict).
const CodeConflict uint = 101

// Error maps err to a CNI error. This is the one place where codes are
// chosen:
//
//	7   ipam.ErrConfig, ipam.ErrOverlap, ipam.ErrOutOfRange, ipam.ErrTaken,
//	    macvlan.ErrMasterNotFound, macvlan.ErrInvalidSpec
//	    (the configuration, or an address it requests, cannot work)
//	    (etcdstore.ErrAuth matches ipam.ErrConfig)
//	11  ipam.ErrBusy (etcdstore.ErrUnavailable matches it), context
//	    deadline, and in DHCP mode no node agent, no server answering, a
//	    NAK (try again later: the operator fixes the agent or the server)
//	100 ipam.ErrExhausted (no free address)
//	101 ipam.ErrConflict (addresses answered for by other hosts)
//	50  (STATUS only) ipam.ErrExhausted, ipam.ErrBlockLost,
//	    macvlan.ErrMasterNotFound, doctor.ErrNotCarrying (see
//	    StatusError, MainStatusError)
//	999 anything else, ipam.ErrCorrupt included
//
// An error that already is a *types.Error is returned unchanged.
func Error(err error) *types.Error {
	return errorAs("medianet-ipam: ", err)
}

// MainError is Error for the main plugin (messages start "medianet: ").
func MainError(err error) *types.Error {
	return errorAs("medianet: ", err)
}

func errorAs(prefix string, err error) *types.Error {
	if err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	code := types.ErrInternal
	switch {
	case errors.Is(err, ipam.ErrConfig), errors.Is(err, ipam.ErrOverlap),
		errors.Is(err, ipam.ErrOutOfRange), errors.Is(err, ipam.ErrTaken),
		errors.Is(err, macvlan.ErrMasterNotFound), errors.Is(err, macvlan.ErrInvalidSpec):
		code = types.ErrInvalidNetworkConfig
	case errors.Is(err, ipam.ErrBusy), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, dhcpapi.ErrNoAgent), errors.Is(err, dhcpapi.ErrNoAnswer), errors.Is(err, dhcpapi.ErrNAK):
		code = types.ErrTryAgainLater
	case errors.Is(err, ipam.ErrExhausted):
		code = CodeExhausted
	case errors.Is(err, ipam.ErrConflict):
		code = CodeConflict
	}
	return types.NewError(code, prefix+err.Error(), "")
}

// StatusError maps a STATUS failure: no address to be had, or a held
// block lost to another node, is 50 ("plugin not available"); the rest as
// Error.
func StatusError(err error) *types.Error {
	if err != nil && (errors.Is(err, ipam.ErrExhausted) || errors.Is(err, ipam.ErrBlockLost) || errors.Is(err, dhcpapi.ErrNoAgent)) {
		return types.NewError(types.ErrPluginNotAvailable, "medianet-ipam: "+err.Error(), "")
	}
	return Error(err)
}

// MainStatusError maps the main plugin's STATUS failure: a missing master,
// a master the doctor found not carrying macvlan frames, or no address to
// be had is 50 ("plugin not available"); the rest as
// MainError.
func MainStatusError(err error) *types.Error {
	if err != nil && (errors.Is(err, ipam.ErrExhausted) || errors.Is(err, ipam.ErrBlockLost) || errors.Is(err, dhcpapi.ErrNoAgent) ||
		errors.Is(err, macvlan.ErrMasterNotFound) || errors.Is(err, doctor.ErrNotCarrying)) {
		return types.NewError(types.ErrPluginNotAvailable, "medianet: "+err.Error(), "")
	}
	return MainError(err)
}

// SkelError maps an error skel returned before any verb ran: content that
// does not decode (code 6, invalid JSON) is a configuration error, 7, naming
// the JSON; the rest is returned unchanged.
func SkelError(e *types.Error) *types.Error {
	if e == nil || e.Code != types.ErrDecodingFailure {
		return e
	}
	return types.NewError(types.ErrInvalidNetworkConfig,
		"medianet: network configuration is not valid JSON: "+e.Msg+": fix the JSON on stdin", e.Details)
}

// codeNames say what a CNI error code means, for withCode.
var codeNames = map[uint]string{
	types.ErrIncompatibleCNIVersion: "incompatible CNI version",
	types.ErrInvalidNetworkConfig:   "invalid network configuration",
	types.ErrTryAgainLater:          "try again later",
	types.ErrPluginNotAvailable:     "plugin not available",
	types.ErrLimitedConnectivity:    "limited connectivity",
	CodeExhausted:                   "no free address in this node's ranges",
	CodeConflict:                    "addresses answered for by other hosts on the LAN",
	types.ErrInternal:               "internal error",
}

// withCode puts e's code, with what it means, in Details when that is
// empty. Runtimes that show only an error's text (containerd's CRI:
// kubelet's events carry Msg and Details, never Code) then still tell the
// operator which kind of failure it is.
func withCode(e *types.Error) *types.Error {
	if e.Details == "" {
		e.Details = fmt.Sprintf("CNI error code %d", e.Code)
		if name, ok := codeNames[e.Code]; ok {
			e.Details += " (" + name + ")"
		}
	}
	return e
}
