package dhcp

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Series of the DHCP leases (docs/design.md, Metrics).
const (
	// MetricLeaseExpiry: when each held lease ends unless renewed
	// (Unix seconds); labels network, container, ifname, address, server, state.
	MetricLeaseExpiry = "medianet_dhcp_lease_expiry_timestamp_seconds"
)

// Collector returns a collector of the Manager's leases, read at scrape time.
func (m *Manager) Collector() prometheus.Collector { return &collector{m: m} }

type collector struct{ m *Manager }

var expiryDesc = prometheus.NewDesc(MetricLeaseExpiry,
	"When each DHCP lease the node agent holds ends unless renewed (state expired: it ended, and its address was removed).",
	[]string{"network", "container", "ifname", "address", "server", "state"}, nil)

func (c *collector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ls, err := c.m.List("")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(expiryDesc, err)
		return
	}
	for _, l := range ls {
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(l.Expires.Unix()),
			l.Network, l.ContainerID, l.IfName, l.Address, l.Server, l.State)
	}
}
