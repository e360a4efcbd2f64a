package k8s_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/medianet/medianet/internal/containerdtest"
	"github.com/medianet/medianet/internal/dockertest"
	"github.com/medianet/medianet/internal/nstest"
	"go.yaml.in/yaml/v2"
)

// TestInstallerCopiesEtcdSecret: the DaemonSet's installer, given the
// Secret medianet-etcd as kubelet mounts one (each key a symlink into
// ..data), copies its files to the node's /etc/medianet/etcd (directory
// 0700, files 0600, nothing temporary left), where the plugins and the
// agent container read them; without the Secret (an empty optional
// volume) it copies nothing and still succeeds.
func TestInstallerCopiesEtcdSecret(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	containerdtest.SkipUnlessAvailable(t)
	dockertest.Require(t)
	script, _ := daemonSet(t)
	host := t.TempDir()
	for _, d := range []string{"opt/cni/bin", "etc/cni/net.d", "config", "secret/..data", "empty", "etc/medianet/etcd", "etc/medianet/none"} {
		must(t, os.MkdirAll(filepath.Join(host, d), 0o755))
	}
	files := map[string]string{"ca.crt": "CA PEM", "tls.crt": "CERT PEM", "tls.key": "KEY PEM", "password": "s3cret"}
	for name, content := range files {
		must(t, os.WriteFile(filepath.Join(host, "secret/..data", name), []byte(content), 0o400))
		must(t, os.Symlink(filepath.Join("..data", name), filepath.Join(host, "secret", name)))
	}
	c := containerdtest.Start(t, containerdtest.Options{BinDir: filepath.Join(host, "opt/cni/bin"), ConfDir: filepath.Join(host, "etc/cni/net.d")})
	const image = "medianet/medianet:k8s-test-secret"
	buildInstaller(t, c, image, bins)
	run := func(secret, etcdDir string) {
		p := containerdtest.Pod{Name: "medianet-install", Namespace: "kube-system", UID: nstest.UniqueName("ds"), HostNetwork: true}
		sc := c.SandboxConfig(p)
		id, err := c.RunPod(p)
		must(t, err)
		code, log, err := c.RunContainer(id, sc, containerdtest.Container{
			Name: "install", Image: image, Command: []string{"/bin/sh", "-c"}, Args: []string{script},
			Env: map[string]string{"INSTALL_CONFLIST": "false"},
			Mounts: map[string]string{
				"/host/opt/cni/bin": filepath.Join(host, "opt/cni/bin"), "/host/etc/cni/net.d": filepath.Join(host, "etc/cni/net.d"),
				"/config": filepath.Join(host, "config"), "/etcd-secret": secret, "/host/etc/medianet/etcd": etcdDir,
			},
			ReadOnly: map[string]bool{"/config": true, "/etcd-secret": true},
		}, 2*time.Minute)
		must(t, err)
		if code != 0 {
			t.Fatalf("install container exited %d:\n%s", code, log)
		}
		must(t, c.StopRemove(id))
	}
	run(filepath.Join(host, "secret"), filepath.Join(host, "etc/medianet/etcd"))
	dir := filepath.Join(host, "etc/medianet/etcd")
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v, mode %v; want 0700", dir, err, fi.Mode().Perm())
	}
	es, err := os.ReadDir(dir)
	must(t, err)
	if len(es) != len(files) {
		t.Errorf("%s holds %d entries, want the %d files of the Secret only: %v", dir, len(es), len(files), es)
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want a regular file, 0600", p, err, fi.Mode())
			continue
		}
		if got, _ := os.ReadFile(p); string(got) != content {
			t.Errorf("%s = %q, want %q", p, got, content)
		}
	}
	// No Secret: the optional volume is an empty directory.
	run(filepath.Join(host, "empty"), filepath.Join(host, "etc/medianet/none"))
	if es, _ := os.ReadDir(filepath.Join(host, "etc/medianet/none")); len(es) != 0 {
		t.Errorf("without the Secret, the installer wrote %v", es)
	}
}

// TestDaemonSetAgentMountsEtcdFiles: in deploy/kubernetes/daemonset.yaml,
// the agent container reads the node's /etc/medianet/etcd at that same
// path (the paths ipam.etcd names), read-only, and the installer writes
// that host directory from the optional Secret medianet-etcd.
func TestDaemonSetAgentMountsEtcdFiles(t *testing.T) {
	b, err := os.ReadFile("../../deploy/kubernetes/daemonset.yaml")
	must(t, err)
	type mount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	}
	type container struct {
		Name         string  `yaml:"name"`
		VolumeMounts []mount `yaml:"volumeMounts"`
	}
	var ds struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Template struct {
				Spec struct {
					InitContainers []container `yaml:"initContainers"`
					Containers     []container `yaml:"containers"`
					Volumes        []struct {
						Name     string `yaml:"name"`
						HostPath *struct {
							Path string `yaml:"path"`
						} `yaml:"hostPath"`
						Secret *struct {
							SecretName string `yaml:"secretName"`
							Optional   bool   `yaml:"optional"`
						} `yaml:"secret"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for ds.Kind != "DaemonSet" {
		if err := dec.Decode(&ds); err != nil {
			t.Fatalf("daemonset.yaml: no DaemonSet: %v", err)
		}
	}
	spec := ds.Spec.Template.Spec
	mountOf := func(cs []container, name, volume string) *mount {
		for _, c := range cs {
			if c.Name == name {
				for _, m := range c.VolumeMounts {
					if m.Name == volume {
						return &m
					}
				}
			}
		}
		return nil
	}
	hostPaths, secrets := map[string]string{}, map[string]bool{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
		if v.Secret != nil && v.Secret.SecretName == "medianet-etcd" && v.Secret.Optional {
			secrets[v.Name] = true
		}
	}
	var client string
	for name, p := range hostPaths {
		if p == "/etc/medianet/etcd" {
			client = name
		}
	}
	if client == "" {
		t.Fatalf("no hostPath volume of /etc/medianet/etcd: %v", hostPaths)
	}
	if m := mountOf(spec.Containers, "agent", client); m == nil || m.MountPath != "/etc/medianet/etcd" || !m.ReadOnly {
		t.Errorf("agent mounts %s as %+v, want /etc/medianet/etcd read-only", client, m)
	}
	if m := mountOf(spec.InitContainers, "install", client); m == nil || m.MountPath != "/host/etc/medianet/etcd" {
		t.Errorf("installer mounts %s as %+v, want /host/etc/medianet/etcd", client, m)
	}
	found := false
	for name := range secrets {
		if m := mountOf(spec.InitContainers, "install", name); m != nil && m.MountPath == "/etcd-secret" {
			found = true
		}
	}
	if !found {
		t.Errorf("installer mounts no optional Secret medianet-etcd at /etcd-secret")
	}
}
