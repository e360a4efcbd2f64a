package kubestore

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
)

// hookedClient is the dynamic client with Config.Hook called before every
// request, in this package's code: the hook may stop the calling
// goroutine (the simulator kills an operation there) before client-go is
// entered.
type hookedClient struct {
	dynamic.Interface
	hook func(ctx context.Context, op string) error
}

func (h hookedClient) Resource(gvr schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	r := h.Interface.Resource(gvr)
	return hookedResource{hookedRI{r, h.hook, gvr.Resource}, r}
}

type hookedResource struct {
	hookedRI
	nri dynamic.NamespaceableResourceInterface
}

func (h hookedResource) Namespace(ns string) dynamic.ResourceInterface {
	return hookedRI{h.nri.Namespace(ns), h.hook, h.what + " in " + ns}
}

type hookedRI struct {
	ri   dynamic.ResourceInterface
	hook func(ctx context.Context, op string) error
	what string
}

func (h hookedRI) Create(ctx context.Context, obj *unstructured.Unstructured, o metav1.CreateOptions, sub ...string) (*unstructured.Unstructured, error) {
	if err := h.hook(ctx, "create "+h.what); err != nil {
		return nil, err
	}
	return h.ri.Create(ctx, obj, o, sub...)
}

func (h hookedRI) Update(ctx context.Context, obj *unstructured.Unstructured, o metav1.UpdateOptions, sub ...string) (*unstructured.Unstructured, error) {
	if err := h.hook(ctx, "update "+h.what); err != nil {
		return nil, err
	}
	return h.ri.Update(ctx, obj, o, sub...)
}

func (h hookedRI) UpdateStatus(ctx context.Context, obj *unstructured.Unstructured, o metav1.UpdateOptions) (*unstructured.Unstructured, error) {
	if err := h.hook(ctx, "update status of "+h.what); err != nil {
		return nil, err
	}
	return h.ri.UpdateStatus(ctx, obj, o)
}

func (h hookedRI) Delete(ctx context.Context, name string, o metav1.DeleteOptions, sub ...string) error {
	if err := h.hook(ctx, "delete "+h.what); err != nil {
		return err
	}
	return h.ri.Delete(ctx, name, o, sub...)
}

func (h hookedRI) DeleteCollection(ctx context.Context, o metav1.DeleteOptions, lo metav1.ListOptions) error {
	if err := h.hook(ctx, "delete collection of "+h.what); err != nil {
		return err
	}
	return h.ri.DeleteCollection(ctx, o, lo)
}

func (h hookedRI) Get(ctx context.Context, name string, o metav1.GetOptions, sub ...string) (*unstructured.Unstructured, error) {
	if err := h.hook(ctx, "get "+h.what); err != nil {
		return nil, err
	}
	return h.ri.Get(ctx, name, o, sub...)
}

func (h hookedRI) List(ctx context.Context, o metav1.ListOptions) (*unstructured.UnstructuredList, error) {
	if err := h.hook(ctx, "list "+h.what); err != nil {
		return nil, err
	}
	return h.ri.List(ctx, o)
}

func (h hookedRI) Watch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	if err := h.hook(ctx, "watch "+h.what); err != nil {
		return nil, err
	}
	return h.ri.Watch(ctx, o)
}

func (h hookedRI) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, o metav1.PatchOptions, sub ...string) (*unstructured.Unstructured, error) {
	if err := h.hook(ctx, "patch "+h.what); err != nil {
		return nil, err
	}
	return h.ri.Patch(ctx, name, pt, data, o, sub...)
}

func (h hookedRI) Apply(ctx context.Context, name string, obj *unstructured.Unstructured, o metav1.ApplyOptions, sub ...string) (*unstructured.Unstructured, error) {
	if err := h.hook(ctx, "apply "+h.what); err != nil {
		return nil, err
	}
	return h.ri.Apply(ctx, name, obj, o, sub...)
}

func (h hookedRI) ApplyStatus(ctx context.Context, name string, obj *unstructured.Unstructured, o metav1.ApplyOptions) (*unstructured.Unstructured, error) {
	if err := h.hook(ctx, "apply status of "+h.what); err != nil {
		return nil, err
	}
	return h.ri.ApplyStatus(ctx, name, obj, o)
}
