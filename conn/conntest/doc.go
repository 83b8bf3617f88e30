// Package conntest runs golang.org/x/net/nettest's conformance suite over
// package conn: in one process, and with the two ends of each stream in two
// processes. It is a module of its own so that the library's go.mod does
// not gain x/net.
package conntest
