package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteKubeconfig(t *testing.T) {
	dir := t.TempDir()
	sa := ServiceAccount{Dir: filepath.Join(dir, "sa"), Host: "fd00::1", Port: "443"}
	write := func(name, data string) {
		t.Helper()
		if err := os.MkdirAll(sa.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sa.Dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "net.d", "medianet-kubeconfig")
	tests := []struct {
		name    string
		prepare func()
		sa      ServiceAccount
		changed bool
		errText string
		token   string
	}{
		{"no token", func() {}, sa, false, "ServiceAccount token", ""},
		{"no CA", func() { write("token", "t1") }, sa, false, "cluster CA", ""},
		{"not in a pod", func() { write("ca.crt", "CA") }, ServiceAccount{Dir: sa.Dir}, false, "KUBERNETES_SERVICE_HOST", ""},
		{"first write", func() {}, sa, true, "", "t1"},
		{"unchanged", func() {}, sa, false, "", "t1"},
		{"rotated", func() { write("token", "t2") }, sa, true, "", "t2"},
		{"empty token", func() { write("token", " \n") }, sa, false, "is empty", "t2"},
	}
	for _, tc := range tests {
		tc.prepare()
		changed, err := WriteKubeconfig(tc.sa, out)
		if (err == nil) != (tc.errText == "") || (err != nil && !strings.Contains(err.Error(), tc.errText)) {
			t.Fatalf("%s: error %v, want one saying %q", tc.name, err, tc.errText)
		}
		if changed != tc.changed {
			t.Errorf("%s: changed %v, want %v", tc.name, changed, tc.changed)
		}
		if tc.token == "" {
			continue
		}
		if got, _ := os.ReadFile(out + ".token"); string(got) != tc.token {
			t.Errorf("%s: token file holds %q, want %q", tc.name, got, tc.token)
		}
		conf, _ := os.ReadFile(out)
		for _, want := range []string{"server: https://[fd00::1]:443", "tokenFile: medianet-kubeconfig.token", "certificate-authority: medianet-kubeconfig.ca.crt"} {
			if !strings.Contains(string(conf), want) {
				t.Errorf("%s: kubeconfig lacks %q:\n%s", tc.name, want, conf)
			}
		}
		if fi, err := os.Stat(out + ".token"); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: token file mode %v, %v; want 0600", tc.name, fi.Mode(), err)
		}
	}
}
