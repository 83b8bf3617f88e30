// Package grpcexample is the gRPC example: a server (./server) and a client
// (./client) of the echo service (./echo) over exipc, switchable to a Unix
// socket or TCP. It is a module of its own so that the library's go.mod
// does not gain gRPC.
package grpcexample
