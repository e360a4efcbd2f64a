package macvlan

import "testing"

// SetShimCreateHook makes f run inside EnsureShim between its lookup of
// the shim and its create, where a concurrent process may create it, until
// t ends.
func SetShimCreateHook(t testing.TB, f func()) {
	old := testHookShimCreate
	testHookShimCreate = f
	t.Cleanup(func() { testHookShimCreate = old })
}
