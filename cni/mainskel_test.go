package cni

import (
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// TestWithCode: the code reaches runtimes that print only Msg and Details.
func TestWithCode(t *testing.T) {
	cases := []struct {
		in   *types.Error
		want string
	}{
		{types.NewError(7, "medianet: mode", ""), "medianet: mode; CNI error code 7 (invalid network configuration)"},
		{types.NewError(CodeExhausted, "medianet: full", ""), "medianet: full; CNI error code 100 (no free address in this node's ranges)"},
		{types.NewError(123, "medianet: odd", ""), "medianet: odd; CNI error code 123"},
		{types.NewError(11, "ipam: busy", "kept"), "ipam: busy; kept"},
	}
	for _, tc := range cases {
		if got := withCode(tc.in).Error(); got != tc.want {
			t.Errorf("withCode: %q, want %q", got, tc.want)
		}
	}
}
