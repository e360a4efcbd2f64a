package metrics

// Series names. docs/operations.md lists them with their meaning, and
// test/metrics checks that every one of them is served and that the docs'
// alert rules and Grafana dashboard refer only to these.
const (
	// State of the node's IPAM store, read at scrape time; labels
	// network, node, subnet.
	AddressesInUse      = "medianet_ipam_addresses_in_use"
	BlockAddressesFree  = "medianet_ipam_block_addresses_free"
	RangeAddresses      = "medianet_ipam_range_addresses"
	RangeAddressesFree  = "medianet_ipam_range_addresses_free"
	BlocksHeld          = "medianet_ipam_blocks"
	BlocksLost          = "medianet_ipam_blocks_lost"
	StoreScrapeSuccess  = "medianet_ipam_store_scrape_success"
	StoreScrapeDuration = "medianet_ipam_store_scrape_duration_seconds"

	// Events, from the plugins' reports and medianetd's own Docker calls.
	BlockClaims        = "medianet_ipam_block_claims_total"
	BlockClaimFailures = "medianet_ipam_block_claim_failures_total"
	EtcdErrors         = "medianet_ipam_etcd_errors_total"
	AddressConflicts   = "medianet_ipam_address_conflicts_total"

	// The node agent's doctor, per parent link; labels node, link, state.
	ParentState       = "medianet_parent_state"
	Operations        = "medianet_operations_total"
	OperationDuration = "medianet_operation_duration_seconds"
	StoreLockWait     = "medianet_ipam_store_lock_wait_seconds"
	Reports           = "medianet_metrics_reports_total"
	ReportsRefused    = "medianet_metrics_reports_refused_total"
)

// Label names.
const (
	LabelNetwork   = "network"
	LabelNode      = "node"
	LabelSubnet    = "subnet"
	LabelPlugin    = "plugin"
	LabelOperation = "operation"
	LabelCode      = "code"
	LabelSource    = "source"
	LabelResult    = "result"
	LabelReason    = "reason"
	LabelLink      = "link"
	LabelState     = "state"
)

// Sources of etcd errors (label source of EtcdErrors).
const (
	SourcePlugin = "plugin" // a plugin's claims, reported
	SourceAgent  = "agent"  // the agent's read of the claimed blocks at scrape time
)

// Series lists every series name, for documentation checks.
var Series = []string{
	AddressesInUse, BlockAddressesFree, RangeAddresses, RangeAddressesFree,
	BlocksHeld, BlocksLost, StoreScrapeSuccess, StoreScrapeDuration,
	BlockClaims, BlockClaimFailures, EtcdErrors, AddressConflicts, Operations, OperationDuration,
	StoreLockWait, Reports, ReportsRefused, ParentState,
}

// OperationBuckets are the bounds of OperationDuration, in seconds: a CNI
// ADD takes milliseconds; kubelet gives up on a sandbox after minutes.
var OperationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// LockWaitBuckets are the bounds of StoreLockWait, in seconds: zero when
// uncontended, a commit's fsync or two under load, up to the store
// timeout (10 s) when stuck.
var LockWaitBuckets = []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}
