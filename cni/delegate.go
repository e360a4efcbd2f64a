package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/types/create"
)

// delegate runs the IPAM plugin typ (found in CNI_PATH) with verb and the
// network configuration on stdin, as the reference plugins do, and returns
// its stdout. The plugin's CNI error is returned as a *types.Error, so its
// code reaches the runtime unchanged. (containernetworking's pkg/invoke
// would do the same but pulls in OpenTelemetry.)
func (m *Main) delegate(ctx context.Context, verb, typ string, conf []byte, env ...string) ([]byte, error) {
	if strings.ContainsRune(typ, '/') {
		return nil, configErr("ipam.type %q must be a plugin name, not a path", typ)
	}
	find := findPlugin
	if typ == IPAMType {
		// The main plugin runs medianet-ipam in-process except for etcd
		// and kubernetes networks: go straight to the program that has
		// the client.
		helper := helperFor(conf)
		if helper == "" {
			helper = EtcdHelper
		}
		find = func(dirs, _ string) (string, error) { return FindHelper(helper, dirs) }
	}
	path, err := find(m.IPAM.Env.getenv("CNI_PATH"), typ)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = append(append(withoutKey(os.Environ(), "CNI_COMMAND"), "CNI_COMMAND="+verb), env...)
	cmd.Stdin = bytes.NewReader(conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		var te types.Error
		if json.Unmarshal(out.Bytes(), &te) == nil && te.Code != 0 {
			te.Msg = "ipam " + typ + ": " + te.Msg
			return nil, &te
		}
		return nil, fmt.Errorf("ipam %s %s: %w: %s", typ, verb, err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// delegateAdd runs IPAM ADD by exec and returns its result.
func (m *Main) delegateAdd(ctx context.Context, typ string, conf []byte) (types.Result, error) {
	out, err := m.delegate(ctx, "ADD", typ, conf)
	if err != nil {
		return nil, err
	}
	r, err := create.CreateFromBytes(out)
	if err != nil {
		return nil, fmt.Errorf("ipam %s: result: %w", typ, err)
	}
	return r, nil
}

// findPlugin looks for an executable name in the colon-separated dirs.
// Entries that are not absolute paths are skipped, as for
// medianet-ipam-etcd (FindEtcdHelper): a relative one would resolve
// against the working directory and an empty one would become a bare
// name, a different file from the one the runtime meant.
func findPlugin(dirs, name string) (string, error) {
	for _, d := range filepath.SplitList(dirs) {
		if !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", configErr("ipam.type %q: no such plugin in the absolute entries of CNI_PATH %q", name, dirs)
}

func withoutKey(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}
