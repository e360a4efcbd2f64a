// Command testsummary runs `go test -json` and makes its stream readable,
// counts skipped tests with their reasons, and, in strict mode, fails the
// run for a skip that the allow-list does not name. The Makefile runs every
// test command through it; .ci/run turns strict mode on.
//
//	testsummary [-strict] [-allow FILE] [-record FILE] -- go test -json ...
//	testsummary -report FILE...
//
// The first form prints one line per package (as `go test` does), the full
// output of every failed test as it fails (and of the tests still running
// when a package fails: a timeout or a panic), then the run's count of
// passed, failed and skipped tests and each skip's message. It exits 1 when
// the command fails, a test fails, or (strict) a test skips without an
// allow-list entry; -record writes the run's results as JSON for -report.
//
// The second form reads recorded runs and prints their combined totals and
// the skips grouped by reason: what `make test` ends with.
//
// # Allow-list
//
// Strict mode is for CI, which installs every peer the tests need: there a
// skip means a missing package or a broken harness, except for what the
// machine cannot have (a kernel feature). Those skips are listed in one
// file (.ci/allowed-skips), one per line:
//
//	REGEXP -- why CI cannot provide it
//
// REGEXP (Go syntax) is matched against "<package>.<Test>: <message>", the
// message being the test's last log entry (the Skip call's text, with its
// file:line). Empty lines and lines starting with # are comments. A line
// without a reason is an error. Strict mode is on with -strict or with the
// environment variable MEDIANET_STRICT_SKIPS=1.
package main
