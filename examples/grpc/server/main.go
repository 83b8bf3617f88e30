// Command server is the example's gRPC server: the echo service on an exipc
// service, a Unix socket or TCP.
//
//	server -net exipc -addr grpcdemo/echo
//	server -net unix -addr /tmp/echo.sock
//	server -net tcp -addr 127.0.0.1:50051
//
// It prints "ready" once it listens and stops on SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/exipc/exipc/examples/grpc/echo"
)

func main() {
	network := flag.String("net", "exipc", "exipc, unix or tcp")
	addr := flag.String("addr", "grpcdemo/echo", "DOMAIN/SERVICE, a socket path or host:port")
	flag.Parse()
	l, release, err := echo.Listen(*network, *addr)
	if err != nil {
		log.Fatal(err)
	}
	defer release()
	s := echo.NewServer()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; s.Stop() }()
	fmt.Println("ready")
	if err := s.Serve(l); err != nil {
		log.Fatal(err)
	}
}
