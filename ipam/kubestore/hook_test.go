package kubestore

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// TestHookBeforeEveryRequest: every request of the dynamic client passes
// Config.Hook first, and a refusal by the hook sends nothing. The HTTP
// server underneath only counts what reaches it (and answers 404); the
// real API server is driven through the hook by internal/sim.
func TestHookBeforeEveryRequest(t *testing.T) {
	var reached atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
	}))
	defer srv.Close()
	dc, err := dynamic.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	obj := func() *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": Group + "/" + Version, "kind": "IPAMBlock",
			"metadata": map[string]any{"name": "b", "namespace": "ns"}}}
	}
	ctx := context.Background()
	for _, tc := range []struct {
		want string
		call func(c hookedClient) error
	}{
		{"create ipamblocks", func(c hookedClient) error {
			_, err := c.Resource(blocksGVR).Create(ctx, obj(), metav1.CreateOptions{})
			return err
		}},
		{"update ipamblocks", func(c hookedClient) error {
			_, err := c.Resource(blocksGVR).Update(ctx, obj(), metav1.UpdateOptions{})
			return err
		}},
		{"update status of ipamblocks", func(c hookedClient) error {
			_, err := c.Resource(blocksGVR).UpdateStatus(ctx, obj(), metav1.UpdateOptions{})
			return err
		}},
		{"delete ipamblocks", func(c hookedClient) error {
			return c.Resource(blocksGVR).Delete(ctx, "b", metav1.DeleteOptions{})
		}},
		{"delete collection of ipamblocks", func(c hookedClient) error {
			return c.Resource(blocksGVR).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		}},
		{"get ipamblocks", func(c hookedClient) error {
			_, err := c.Resource(blocksGVR).Get(ctx, "b", metav1.GetOptions{})
			return err
		}},
		{"list ipamblocks", func(c hookedClient) error {
			_, err := c.Resource(blocksGVR).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"watch ipamblocks", func(c hookedClient) error {
			w, err := c.Resource(blocksGVR).Watch(ctx, metav1.ListOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		}},
		{"patch ipamblocks", func(c hookedClient) error {
			_, err := c.Resource(blocksGVR).Patch(ctx, "b", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{})
			return err
		}},
		{"apply ipamblocks", func(c hookedClient) error {
			_, err := c.Resource(blocksGVR).Apply(ctx, "b", obj(), metav1.ApplyOptions{FieldManager: "t"})
			return err
		}},
		{"apply status of ipamblocks", func(c hookedClient) error {
			_, err := c.Resource(blocksGVR).ApplyStatus(ctx, "b", obj(), metav1.ApplyOptions{FieldManager: "t"})
			return err
		}},
		{"get ipamblocks in ns", func(c hookedClient) error {
			_, err := c.Resource(blocksGVR).Namespace("ns").Get(ctx, "b", metav1.GetOptions{})
			return err
		}},
	} {
		t.Run(tc.want, func(t *testing.T) {
			refusal := errors.New("refused by the hook")
			for _, refuse := range []bool{true, false} {
				before := reached.Load()
				var seen []string
				c := hookedClient{dc, func(_ context.Context, op string) error {
					seen = append(seen, op)
					if refuse {
						return refusal
					}
					return nil
				}}
				err := tc.call(c)
				if len(seen) != 1 || seen[0] != tc.want {
					t.Errorf("refuse=%v: hook saw %q, want [%q]", refuse, seen, tc.want)
				}
				sent := reached.Load() - before
				switch {
				case refuse && (!errors.Is(err, refusal) || sent != 0):
					t.Errorf("refused: error %v and %d requests sent, want the hook's error and none", err, sent)
				case !refuse && sent != 1:
					t.Errorf("let through: %d requests sent, want 1 (error %v)", sent, err)
				}
			}
		})
	}
}

// TestHookErrorIsUnavailable: a request the hook refuses fails as from an
// unreachable API server (ErrUnavailable, naming the server and the
// hook's reason), and the operation stops there.
func TestHookErrorIsUnavailable(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	conf := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\n" +
		"users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n"
	if err := os.WriteFile(kc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var seen []string
	c, err := New(Config{Kubeconfig: kc, Hook: func(_ context.Context, op string) error {
		seen = append(seen, op)
		return errors.New("partitioned (test)")
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Blocks(context.Background(), "media", "")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "partitioned (test)") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Blocks with the hook refusing: %v, want ErrUnavailable naming the server and the reason", err)
	}
	if len(seen) != 1 || seen[0] != "list ipamblocks" {
		t.Errorf("hook saw %q, want [list ipamblocks]", seen)
	}
}
