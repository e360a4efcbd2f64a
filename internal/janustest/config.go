package janustest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// The Streaming plugin's mountpoint: PCMU audio on feedPort, fed by
// rtpfeed inside the container every 20 ms.
const (
	MountpointID = 1
	feedPort     = 5002
	feedPortStr  = "5002"
	// PacketInterval is rtpfeed's (and the client's) packet interval in
	// milliseconds: 50 packets a second, as G.711 at 20 ms.
	PacketInterval = 20
)

// Config is one Janus instance's configuration.
type Config struct {
	// HTTPPort is the HTTP API's port (path /janus).
	HTTPPort int
	// Sections are the janus.jcfg sections that differ between
	// placements, verbatim: media (rtp_port_range) and nat (stun_server,
	// turn_server, nat_1_1_mapping, ice_enforce_list ...). For a medianet
	// network they are exactly docs/media-servers.md's Janus block.
	Sections string
}

// Write fills dir with janus.jcfg, the HTTP transport's configuration and
// the plugins' configurations (the Streaming mountpoint).
func (c Config) Write(dir string) error {
	if c.HTTPPort <= 0 || c.HTTPPort > 65535 {
		return fmt.Errorf("janustest: config: HTTPPort %d is not a port", c.HTTPPort)
	}
	files := map[string]string{
		"janus.jcfg": `general: {
	configs_folder = "` + ConfDir + `"
	plugins_folder = "` + moduleDir + `/plugins"
	transports_folder = "` + moduleDir + `/transports"
	events_folder = "/nonexistent"
	loggers_folder = "/nonexistent"
	debug_level = 4
	debug_timestamps = true
}
` + c.Sections + `
plugins: {
}
transports: {
}
events: {
}
loggers: {
}
`,
		"janus.transport.http.jcfg": `general: {
	json = "compact"
	base_path = "/janus"
	http = true
	port = ` + strconv.Itoa(c.HTTPPort) + `
	https = false
}
admin: {
	admin_http = false
}
cors: {
}
`,
		"janus.plugin.echotest.jcfg": "general: {\n}\n",
		"janus.plugin.streaming.jcfg": `general: {
}
feed: {
	type = "rtp"
	id = ` + strconv.Itoa(MountpointID) + `
	description = "PCMU from rtpfeed inside the container"
	audio = true
	video = false
	audioport = ` + feedPortStr + `
	audiopt = 0
	audiocodec = "pcmu"
}
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("janustest: write %s: %w", name, err)
		}
	}
	return nil
}
