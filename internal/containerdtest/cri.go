package containerdtest

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pod names a pod as kubelet describes it to CRI.
type Pod struct {
	Name, Namespace, UID string
	// Attempt counts kubelet's sandbox attempts for the pod (0 first).
	Attempt uint32
	// HostNetwork runs the pod in the node's network namespace (no CNI),
	// as a DaemonSet with hostNetwork: true.
	HostNetwork bool
}

// SandboxConfig is the PodSandboxConfig kubelet would send for p.
func (c *Containerd) SandboxConfig(p Pod) *runtime.PodSandboxConfig {
	if p.Namespace == "" {
		p.Namespace = "default"
	}
	if p.UID == "" {
		p.UID = "uid-" + p.Namespace + "-" + p.Name
	}
	mode := runtime.NamespaceMode_POD
	if p.HostNetwork {
		mode = runtime.NamespaceMode_NODE
	}
	logDir := filepath.Join(c.Dir, "pods", p.Namespace+"_"+p.Name+"_"+p.UID)
	_ = os.MkdirAll(logDir, 0o755)
	hostname := p.Name
	if p.HostNetwork {
		hostname = "" // the node's UTS namespace: runc refuses a hostname there
	}
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: p.Name, Namespace: p.Namespace, Uid: p.UID, Attempt: p.Attempt},
		Hostname:     hostname,
		LogDirectory: logDir,
		Labels:       map[string]string{"io.kubernetes.pod.name": p.Name, "io.kubernetes.pod.namespace": p.Namespace},
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Network: mode, Pid: runtime.NamespaceMode_CONTAINER, Ipc: runtime.NamespaceMode_POD},
		}},
	}
}

// RunPod runs a pod sandbox as kubelet does (RunPodSandbox) and returns
// its ID; the error is CRI's, with the CNI plugin's message in it.
func (c *Containerd) RunPod(p Pod) (string, error) {
	ctx, cancel := Ctx()
	defer cancel()
	r, err := c.Runtime.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: c.SandboxConfig(p)})
	if err != nil {
		return "", fmt.Errorf("RunPodSandbox %s/%s: %w", p.Namespace, p.Name, err)
	}
	return r.PodSandboxId, nil
}

// StopRemove stops and removes a pod sandbox, as kubelet does when a pod
// is deleted (StopPodSandbox, then RemovePodSandbox).
func (c *Containerd) StopRemove(id string) error {
	ctx, cancel := Ctx()
	defer cancel()
	if _, err := c.Runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("StopPodSandbox %s: %w", id, err)
	}
	if _, err := c.Runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("RemovePodSandbox %s: %w", id, err)
	}
	return nil
}

// PodStatus is what PodSandboxStatus (verbose) says of a pod.
type PodStatus struct {
	State runtime.PodSandboxState
	// IPs are the pod's addresses: Network.Ip then AdditionalIps.
	IPs []netip.Addr
	// Netns is the path of the pod's network namespace ("" for host
	// network or once the sandbox is stopped).
	Netns string
}

// Status returns PodSandboxStatus for id.
func (c *Containerd) Status(id string) (PodStatus, error) {
	ctx, cancel := Ctx()
	defer cancel()
	r, err := c.Runtime.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		return PodStatus{}, fmt.Errorf("PodSandboxStatus %s: %w", id, err)
	}
	s := PodStatus{State: r.Status.State}
	if n := r.Status.Network; n != nil {
		for _, ip := range append([]string{n.Ip}, podIPs(n.AdditionalIps)...) {
			if a, err := netip.ParseAddr(ip); err == nil {
				s.IPs = append(s.IPs, a)
			}
		}
	}
	var info struct {
		RuntimeSpec struct {
			Linux struct {
				Namespaces []struct{ Type, Path string } `json:"namespaces"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(r.Info["info"]), &info); err == nil {
		for _, n := range info.RuntimeSpec.Linux.Namespaces {
			if n.Type == "network" {
				s.Netns = n.Path
			}
		}
	}
	return s, nil
}

func podIPs(ips []*runtime.PodIP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.Ip)
	}
	return out
}

// WaitNetwork waits up to 30 s until CRI reports the network ready with
// a loaded CNI configuration whose JSON contains want (for instance
// `"name":"media"`), as it does once it has reloaded conf_dir.
func (c *Containerd) WaitNetwork(want string) error {
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := Ctx()
		r, err := c.Runtime.Status(ctx, &runtime.StatusRequest{Verbose: true})
		cancel()
		if err == nil {
			last = r.Info["cniconfig"]
			if networkReady(r.Status) && loaded(last, want) {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("CRI did not load a CNI configuration with %s in 30s; loaded: %s", want, last)
}

func networkReady(s *runtime.RuntimeStatus) bool {
	for _, cond := range s.GetConditions() {
		if cond.Type == runtime.NetworkReady && cond.Status {
			return true
		}
	}
	return false
}

// loaded reports whether one network of CRI's verbose "cniconfig" has a
// source (the conflist as read) containing want.
func loaded(cniconfig, want string) bool {
	var cfg struct {
		Networks []struct {
			Config struct{ Source string }
		}
	}
	if json.Unmarshal([]byte(cniconfig), &cfg) != nil {
		return false
	}
	for _, n := range cfg.Networks {
		if strings.Contains(n.Config.Source, want) {
			return true
		}
	}
	return false
}

// Container describes a container to run in a pod, as kubelet would.
type Container struct {
	Name    string
	Image   string
	Command []string
	Args    []string
	Env     map[string]string
	// Mounts maps container paths to host paths (hostPath volumes).
	Mounts   map[string]string
	ReadOnly map[string]bool // container paths mounted read-only
}

// RunContainer creates and starts c in pod podID (whose config is sc)
// and waits up to timeout for it to exit; it returns the exit code and
// the container's log.
func (c *Containerd) RunContainer(podID string, sc *runtime.PodSandboxConfig, ct Container, timeout time.Duration) (int32, string, error) {
	cfg := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: ct.Name},
		Image:    &runtime.ImageSpec{Image: ct.Image},
		Command:  ct.Command,
		Args:     ct.Args,
		LogPath:  ct.Name + ".log",
		Linux:    &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{NamespaceOptions: sc.Linux.SecurityContext.NamespaceOptions}},
	}
	for k, v := range ct.Env {
		cfg.Envs = append(cfg.Envs, &runtime.KeyValue{Key: k, Value: []byte(v)})
	}
	for in, host := range ct.Mounts {
		cfg.Mounts = append(cfg.Mounts, &runtime.Mount{ContainerPath: in, HostPath: host, Readonly: ct.ReadOnly[in]})
	}
	ctx, cancel := Ctx()
	defer cancel()
	cr, err := c.Runtime.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: sc})
	if err != nil {
		return -1, "", fmt.Errorf("CreateContainer %s: %w", ct.Name, err)
	}
	if _, err := c.Runtime.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		return -1, "", fmt.Errorf("StartContainer %s: %w", ct.Name, err)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := c.Runtime.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: cr.ContainerId})
		if err != nil {
			return -1, "", fmt.Errorf("ContainerStatus %s: %w", ct.Name, err)
		}
		if st.Status.State == runtime.ContainerState_CONTAINER_EXITED {
			log, _ := os.ReadFile(filepath.Join(sc.LogDirectory, cfg.LogPath))
			return st.Status.ExitCode, string(log), nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return -1, "", fmt.Errorf("container %s still running after %s", ct.Name, timeout)
}
