package agent

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// DefaultServiceAccountDir is where a pod's ServiceAccount token and the
// cluster's CA are mounted.
const DefaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// ServiceAccount is what the agent knows of its own ServiceAccount: the
// projected token and CA (Dir) and the API server's in-cluster address
// (KUBERNETES_SERVICE_HOST and _PORT).
type ServiceAccount struct {
	Dir        string
	Host, Port string
}

// InCluster returns the agent pod's ServiceAccount from the environment.
func InCluster() ServiceAccount {
	return ServiceAccount{Dir: DefaultServiceAccountDir,
		Host: os.Getenv("KUBERNETES_SERVICE_HOST"), Port: os.Getenv("KUBERNETES_SERVICE_PORT")}
}

// WriteKubeconfig writes, for the CNI binaries on the host, a kubeconfig
// at path that authenticates as the agent's ServiceAccount, the way
// Calico's installer does: the token and the CA are copied beside it
// (path + ".token", path + ".ca.crt", mode 0600) and named by tokenFile
// and certificate-authority relative to the kubeconfig (client-go
// resolves them from its directory, so the host may mount the directory
// anywhere), and a rotated token only rewrites the token file. Each file is replaced by rename, so a plugin starting
// meanwhile reads the old file or the new one, never half of one, and a
// file already holding the right content is not touched. It reports
// whether anything changed.
//
// kubelet rotates a projected token at 80% of its lifetime (an hour by
// default, ten minutes at least), so a caller running this every minute
// always leaves the plugins a valid token.
func WriteKubeconfig(sa ServiceAccount, path string) (bool, error) {
	if sa.Host == "" || sa.Port == "" {
		return false, errors.New("kubeconfig for the CNI plugins: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: run the agent in a pod, or write the kubeconfig yourself")
	}
	token, err := os.ReadFile(filepath.Join(sa.Dir, "token"))
	if err != nil {
		return false, fmt.Errorf("kubeconfig for the CNI plugins: the ServiceAccount token: %w (automountServiceAccountToken must not be false)", err)
	}
	ca, err := os.ReadFile(filepath.Join(sa.Dir, "ca.crt"))
	if err != nil {
		return false, fmt.Errorf("kubeconfig for the CNI plugins: the cluster CA: %w", err)
	}
	if len(bytes.TrimSpace(token)) == 0 {
		return false, fmt.Errorf("kubeconfig for the CNI plugins: %s is empty", filepath.Join(sa.Dir, "token"))
	}
	conf := fmt.Sprintf(`# Written by medianetd (the medianet node agent) from its ServiceAccount;
# rewritten when the token rotates. Do not edit.
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://%s
    certificate-authority: %s
users:
- name: medianet
  user:
    tokenFile: %s
contexts:
- name: medianet
  context: {cluster: local, user: medianet}
current-context: medianet
`, net.JoinHostPort(sa.Host, sa.Port), filepath.Base(path)+".ca.crt", filepath.Base(path)+".token")
	changed := false
	for _, f := range []struct {
		path string
		data []byte
	}{{path + ".ca.crt", ca}, {path + ".token", token}, {path, []byte(conf)}} {
		c, err := replaceFile(f.path, f.data)
		if err != nil {
			return changed, fmt.Errorf("kubeconfig for the CNI plugins: %w", err)
		}
		changed = changed || c
	}
	return changed, nil
}

// replaceFile writes data to path by rename unless path holds it already.
func replaceFile(path string, data []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	return true, os.Rename(tmp.Name(), path)
}
