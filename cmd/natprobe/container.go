package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// containerNetns finds the network namespace of a Docker or podman
// container through the runtime's inspect: /proc/PID/ns/net of its init.
func containerNetns(ctx context.Context, runtime, id string) (string, error) {
	runtimes := []string{"docker", "podman"}
	if runtime != "" {
		if runtime != "docker" && runtime != "podman" {
			return "", fmt.Errorf("--runtime %q: want docker or podman", runtime)
		}
		runtimes = []string{runtime}
	}
	var errs []string
	for _, rt := range runtimes {
		if _, err := exec.LookPath(rt); err != nil {
			errs = append(errs, fmt.Sprintf("%s: not installed", rt))
			continue
		}
		out, err := exec.CommandContext(ctx, rt, "inspect", "-f", "{{.State.Pid}}", id).CombinedOutput()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s inspect: %v: %s", rt, err, strings.TrimSpace(string(out))))
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil || pid <= 0 {
			errs = append(errs, fmt.Sprintf("%s: container %s is not running (pid %q)", rt, id, strings.TrimSpace(string(out))))
			continue
		}
		return fmt.Sprintf("/proc/%d/ns/net", pid), nil
	}
	return "", fmt.Errorf("no runtime knows a running container: %s", strings.Join(errs, "; "))
}
