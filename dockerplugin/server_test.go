package dockerplugin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzHandler feeds arbitrary bodies to every call: each must answer 200
// or an error object, never panic or leave a half-made state the next
// call trips over.
func FuzzHandler(f *testing.F) {
	f.Add("IpamDriver.RequestPool", `{"Pool":"10.0.0.0/24","Options":{"block-size":"28"}}`)
	f.Add("NetworkDriver.CreateNetwork", `{"NetworkID":"n","Options":{"com.docker.network.generic":{"parent":"lan0"}}}`)
	f.Add("NetworkDriver.Join", `{"NetworkID":"n","EndpointID":"e"}`)
	f.Add("IpamDriver.RequestAddress", `{"PoolID":"x","Address":"10.0.0.5"}`)
	st, err := openState(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	defer st.close()
	d := newDriver(Config{Scope: ScopeLocal, Node: "n"}, st, &ipamBook{dir: f.TempDir()}, newFakeLinks("lan0"))
	h := Handler(d, nil)
	f.Fuzz(func(t *testing.T, method, body string) {
		w := httptest.NewRecorder()
		r := &http.Request{Method: http.MethodPost, URL: &url.URL{Path: "/" + method}, Header: http.Header{},
			Body: io.NopCloser(strings.NewReader(body))}
		h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusMovedPermanently, http.StatusTemporaryRedirect:
		case http.StatusBadRequest, http.StatusInternalServerError:
			if !strings.Contains(w.Body.String(), `"Err"`) {
				t.Fatalf("%s: status %d without an Err object: %s", method, w.Code, w.Body)
			}
		default:
			t.Fatalf("%s: status %d", method, w.Code)
		}
	})
}
