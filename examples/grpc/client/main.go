// Command client is the example's gRPC client: it makes -calls unary calls
// and sends -stream messages on a bidirectional stream, checks every reply,
// and prints what it did. The same client speaks exipc, unix or tcp.
//
//	client -net exipc -addr grpcdemo/echo -calls 10000 -stream 10000
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/exipc/exipc/examples/grpc/echo"
)

func main() {
	network := flag.String("net", "exipc", "exipc, unix or tcp")
	addr := flag.String("addr", "grpcdemo/echo", "DOMAIN/SERVICE, a socket path or host:port")
	calls := flag.Int("calls", 10000, "unary calls")
	stream := flag.Int("stream", 10000, "messages on the bidirectional stream")
	size := flag.Int("size", 64, "bytes per message")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	if err := echo.Run(ctx, *network, *addr, *calls, *stream, *size); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d unary calls and %d stream messages of %d B over %s verified in %v\n",
		*calls, *stream, *size, *network, time.Since(t0).Round(time.Millisecond))
}
