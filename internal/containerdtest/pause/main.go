// Command pause is the sandbox ("pause") process of the pods that
// internal/containerdtest runs: it holds the pod's namespaces, reaps the
// children a shared PID namespace hands it, and exits 0 on SIGTERM or
// SIGINT. The harness builds it statically into its local sandbox image,
// so no registry is involved.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
