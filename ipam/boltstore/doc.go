// Package boltstore is the embedded default ipam.Store: one bbolt file,
// <dataDir>/ipam.db (mode 0600), one write transaction per allocation.
//
// Concurrency: CNI runtimes exec one plugin process per ADD, in parallel, so
// a Store is opened and closed per operation and holds the file while open.
// Open first takes an exclusive flock on <dataDir>/ipam.lock, polling with a
// short exponential backoff (1 ms doubling to 32 ms) up to Options.Timeout,
// then opens bbolt with a bounded timeout of its own; a timeout in either
// step is ipam.ErrBusy ("try again later"). The kernel drops the lock when a
// process dies, even by SIGKILL, and bbolt's copy-on-write pages make a
// killed writer's transaction vanish whole. Allocations never use
// bolt.Batch, whose function may run twice.
//
// Layout (schema version 1, key "schema" in bucket "meta"): bucket "nets"
// holds one bucket per network with
//
//	alloc   containerID "\x00" ifname -> JSON {ips, created}
//	addr    family(4|6) addr-bytes -> containerID "\x00" ifname (reverse index)
//	blocks  family addr-bytes prefix-len -> Used words, Reserved words (LE uint64)
//	avail   same keys as blocks, for blocks with a free address
//	cursor  subnet (text) -> last address handed out (binary)
//
// Finding a free address is a Seek in avail plus a bitmap scan of one
// block: its cost does not grow with the number of allocations.
package boltstore
