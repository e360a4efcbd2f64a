package cni

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/medianet/medianet/ipam"
)

func TestParseConflict(t *testing.T) {
	for _, tc := range []struct {
		name, keys string
		want       Conflict
		wantErr    string // a field name the error must name
	}{
		{"defaults", ``, Conflict{Check: DefaultConflictCheck, Retry: DefaultConflictRetry}, ""},
		{"off", `"conflictCheck": "0"`, Conflict{Check: 0, Retry: DefaultConflictRetry}, ""},
		{"off as 0s", `"conflictCheck": "0s"`, Conflict{Check: 0, Retry: DefaultConflictRetry}, ""},
		{"set", `"conflictCheck": "500ms", "conflictRetry": "1h"`, Conflict{Check: 500 * time.Millisecond, Retry: time.Hour}, ""},
		{"negative", `"conflictCheck": "-1s"`, Conflict{}, "ipam.conflictCheck"},
		{"too long", `"conflictCheck": "1m"`, Conflict{}, "ipam.conflictCheck"},
		{"not a duration", `"conflictCheck": "fast"`, Conflict{}, "ipam.conflictCheck"},
		{"retry too short", `"conflictRetry": "10ms"`, Conflict{}, "ipam.conflictRetry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := tc.keys
			if keys != "" {
				keys = ", " + keys
			}
			conf := `{"cniVersion":"1.1.0","name":"media","type":"medianet","ipam":{"type":"medianet-ipam","subnet":"10.9.0.0/24"` + keys + `}}`
			c, err := ParseMainConfig([]byte(conf))
			if tc.wantErr != "" {
				if !errors.Is(err, ipam.ErrConfig) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want a configuration error naming %s", err, tc.wantErr)
				}
				if e := MainError(err); e.Code != 7 {
					t.Errorf("CNI code %d, want 7", e.Code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Conflict != tc.want || c.IPAM.Conflict != tc.want {
				t.Errorf("conflict %+v (ipam %+v), want %+v", c.Conflict, c.IPAM.Conflict, tc.want)
			}
		})
	}
}

func TestConflictErrorCode(t *testing.T) {
	err := ipam.ConflictError("media", ConflictTries, []ipam.Conflict{{Addr: netip.MustParseAddr("10.9.0.2"), MAC: []byte{2, 0, 0, 0, 0, 1}}})
	e := MainError(err)
	if e.Code != CodeConflict || !strings.Contains(e.Msg, "02:00:00:00:00:01") || !strings.Contains(e.Msg, "10.9.0.2") {
		t.Fatalf("error %d %q, want %d naming the address and the MAC", e.Code, e.Msg, CodeConflict)
	}
}
