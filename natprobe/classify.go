package natprobe

// Advice lines; the CLI prints them as the last lines of its report.
const (
	adviceAnnounce   = "announce the public IP to the media server (e.g. Janus nat_1_1_mapping, mediasoup announcedAddress) so its host candidate is reachable"
	adviceDedicated  = "give the media server a dedicated IP with no NAT in front of it (a medianet macvlan network)"
	adviceDropNew    = "on the NAT box drop unsolicited inbound UDP: iptables -I INPUT -i <wan> -p udp -m conntrack --ctstate NEW -j DROP (stops the port remap when a peer's packet arrives first)"
	adviceAnswerer   = "make the media server the answerer (let the client send the offer) so that its checks go out first; this holds only when the client's offer already carries its server-reflexive candidate (no trickle ICE on the client's side) and the answer takes long enough to reach the client: Janus 1.1.2 starts its checks as it sends its answer, 20 ms apart, and behind Docker's NAT, when the client applied the answer within 20 ms the call failed in 11 of 18 calls (the client checked first), while with 60 ms or more of signalling delay 26 of 27 calls connected (40 ms: 8 of 9; test/media); with trickle ICE or a fast signalling path the client may check first and the call fails (natprobe ice says when the order matters)"
	adviceTURN       = "deploy TURN (e.g. coturn) and give clients its address: direct paths fail for clients behind address-and-port-dependent NATs"
	adviceUDP        = "UDP to the server does not pass: open UDP egress (and replies) on the firewall, or use TURN over TCP/TLS on 443"
	adviceMoreServer = "run the probe against an RFC 5780 server (natprobe serve with two addresses) or give two or more --server to decide"
	adviceALG        = "a device on the path rewrites addresses inside UDP payloads (an ALG): disable it"
	adviceRelay      = "or relay the session through TURN"
)

// classic names the RFC 3489 class of a mapping and filtering pair.
func classic(natPresent bool, mapping, filtering string, varies *bool) string {
	if mapping == AddressDependent || mapping == AddressAndPortDependent || (varies != nil && *varies) {
		return ClassicSymmetric
	}
	if mapping != EndpointIndependent {
		return ClassicUnknown
	}
	switch filtering {
	case EndpointIndependent:
		if !natPresent {
			return ClassicOpen
		}
		return ClassicFullCone
	case AddressDependent:
		return ClassicRestrictedCone
	case AddressAndPortDependent:
		return ClassicPortRestrictedCone
	}
	if !natPresent {
		return ClassicOpen
	}
	return ClassicUnknown
}

// decide fills Classic, Verdict and Advice from the measured fields.
func decide(r *Report) {
	r.Advice = []string{}
	r.Classic = classic(r.NATPresent, r.Mapping, r.Filtering, r.MappingVariesByDestination)
	remaps := r.UnsolicitedInboundRemaps != nil && *r.UnsolicitedInboundRemaps
	symmetric := r.Classic == ClassicSymmetric
	switch {
	case !r.NATPresent && r.Filtering != AddressAndPortDependent:
		r.Verdict = VerdictOK
	case symmetric:
		r.Verdict = VerdictNeedsTURN
		r.Advice = append(r.Advice, adviceDedicated, adviceTURN)
	case r.Mapping == EndpointIndependent && (r.Filtering == EndpointIndependent || r.Filtering == AddressDependent):
		r.Verdict = VerdictOK
		if r.NATPresent {
			r.Advice = append(r.Advice, adviceAnnounce)
		}
	case r.Mapping == EndpointIndependent && r.Filtering == AddressAndPortDependent:
		r.Verdict = VerdictNeedsTURN
		if r.NATPresent {
			r.Advice = append(r.Advice, adviceDedicated, adviceAnnounce)
		}
		if remaps {
			r.Advice = append(r.Advice, adviceDropNew, adviceAnswerer)
		}
		r.Advice = append(r.Advice, adviceTURN)
	default:
		r.Verdict = VerdictUnknown
		r.Advice = append(r.Advice, adviceMoreServer)
	}
	if r.ALG {
		r.Advice = append(r.Advice, adviceALG)
	}
}

// blocked fills a report for a probe no server answered.
func blocked(r *Report) {
	r.Advice = []string{}
	r.Mapping, r.Filtering = Unknown, Unknown
	r.Classic = ClassicUDPBlocked
	r.Verdict = VerdictBlocked
	r.Advice = append(r.Advice, adviceUDP)
}
