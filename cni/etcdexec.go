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

// KubeHelper runs the IPAM verbs of networks whose blocks are claimed in
// the Kubernetes API (ipam.kubernetes), so that no other program links
// client-go.
const KubeHelper = "medianet-ipam-kube"

// helperFor returns the helper program that serves conf's IPAM:
// EtcdHelper for ipam.etcd, KubeHelper for ipam.kubernetes, "" when
// neither is set or static ipam.nodeRanges take precedence. A
// configuration that does not parse has none: the caller's own parser
// reports it; one with both set goes to EtcdHelper, whose parser refuses
// it naming both keys.
func helperFor(conf []byte) string {
	var n struct {
		IPAM struct {
			Etcd       json.RawMessage `json:"etcd"`
			Kubernetes json.RawMessage `json:"kubernetes"`
			NodeRanges json.RawMessage `json:"nodeRanges"`
		} `json:"ipam"`
	}
	if json.Unmarshal(conf, &n) != nil {
		return ""
	}
	isSet := func(r json.RawMessage) bool { return len(r) > 0 && string(r) != "null" }
	switch {
	case isSet(n.IPAM.NodeRanges):
		return ""
	case isSet(n.IPAM.Etcd):
		return EtcdHelper
	case isSet(n.IPAM.Kubernetes):
		return KubeHelper
	}
	return ""
}

// FindEtcdHelper returns the path of EtcdHelper: beside the running
// program first (the installer puts them together), else in CNI_PATH's
// absolute entries. A relative entry would resolve against whatever
// directory the runtime runs us from, and an empty one would make a bare
// name that exec looks up in PATH, a different file from the one checked:
// both are ignored.
func FindEtcdHelper(cniPath string) (string, error) { return FindHelper(EtcdHelper, cniPath) }

// FindHelper returns the path of helper (EtcdHelper or KubeHelper) as
// FindEtcdHelper does.
func FindHelper(helper, cniPath string) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), helper)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	for _, d := range filepath.SplitList(cniPath) {
		if !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, helper)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	key := "ipam.etcd"
	if helper == KubeHelper {
		key = "ipam.kubernetes"
	}
	return "", configErr("%s needs %s beside medianet-ipam or in an absolute directory of CNI_PATH %q (relative and empty entries are ignored): install it (make build, the DaemonSet's installer)", key, helper, cniPath)
}

// ForwardEtcd runs the helper for a configuration that claims blocks in
// etcd (EtcdHelper) or in the Kubernetes API (KubeHelper), with the same environment and conf on stdin, its stdout and stderr
// passed through; it reports whether it did and the exit code to exit
// with. A missing helper is a CNI error (code 7) printed on stdout.
func ForwardEtcd(conf []byte) (handled bool, code int) {
	helper := helperFor(conf)
	if helper == "" {
		return false, 0
	}
	path, err := FindHelper(helper, os.Getenv("CNI_PATH"))
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
