// Command http is the net/http example: an HTTP server and client over an
// exipc service (http.Server.Serve on a conn.Listener, an http.Transport
// whose DialContext is conn.Dial).
//
//	http serve -domain httpdemo -service web     # prints "ready", serves until SIGINT
//	http get -domain httpdemo -service web -n 1000 /hello
//
// The handler answers GET /hello with "hello over exipc" and POST /echo
// with the body it got.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/conn"
)

// Handler is the example's HTTP handler.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello over exipc")
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		// Read it all first: an HTTP/1 server stops reading the request
		// once the reply is flushed.
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write(b)
	})
	return mux
}

// Client returns an HTTP client whose connections are exipc streams to
// SERVICE of d, whatever host the URL names.
func Client(d *exipc.Domain, service string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return conn.Dial(ctx, d, service)
		},
		MaxIdleConnsPerHost: 64,
	}}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: http serve|get -domain D -service S [-n N] [PATH]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	domain := fs.String("domain", "httpdemo", "exipc domain")
	service := fs.String("service", "web", "exipc service")
	n := fs.Int("n", 1, "requests (get)")
	fs.Parse(os.Args[2:])
	d, err := exipc.Open(*domain, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	switch os.Args[1] {
	case "serve":
		defer exipc.Unlink(*domain)
		if err := serve(d, *service); err != nil {
			log.Fatal(err)
		}
	case "get":
		path := "/hello"
		if fs.NArg() > 0 {
			path = fs.Arg(0)
		}
		c := Client(d, *service)
		t0 := time.Now()
		var body []byte
		for i := 0; i < *n; i++ {
			resp, err := c.Get("http://" + *service + path)
			if err != nil {
				log.Fatal(err)
			}
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				log.Fatal(err)
			}
		}
		fmt.Printf("%s\n(%d requests in %v)\n", body, *n, time.Since(t0).Round(time.Microsecond))
	default:
		fmt.Fprintln(os.Stderr, "usage: http serve|get ...")
		os.Exit(2)
	}
}

func serve(d *exipc.Domain, service string) error {
	l, err := conn.Listen(d, service)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: Handler()}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; srv.Close() }()
	fmt.Println("ready")
	if err := srv.Serve(l); err != http.ErrServerClosed {
		return err
	}
	return nil
}
