package janustest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// api is a Janus HTTP API client for one session and one plugin handle.
type api struct {
	base    string // http://IP:PORT/janus
	http    *http.Client
	session uint64
	handle  uint64
	events  chan event
}

// event is one message of the session's long poll.
type event struct {
	Janus  string          `json:"janus"`
	Sender uint64          `json:"sender"`
	Data   json.RawMessage `json:"plugindata"`
	JSEP   *jsep           `json:"jsep"`
	Error  *apiError       `json:"error"`
	Reason string          `json:"reason"`
}

type jsep struct {
	Type    string `json:"type"`
	SDP     string `json:"sdp"`
	Trickle *bool  `json:"trickle,omitempty"`
}

type apiError struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

type reply struct {
	Janus string `json:"janus"`
	Data  struct {
		ID uint64 `json:"id"`
	} `json:"data"`
	Error *apiError `json:"error"`
}

func transaction() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (a *api) post(ctx context.Context, path string, body map[string]any) (reply, error) {
	body["transaction"] = transaction()
	raw, err := json.Marshal(body)
	if err != nil {
		return reply{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+path, bytes.NewReader(raw))
	if err != nil {
		return reply{}, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("janus %s %s: %w", body["janus"], a.base+path, err)
	}
	defer resp.Body.Close()
	var r reply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return reply{}, fmt.Errorf("janus %s: decode reply: %w", body["janus"], err)
	}
	if r.Error != nil {
		return r, fmt.Errorf("janus %s: error %d: %s", body["janus"], r.Error.Code, r.Error.Reason)
	}
	return r, nil
}

// open creates a session, attaches plugin and starts the long poll.
func (a *api) open(ctx context.Context, plugin string) error {
	r, err := a.post(ctx, "", map[string]any{"janus": "create"})
	if err != nil {
		return err
	}
	a.session = r.Data.ID
	if r, err = a.post(ctx, fmt.Sprintf("/%d", a.session), map[string]any{"janus": "attach", "plugin": plugin}); err != nil {
		return err
	}
	a.handle = r.Data.ID
	a.events = make(chan event, 16)
	go a.poll(ctx)
	return nil
}

// poll long-polls the session's events until ctx ends.
func (a *api) poll(ctx context.Context) {
	defer close(a.events)
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/%d?maxev=5", a.base, a.session), nil)
		if err != nil {
			return
		}
		resp, err := a.http.Do(req)
		if err != nil {
			return
		}
		var evs []event
		err = json.NewDecoder(resp.Body).Decode(&evs)
		resp.Body.Close()
		if err != nil {
			continue // a keepalive answers with one object, not a list
		}
		for _, e := range evs {
			select {
			case a.events <- e:
			case <-ctx.Done():
				return
			}
		}
	}
}

// message sends a plugin message with an optional JSEP.
func (a *api) message(ctx context.Context, body map[string]any, j *jsep) error {
	m := map[string]any{"janus": "message", "body": body}
	if j != nil {
		m["jsep"] = j
	}
	_, err := a.post(ctx, fmt.Sprintf("/%d/%d", a.session, a.handle), m)
	return err
}

// waitJSEP waits for the event carrying a JSEP of the given type.
func (a *api) waitJSEP(ctx context.Context, typ string, limit time.Duration) (*jsep, error) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-a.events:
			if !ok {
				return nil, fmt.Errorf("janus: event poll ended before the %s", typ)
			}
			if e.Janus == "hangup" || e.Error != nil {
				return nil, fmt.Errorf("janus: %s while waiting for the %s: %s %+v", e.Janus, typ, e.Reason, e.Error)
			}
			if e.JSEP != nil && e.JSEP.Type == typ {
				return e.JSEP, nil
			}
		case <-timer.C:
			return nil, fmt.Errorf("janus: no %s within %v", typ, limit)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// destroy ends the session (best effort: the test is over).
func (a *api) destroy() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if a.session != 0 {
		a.post(ctx, fmt.Sprintf("/%d", a.session), map[string]any{"janus": "destroy"})
	}
}
