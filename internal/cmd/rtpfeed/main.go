// Command rtpfeed sends RTP at a fixed rate to one UDP address: PCMU
// (payload type 0), 160 bytes of silence every 20 ms by default, as a
// G.711 source does. janustest puts it in the Janus image to feed the
// Streaming plugin's mountpoint from inside the container.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"time"
)

func main() {
	to := flag.String("to", "127.0.0.1:5002", "destination `IP:PORT`")
	pt := flag.Int("pt", 0, "RTP payload type")
	interval := flag.Duration("interval", 20*time.Millisecond, "time between packets")
	size := flag.Int("size", 160, "payload bytes per packet (also the timestamp step)")
	flag.Parse()
	if err := feed(*to, uint8(*pt), *interval, *size); err != nil {
		fmt.Fprintln(os.Stderr, "rtpfeed:", err)
		os.Exit(1)
	}
}

func feed(to string, pt uint8, interval time.Duration, size int) error {
	if interval <= 0 || size <= 0 || size > 1400 {
		return fmt.Errorf("--interval must be positive and --size between 1 and 1400")
	}
	conn, err := net.Dial("udp", to)
	if err != nil {
		return fmt.Errorf("dial %s: %w", to, err)
	}
	pkt := make([]byte, 12+size)
	for i := 12; i < len(pkt); i++ {
		pkt[i] = 0xff // PCMU silence
	}
	pkt[0], pkt[1] = 0x80, pt&0x7f
	seq, ts, ssrc := uint16(rand.Uint32()), rand.Uint32(), rand.Uint32()
	binary.BigEndian.PutUint32(pkt[8:], ssrc)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for range tick.C {
		binary.BigEndian.PutUint16(pkt[2:], seq)
		binary.BigEndian.PutUint32(pkt[4:], ts)
		conn.Write(pkt) // nothing listens until Janus is up: ECONNREFUSED is expected
		seq++
		ts += uint32(size)
	}
	return nil
}
