package cni

import (
	"context"
	"errors"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/medianet/medianet/ipam"
)

// CodeExhausted is medianet's plugin-specific CNI error code (100 and up
// are the plugin's) for "no free address in this node's ranges" on ADD.
const CodeExhausted uint = 100

// Error maps err to a CNI error. This is the one place where codes are
// chosen:
//
//	7   ipam.ErrConfig, ipam.ErrOverlap, ipam.ErrOutOfRange, ipam.ErrTaken
//	    (the configuration, or an address it requests, cannot work)
//	11  ipam.ErrBusy, context deadline (try again later)
//	100 ipam.ErrExhausted (no free address)
//	999 anything else, ipam.ErrCorrupt included
//
// An error that already is a *types.Error is returned unchanged.
func Error(err error) *types.Error {
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
		errors.Is(err, ipam.ErrOutOfRange), errors.Is(err, ipam.ErrTaken):
		code = types.ErrInvalidNetworkConfig
	case errors.Is(err, ipam.ErrBusy), errors.Is(err, context.DeadlineExceeded):
		code = types.ErrTryAgainLater
	case errors.Is(err, ipam.ErrExhausted):
		code = CodeExhausted
	}
	return types.NewError(code, "medianet-ipam: "+err.Error(), "")
}

// StatusError maps a STATUS failure: no address to be had is 50 ("plugin
// not available"); the rest as Error.
func StatusError(err error) *types.Error {
	if err != nil && errors.Is(err, ipam.ErrExhausted) {
		return types.NewError(types.ErrPluginNotAvailable, "medianet-ipam: "+err.Error(), "")
	}
	return Error(err)
}
