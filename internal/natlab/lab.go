package natlab

import "testing"

// Lab is a World with one site: the client host, its NAT router and the
// server namespace, by name, for natprobe --netns and ip netns exec.
type Lab struct {
	Client, NAT, Server string
	World               *World
	Site                *Site
}

// New builds a lab with a NAT of kind and loss (0 to 1) each way on the
// server's link, removed when t ends.
func New(t testing.TB, kind Kind, loss float64) *Lab {
	t.Helper()
	w := NewWorld(t)
	s := w.AddSite(t, kind)
	if loss > 0 {
		if err := w.AddLoss(loss); err != nil {
			t.Fatal(err)
		}
	}
	return &Lab{Client: s.Host.Name, NAT: s.Router.Name, Server: w.Server.Name, World: w, Site: s}
}
