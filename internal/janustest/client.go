package janustest

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Mode says who sends the offer.
type Mode string

const (
	// JanusOffers watches the Streaming mountpoint: Janus offers, the
	// client answers (and so usually sends the first checks).
	JanusOffers Mode = "janus-offers"
	// ClientOffers calls the EchoTest: the client offers, Janus answers
	// and starts its checks as it sends the answer.
	ClientOffers Mode = "client-offers"
	// Info only asks Janus's /info (is the HTTP API up?).
	Info Mode = "info"
)

// Call describes one call from the client.
type Call struct {
	URL  string // Janus's HTTP API, http://IP:PORT/janus
	Mode Mode
	STUN string // the client's STUN server, stun:IP:PORT ("" for none)
	// AnswerDelay holds Janus's answer this long before the client
	// applies it (ClientOffers): signalling delay, as a slow network or
	// application server adds.
	AnswerDelay time.Duration
	// Connect bounds the wait for ICE to connect.
	Connect time.Duration
	// Media is how long RTP is counted once connected.
	Media time.Duration
}

// Result is what the client saw.
type Result struct {
	Connected bool   `json:"connected"`
	ICEState  string `json:"iceState"` // the last ICE connection state
	// ConnectedMs is the time from applying the remote description to
	// ICE connected; FirstRTPMs from the call's start (session create) to
	// the first RTP packet.
	ConnectedMs float64 `json:"connectedMs"`
	FirstRTPMs  float64 `json:"firstRtpMs"`
	// LocalType and RemoteType are the selected pair's candidate types
	// (host, srflx, prflx, relay); Local and Remote their addresses.
	LocalType  string `json:"localType,omitempty"`
	RemoteType string `json:"remoteType,omitempty"`
	Local      string `json:"local,omitempty"`
	Remote     string `json:"remote,omitempty"`
	// Packets were received in the media window; Expected is the span of
	// their sequence numbers; Loss = 1 - Packets/Expected.
	Packets  int     `json:"packets"`
	Expected int     `json:"expected"`
	Loss     float64 `json:"loss"`
	JitterMs float64 `json:"jitterMs"` // RFC 3550 interarrival jitter at the end
	Error    string  `json:"error,omitempty"`
	// RemoteCandidates are the candidates of Janus's SDP.
	RemoteCandidates []string `json:"remoteCandidates,omitempty"`
}

// Pair is the selected pair as "localType->remoteType".
func (r Result) Pair() string {
	if !r.Connected {
		return "none"
	}
	return r.LocalType + "->" + r.RemoteType
}

// stats counts RTP packets with RFC 3550's jitter estimate, in a window
// that opens at the first packet after counting is switched on.
type stats struct {
	mu             sync.Mutex
	first          time.Time // the first packet at all
	counting       bool
	window         time.Duration
	opened         time.Time // the first counted packet
	started        chan struct{}
	n              int
	minSeq, maxSeq int64 // extended sequence numbers
	lastSeq        uint16
	cycles         int64
	jitter         float64 // in timestamp units
	lastTransit    float64
	haveTransit    bool
}

func (s *stats) add(p *rtp.Packet, at time.Time, clock float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first.IsZero() {
		s.first = at
	}
	if !s.counting {
		return
	}
	if s.opened.IsZero() {
		s.opened = at
		close(s.started)
	}
	if at.Sub(s.opened) > s.window {
		return
	}
	if s.n > 0 && p.SequenceNumber < s.lastSeq && s.lastSeq-p.SequenceNumber > 0x8000 {
		s.cycles += 1 << 16
	}
	ext := s.cycles + int64(p.SequenceNumber)
	if s.n == 0 || ext < s.minSeq {
		s.minSeq = ext
	}
	if s.n == 0 || ext > s.maxSeq {
		s.maxSeq = ext
	}
	s.lastSeq = p.SequenceNumber
	s.n++
	transit := float64(at.UnixNano())/1e9*clock - float64(p.Timestamp)
	if s.haveTransit {
		s.jitter += (math.Abs(transit-s.lastTransit) - s.jitter) / 16
	}
	s.lastTransit, s.haveTransit = transit, true
}

func newPeer() (*webrtc.PeerConnection, error) {
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICETimeouts(3*time.Second, 6*time.Second, time.Second)
	se.SetIncludeLoopbackCandidate(false)
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000},
		PayloadType:        0,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(m))
	return api.NewPeerConnection(webrtc.Configuration{})
}

// run makes the call and returns what happened; errors of the call
// itself (Janus unreachable, a bad reply) are in Result.Error.
func run(c Call) Result {
	var res Result
	if err := c.run(&res); err != nil {
		res.Error = err.Error()
	}
	return res
}

func (c Call) run(res *Result) error {
	if c.Mode == Info {
		return info(c.URL)
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j := &api{base: c.URL, http: &http.Client{Timeout: 40 * time.Second}}
	plugin := "janus.plugin.streaming"
	if c.Mode == ClientOffers {
		plugin = "janus.plugin.echotest"
	}
	if err := j.open(ctx, plugin); err != nil {
		return err
	}
	defer j.destroy()
	pc, err := c.peer()
	if err != nil {
		return err
	}
	defer pc.Close()
	st := &stats{window: c.Media, started: make(chan struct{})}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		clock := float64(tr.Codec().ClockRate)
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			st.add(p, time.Now(), clock)
		}
	})
	connected := make(chan struct{})
	var once sync.Once
	var stateMu sync.Mutex
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		stateMu.Lock()
		res.ICEState = s.String()
		stateMu.Unlock()
		if s == webrtc.ICEConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	applied, err := c.negotiate(ctx, j, pc)
	if rd := pc.RemoteDescription(); rd != nil {
		for line := range strings.SplitSeq(rd.SDP, "\n") {
			if strings.HasPrefix(line, "a=candidate:") {
				res.RemoteCandidates = append(res.RemoteCandidates, strings.TrimSpace(strings.TrimPrefix(line, "a=candidate:")))
			}
		}
	}
	if err != nil {
		return err
	}
	select {
	case <-connected:
		res.Connected = true
		res.ConnectedMs = ms(time.Since(applied))
	case <-time.After(c.Connect):
	}
	stateMu.Lock()
	state := res.ICEState
	stateMu.Unlock()
	if !res.Connected {
		res.ICEState = state
		return nil
	}
	if pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair(); err == nil && pair != nil {
		res.LocalType, res.RemoteType = pair.Local.Typ.String(), pair.Remote.Typ.String()
		res.Local = fmt.Sprintf("%s:%d", pair.Local.Address, pair.Local.Port)
		res.Remote = fmt.Sprintf("%s:%d", pair.Remote.Address, pair.Remote.Port)
	}
	st.mu.Lock()
	st.counting = true
	st.mu.Unlock()
	select { // the window opens at the first packet (after DTLS and SRTP)
	case <-st.started:
		time.Sleep(c.Media) // the measurement window itself
	case <-time.After(c.Connect):
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.counting = false
	res.ICEState = state
	if !st.first.IsZero() {
		res.FirstRTPMs = ms(st.first.Sub(start))
	}
	res.Packets = st.n
	if st.n > 0 {
		res.Expected = int(st.maxSeq - st.minSeq + 1)
		res.Loss = 1 - float64(st.n)/float64(res.Expected)
		res.JitterMs = st.jitter / 8 // PCMU: 8 timestamp units a millisecond
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (c Call) peer() (*webrtc.PeerConnection, error) {
	pc, err := newPeer()
	if err != nil {
		return nil, err
	}
	if c.STUN != "" {
		if err := pc.SetConfiguration(webrtc.Configuration{ICEServers: []webrtc.ICEServer{{URLs: []string{c.STUN}}}}); err != nil {
			pc.Close()
			return nil, err
		}
	}
	return pc, nil
}

// negotiate runs the offer/answer exchange of c.Mode without trickle
// (every candidate in the SDP) and returns when the client applied the
// remote description, the moment its ICE agent may start checking.
func (c Call) negotiate(ctx context.Context, j *api, pc *webrtc.PeerConnection) (time.Time, error) {
	noTrickle := false
	if c.Mode == JanusOffers {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return time.Time{}, err
		}
		if err := j.message(ctx, map[string]any{"request": "watch", "id": MountpointID}, nil); err != nil {
			return time.Time{}, err
		}
		offer, err := j.waitJSEP(ctx, "offer", 20*time.Second)
		if err != nil {
			return time.Time{}, err
		}
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer.SDP}); err != nil {
			return time.Time{}, fmt.Errorf("apply Janus's offer: %w", err)
		}
		applied := time.Now()
		local, err := c.localDescription(pc, func() (webrtc.SessionDescription, error) { return pc.CreateAnswer(nil) })
		if err != nil {
			return time.Time{}, err
		}
		return applied, j.message(ctx, map[string]any{"request": "start"}, &jsep{Type: "answer", SDP: local.SDP, Trickle: &noTrickle})
	}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, "audio", "client")
	if err != nil {
		return time.Time{}, err
	}
	if _, err := pc.AddTrack(track); err != nil {
		return time.Time{}, err
	}
	go send(ctx, track)
	local, err := c.localDescription(pc, func() (webrtc.SessionDescription, error) { return pc.CreateOffer(nil) })
	if err != nil {
		return time.Time{}, err
	}
	if err := j.message(ctx, map[string]any{"audio": true, "video": false}, &jsep{Type: "offer", SDP: local.SDP, Trickle: &noTrickle}); err != nil {
		return time.Time{}, err
	}
	answer, err := j.waitJSEP(ctx, "answer", 20*time.Second)
	if err != nil {
		return time.Time{}, err
	}
	if c.AnswerDelay > 0 {
		time.Sleep(c.AnswerDelay) // the signalling delay under test
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer.SDP}); err != nil {
		return time.Time{}, fmt.Errorf("apply Janus's answer: %w", err)
	}
	return time.Now(), nil
}

// localDescription creates the offer or answer and waits for gathering
// to complete, so the SDP carries every candidate.
func (c Call) localDescription(pc *webrtc.PeerConnection, create func() (webrtc.SessionDescription, error)) (*webrtc.SessionDescription, error) {
	d, err := create()
	if err != nil {
		return nil, err
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(d); err != nil {
		return nil, err
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("candidate gathering did not complete within 10s")
	}
	return pc.LocalDescription(), nil
}

// send writes one PCMU packet every PacketInterval ms to the EchoTest
// until ctx ends (pion drops them until the track is bound).
func send(ctx context.Context, track *webrtc.TrackLocalStaticRTP) {
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = 0xff
	}
	p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 0x4d454449}, Payload: payload}
	tick := time.NewTicker(PacketInterval * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			track.WriteRTP(p)
			p.SequenceNumber++
			p.Timestamp += 160
		}
	}
}

// info asks Janus's /info once.
func info(url string) error {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(url + "/info")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/info: %s", url, resp.Status)
	}
	return nil
}
