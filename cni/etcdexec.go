package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/types"
)

// EtcdHelper is the program that runs the IPAM verbs of networks whose
// blocks are claimed in etcd (ipam.etcd). medianet-ipam and the medianet
// plugin run it by exec, so that a network without ipam.etcd never loads
// the etcd client: medianet-ipam stays small and starts fast.
const EtcdHelper = "medianet-ipam-etcd"

// usesEtcd reports, from the raw configuration, whether its IPAM claims
// blocks in etcd (ipam.etcd set, ipam.nodeRanges not). A configuration that
// does not parse is not etcd's: the caller's own parser reports it.
func usesEtcd(conf []byte) bool {
	var n struct {
		IPAM struct {
			Etcd       json.RawMessage `json:"etcd"`
			NodeRanges json.RawMessage `json:"nodeRanges"`
		} `json:"ipam"`
	}
	if json.Unmarshal(conf, &n) != nil {
		return false
	}
	isSet := func(r json.RawMessage) bool { return len(r) > 0 && string(r) != "null" }
	return isSet(n.IPAM.Etcd) && !isSet(n.IPAM.NodeRanges)
}

// FindEtcdHelper returns the path of EtcdHelper: beside the running
// program first (the installer puts them together), else in CNI_PATH's
// absolute entries. A relative entry would resolve against whatever
// directory the runtime runs us from, and an empty one would make a bare
// name that exec looks up in PATH, a different file from the one checked:
// both are ignored.
func FindEtcdHelper(cniPath string) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), EtcdHelper)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	for _, d := range filepath.SplitList(cniPath) {
		if !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, EtcdHelper)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", configErr("ipam.etcd needs %s beside medianet-ipam or in an absolute directory of CNI_PATH %q (relative and empty entries are ignored): install it (make build, the DaemonSet's installer)", EtcdHelper, cniPath)
}

// ForwardEtcd runs EtcdHelper for a configuration that claims blocks in
// etcd, with the same environment and conf on stdin, its stdout and stderr
// passed through; it reports whether it did and the exit code to exit
// with. A missing helper is a CNI error (code 7) printed on stdout.
func ForwardEtcd(conf []byte) (handled bool, code int) {
	if !usesEtcd(conf) {
		return false, 0
	}
	path, err := FindEtcdHelper(os.Getenv("CNI_PATH"))
	if err != nil {
		_ = types.NewError(types.ErrInvalidNetworkConfig, "medianet-ipam: "+err.Error(), "").Print()
		return true, 1
	}
	cmd := exec.Command(path)
	cmd.Stdin = bytes.NewReader(conf)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, 0
	case errors.As(err, &ee):
		return true, ee.ExitCode()
	}
	_ = types.NewError(types.ErrInternal, fmt.Sprintf("medianet-ipam: run %s: %v", path, err), "").Print()
	return true, 1
}
