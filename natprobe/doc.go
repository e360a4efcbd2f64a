// Package natprobe discovers NAT behaviour with RFC 5780 STUN tests, serves
// those tests, and predicts from two results whether ICE will form a direct
// path.
//
// The wire format is github.com/pion/stun/v3; the codec owns no socket. The
// prober opens its own unconnected UDP sockets through a Network (so the
// sockets can live in another network namespace), runs every behaviour test
// on a fresh socket, all at once after the basic binding, and accepts a
// reply only when its transaction ID matches, its source is the address the
// test expects and its RESPONSE-ORIGIN (when present) agrees. It measures
// the round trip on the first replies and sizes every wait from it
// (rtt.go): a test whose answer may rightly be silence sends several
// requests, and its silence counts only when a control binding on the same
// socket answers first (silent.go). A verdict is never read from silence
// alone, and a result the evidence does not decide is "unknown".
//
// Predict (ice.go) reads two probe reports for each check order; Summarize
// (check.go) reads one against typical client NATs. TURNCheck (turn.go)
// allocates a relay with github.com/pion/turn/v4 and sends data through it
// to a peer socket of its own and back.
//
// The server answers Binding requests on two addresses times two ports
// (CHANGE-REQUEST, RESPONSE-PORT, RESPONSE-ORIGIN, OTHER-ADDRESS,
// MAPPED-ADDRESS and XOR-MAPPED-ADDRESS), rate-limits each source (with a
// hard cap on the sources it tracks, limiter.go) and never sends to an
// address other than the request's source IP. With a
// single address it follows RFC 5780 section 6: no OTHER-ADDRESS and error
// 420 to CHANGE-REQUEST.
package natprobe
