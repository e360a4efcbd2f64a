package simnode

import (
	"net/netip"
	"testing"
)

func TestOverlaps(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name string
		held []heldBlock
		want int
	}{
		{"disjoint", []heldBlock{{p("10.0.0.64/26"), "b"}, {p("10.0.0.0/26"), "a"}}, 0},
		{"same block", []heldBlock{{p("10.0.0.0/26"), "a"}, {p("10.0.0.0/26"), "b"}}, 1},
		{"nested, not neighbours", []heldBlock{{p("10.0.0.0/24"), "a"}, {p("10.0.0.0/28"), "b"}, {p("10.0.0.128/26"), "c"}}, 1},
		{"nested later", []heldBlock{{p("10.0.1.0/26"), "c"}, {p("10.0.0.0/23"), "a"}}, 1},
		{"families apart", []heldBlock{{p("10.0.0.0/26"), "a"}, {p("fd00::/120"), "b"}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := overlaps(tt.held); len(got) != tt.want {
				t.Errorf("got %d errors %v, want %d", len(got), got, tt.want)
			}
		})
	}
}
