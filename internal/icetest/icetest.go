// Package icetest runs real ICE sessions between two pion/ice agents
// (github.com/pion/ice/v4), each a child process inside a network
// namespace, with host and server-reflexive candidates over UDP and a STUN
// server of the caller's choice. The child is the test binary itself,
// started again with an environment that makes MaybeRunAgent (called first
// in TestMain) run the agent instead of the tests.
//
// The harness is the signalling channel: it hands each agent the other's
// credentials and candidates, and decides which agent gets them first.
// That agent starts its connectivity checks first; the other starts after
// a delay. In WebRTC the answerer receives the offer with the offerer's
// candidates and so usually checks first (AnswererFirst); with trickle
// ICE the offerer can get the answerer's candidates first (OffererFirst).
package icetest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Description is an agent's credentials and gathered candidates.
type Description struct {
	Ufrag, Pwd string
	Candidates []string
}

// Agent is a running agent process.
type Agent struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	msgs   chan message
	stderr *syncBuffer
	Desc   Description
}

// syncBuffer collects a child's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// Start runs an agent in namespace ns (a name under /run/netns) and waits
// until it has gathered its candidates from stunURI ("stun:IP:PORT").
// timeout bounds its checks once it has the peer's description.
func Start(ns string, controlling bool, stunURI string, timeout time.Duration) (*Agent, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ctl := "0"
	if controlling {
		ctl = "1"
	}
	a := &Agent{cmd: exec.Command("ip", "netns", "exec", ns, exe), msgs: make(chan message, 64), stderr: &syncBuffer{}}
	a.cmd.Env = append(os.Environ(), envAgent+"=1", envControlling+"="+ctl, envSTUN+"="+stunURI, envTimeout+"="+timeout.String())
	a.cmd.Stderr = a.stderr
	if a.stdin, err = a.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := a.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("icetest: start agent in %s: %w", ns, err)
	}
	go func() {
		defer close(a.msgs)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m message
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				a.msgs <- m
			}
		}
	}()
	if err := a.gather(10 * time.Second); err != nil {
		a.Kill()
		return nil, fmt.Errorf("icetest: agent in %s: %w (stderr: %s)", ns, err, a.stderr.String())
	}
	return a, nil
}

func (a *Agent) gather(limit time.Duration) error {
	deadline := time.After(limit)
	for {
		select {
		case m, ok := <-a.msgs:
			switch {
			case !ok:
				return errors.New("exited while gathering")
			case m.Ufrag != "":
				a.Desc.Ufrag, a.Desc.Pwd = m.Ufrag, m.Pwd
			case m.Candidate != "":
				a.Desc.Candidates = append(a.Desc.Candidates, m.Candidate)
			case m.Gathered:
				return nil
			}
		case <-deadline:
			return fmt.Errorf("not gathered after %v", limit)
		}
	}
}

// Connect gives the agent its peer's description: it starts its checks.
func (a *Agent) Connect(peer Description) error {
	return json.NewEncoder(a.stdin).Encode(message{Ufrag: peer.Ufrag, Pwd: peer.Pwd, Candidates: peer.Candidates})
}

// Wait returns the agent's result and reaps the process.
func (a *Agent) Wait(limit time.Duration) (Result, error) {
	defer a.Kill()
	deadline := time.After(limit)
	for {
		select {
		case m, ok := <-a.msgs:
			if !ok {
				return Result{}, fmt.Errorf("icetest: agent exited without a result: %s", a.stderr.String())
			}
			if m.Result != nil {
				return *m.Result, nil
			}
		case <-deadline:
			return Result{}, fmt.Errorf("icetest: no result after %v", limit)
		}
	}
}

// Kill ends the agent process and waits for it.
func (a *Agent) Kill() {
	if a.cmd.Process != nil {
		a.cmd.Process.Kill()
		a.cmd.Wait()
	}
}

// Order says which agent's checks go out first.
type Order int

const (
	// AnswererFirst: the answerer gets the offer first (WebRTC's usual order).
	AnswererFirst Order = iota
	// OffererFirst: the offerer gets the answer first (trickle ICE can do this).
	OffererFirst
)

func (o Order) String() string {
	if o == OffererFirst {
		return "offerer-first"
	}
	return "answerer-first"
}

// Outcome of a session.
type Outcome struct {
	Offerer, Answerer Result
}

// Direct is true when both agents selected a pair and received the
// other's data over it.
func (o Outcome) Direct() bool {
	return o.Offerer.Connected && o.Answerer.Connected && o.Offerer.DataReceived && o.Answerer.DataReceived
}

// Session runs one ICE session: the offerer (controlling) in offerNS, the
// answerer in answerNS. The first agent of order gets its peer's
// description at once, the other after delay; each gives up after timeout.
func Session(offerNS, answerNS, stunURI string, order Order, delay, timeout time.Duration) (Outcome, error) {
	var offer, answer *Agent
	var errO, errA error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); offer, errO = Start(offerNS, true, stunURI, timeout) }()
	go func() { defer wg.Done(); answer, errA = Start(answerNS, false, stunURI, timeout) }()
	wg.Wait()
	if err := errors.Join(errO, errA); err != nil {
		for _, a := range []*Agent{offer, answer} {
			if a != nil {
				a.Kill()
			}
		}
		return Outcome{}, err
	}
	first, second := answer, offer
	if order == OffererFirst {
		first, second = offer, answer
	}
	if err := first.Connect(second.Desc); err != nil {
		return Outcome{}, err
	}
	time.Sleep(delay)
	if err := second.Connect(first.Desc); err != nil {
		return Outcome{}, err
	}
	var out Outcome
	limit := timeout + delay + 5*time.Second
	wg.Add(2)
	go func() { defer wg.Done(); out.Offerer, errO = offer.Wait(limit) }()
	go func() { defer wg.Done(); out.Answerer, errA = answer.Wait(limit) }()
	wg.Wait()
	return out, errors.Join(errO, errA)
}
