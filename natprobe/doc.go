// Package natprobe discovers NAT behaviour with RFC 5780 STUN tests, serves
// those tests, and predicts from two results whether ICE will form a direct
// path.
//
// The wire format is github.com/pion/stun/v3; the codec owns no socket. The
// prober opens its own unconnected UDP sockets through a Network (so the
// sockets can live in another network namespace), runs every behaviour test
// on a fresh socket, retransmits with backoff from about 100 ms under a total
// bound, and accepts a reply only when its transaction ID matches, its source
// is the address the test expects and its RESPONSE-ORIGIN (when present)
// agrees. A test that receives no reply reports that fact; a verdict is never
// read from silence alone, and a result the evidence does not decide is
// "unknown".
//
// The server answers Binding requests on two addresses times two ports
// (CHANGE-REQUEST, RESPONSE-PORT, RESPONSE-ORIGIN, OTHER-ADDRESS,
// MAPPED-ADDRESS and XOR-MAPPED-ADDRESS), rate-limits each source address
// and never sends to an address other than the request's source IP. With a
// single address it follows RFC 5780 section 6: no OTHER-ADDRESS and error
// 420 to CHANGE-REQUEST.
package natprobe
