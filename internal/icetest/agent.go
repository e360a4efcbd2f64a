package icetest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/stun/v4"
)

// Environment of the agent process (set by Start).
const (
	envAgent       = "MEDIANET_ICETEST_AGENT"
	envControlling = "MEDIANET_ICETEST_CONTROLLING"
	envSTUN        = "MEDIANET_ICETEST_STUN"
	envTimeout     = "MEDIANET_ICETEST_TIMEOUT"
)

// message is one JSON line between the harness and an agent.
type message struct {
	Ufrag      string   `json:"ufrag,omitempty"`
	Pwd        string   `json:"pwd,omitempty"`
	Candidate  string   `json:"candidate,omitempty"`
	Candidates []string `json:"candidates,omitempty"`
	Gathered   bool     `json:"gathered,omitempty"`
	Result     *Result  `json:"result,omitempty"`
}

// Result is what an agent saw of its session.
type Result struct {
	// Connected is true when the agent selected a candidate pair.
	Connected bool `json:"connected"`
	// DataReceived is true when application data from the peer arrived
	// over the selected pair.
	DataReceived bool `json:"dataReceived"`
	// Local and Remote describe the selected pair ("srflx 198.18.0.1:4000").
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
	// Ms is the time from the start of the checks to the selected pair.
	Ms    int64  `json:"ms"`
	Error string `json:"error,omitempty"`
}

// MaybeRunAgent runs the agent and exits when the process was started as
// one (by Start); call it first in TestMain.
func MaybeRunAgent() {
	if os.Getenv(envAgent) != "1" {
		return
	}
	if err := runAgent(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "icetest agent:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// lineWriter writes JSON lines from several goroutines.
type lineWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (w *lineWriter) send(m message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.enc.Encode(m)
}

func newAgent() (*ice.Agent, error) {
	uri, err := stun.ParseURI(os.Getenv(envSTUN))
	if err != nil {
		return nil, fmt.Errorf("stun uri: %w", err)
	}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	return ice.NewAgentWithOptions(
		ice.WithNetworkTypes([]ice.NetworkType{ice.NetworkTypeUDP4}),
		ice.WithCandidateTypes([]ice.CandidateType{ice.CandidateTypeHost, ice.CandidateTypeServerReflexive}),
		ice.WithUrls([]*stun.URI{uri}),
		ice.WithMulticastDNSMode(ice.MulticastDNSModeDisabled),
		ice.WithSTUNGatherTimeout(2*time.Second),
		ice.WithLoggerFactory(lf),
	)
}

// runAgent gathers, prints its description, reads the peer's, runs the
// checks in its role, exchanges data and prints the result.
func runAgent(in io.Reader, out io.Writer) error {
	controlling := os.Getenv(envControlling) == "1"
	timeout, err := time.ParseDuration(os.Getenv(envTimeout))
	if err != nil {
		return fmt.Errorf("%s: %w", envTimeout, err)
	}
	w := &lineWriter{enc: json.NewEncoder(out)}
	agent, err := newAgent()
	if err != nil {
		return err
	}
	defer agent.Close()
	if err := agent.OnCandidate(func(c ice.Candidate) {
		if c == nil {
			w.send(message{Gathered: true})
			return
		}
		w.send(message{Candidate: c.Marshal()})
	}); err != nil {
		return err
	}
	ufrag, pwd, err := agent.GetLocalUserCredentials()
	if err != nil {
		return err
	}
	w.send(message{Ufrag: ufrag, Pwd: pwd})
	if err := agent.GatherCandidates(); err != nil {
		return err
	}
	var remote message
	if err := json.NewDecoder(bufio.NewReader(in)).Decode(&remote); err != nil {
		return fmt.Errorf("read remote description: %w", err)
	}
	for _, raw := range remote.Candidates {
		c, err := ice.UnmarshalCandidate(raw)
		if err != nil {
			return fmt.Errorf("remote candidate %q: %w", raw, err)
		}
		if err := agent.AddRemoteCandidate(c); err != nil {
			return err
		}
	}
	res := connect(agent, controlling, remote, timeout)
	w.send(message{Result: &res})
	return nil
}

// connect runs the checks and, once a pair is selected, sends data every
// 20 ms until the peer's data arrives (and a little longer, so the peer
// gets ours too) or the timeout passes.
func connect(agent *ice.Agent, controlling bool, remote message, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	var conn *ice.Conn
	var err error
	if controlling {
		conn, err = agent.Dial(ctx, remote.Ufrag, remote.Pwd)
	} else {
		conn, err = agent.Accept(ctx, remote.Ufrag, remote.Pwd)
	}
	if err != nil {
		return Result{Error: err.Error(), Ms: time.Since(start).Milliseconds()}
	}
	res := Result{Connected: true, Ms: time.Since(start).Milliseconds()}
	if p, err := agent.GetSelectedCandidatePair(); err == nil && p != nil {
		res.Local = p.Local.Type().String() + " " + p.Local.Address() + ":" + strconv.Itoa(p.Local.Port())
		res.Remote = p.Remote.Type().String() + " " + p.Remote.Address() + ":" + strconv.Itoa(p.Remote.Port())
	}
	got := make(chan struct{})
	go func() {
		buf := make([]byte, 1500)
		if _, err := conn.Read(buf); err == nil {
			close(got)
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		conn.Write([]byte("icetest data"))
		select {
		case <-got:
			res.DataReceived = true
			linger := time.After(500 * time.Millisecond)
			for {
				select {
				case <-linger:
					return res
				case <-tick.C:
					conn.Write([]byte("icetest data"))
				}
			}
		case <-ctx.Done():
			res.Error = "connected but no data from the peer before the timeout"
			return res
		case <-tick.C:
		}
	}
}
