package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kinds maps the kinds medianet's manifests use to their resources.
var kinds = map[string]schema.GroupVersionResource{
	"apiextensions.k8s.io/v1/CustomResourceDefinition": {Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
	"rbac.authorization.k8s.io/v1/ClusterRole":         {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding":  {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	"v1/ServiceAccount":                                {Version: "v1", Resource: "serviceaccounts"},
	"v1/Namespace":                                     {Version: "v1", Resource: "namespaces"},
}

// RESTConfig returns a client configuration from a kubeconfig file.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	return clientcmd.BuildConfigFromFlags("", kubeconfig)
}

// Install creates the objects of the YAML manifests at paths as the
// administrator (like kubectl create), and waits until every
// CustomResourceDefinition among them is established.
func (s *Server) Install(paths ...string) error {
	cfg, err := RESTConfig(s.AdminKubeconfig)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var crds []string
	for _, p := range paths {
		objs, err := readManifest(p)
		if err != nil {
			return err
		}
		for _, o := range objs {
			gvr, ok := kinds[o.GetAPIVersion()+"/"+o.GetKind()]
			if !ok {
				return fmt.Errorf("%s: kind %s %s is not one kubetest installs", p, o.GetAPIVersion(), o.GetKind())
			}
			var ri dynamic.ResourceInterface = dyn.Resource(gvr)
			if ns := o.GetNamespace(); ns != "" {
				ri = dyn.Resource(gvr).Namespace(ns)
			}
			if _, err := ri.Create(ctx, o, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("%s: create %s %s: %w", p, o.GetKind(), o.GetName(), err)
			}
			if o.GetKind() == "CustomResourceDefinition" {
				crds = append(crds, o.GetName())
			}
		}
	}
	for _, name := range crds {
		if err := waitEstablished(ctx, dyn, name); err != nil {
			return err
		}
	}
	return nil
}

func readManifest(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// waitEstablished waits for the CRD's Established condition, then for
// its resource to be served.
func waitEstablished(ctx context.Context, dyn dynamic.Interface, name string) error {
	gvr := kinds["apiextensions.k8s.io/v1/CustomResourceDefinition"]
	for {
		o, err := dyn.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
		if err == nil && established(o) {
			plural, _, _ := unstructured.NestedString(o.Object, "spec", "names", "plural")
			group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			res := schema.GroupVersionResource{Group: group, Version: "v1alpha1", Resource: plural}
			if _, err = dyn.Resource(res).List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s not established: %v", name, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func established(o *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
