// Package natsbridge is the engine of exipc-bridge as a library: a Go program
// can export its own services to other hosts, or import theirs, over NATS
// without a bridge process beside it. A bridge here is one exipc domain, one
// NATS connection, any number of exported and imported services, and a link
// per bridged channel; it speaks the wire protocol of exipc-bridge (see
// docs/bridge.md), so either end may be the command or the library.
//
// The local leg still goes through the domain: a Go server exports the
// service it listens on, and clients (Go or C, in this process or another)
// connect to an imported service by name, unchanged.
//
//	b, err := natsbridge.Start(natsbridge.Config{
//		Handle:  d, // the process's open domain (or Domain: "name")
//		URL:     "nats://127.0.0.1:4222",
//		Exports: []string{"pop3store"},
//	})
//	if err != nil { ... }
//	defer b.Close()
package natsbridge

// NATS subjects (P is the prefix, "exipc"):
//
//	P.open.SERVICE        open requests for an exported service; the exporters
//	                      of SERVICE answer in the queue group P.export.SERVICE
//	P.d.BRIDGE.CHAN.K     the messages of channel CHAN towards bridge BRIDGE,
//	                      in order; K is the kind: D (a whole message), B (the
//	                      first part of a message larger than one NATS payload:
//	                      4 bytes LE total length, then bytes), M (a further
//	                      part), W (the sender waits for credit: grant now
//	                      what was delivered), X (the peer end closed:
//	                      nothing follows)
//	P.k.BRIDGE            credit grants towards bridge BRIDGE: 8 bytes LE
//	                      channel id, then the cumulative messages and bytes
//	                      delivered so far (8 bytes LE each)
//	P.hb.BRIDGE           heartbeats of bridge BRIDGE, every HeartbeatEvery:
//	                      8 bytes LE epoch, which counts its NATS connections
//
// A sender keeps at most Window messages and WindowBytes bytes (or one larger
// message) unacknowledged per channel: it stops reading the local channel
// while it has no credit, so the local ring fills and the local sender gets
// ErrQueueFull. A receiver checks that its peer kept to that window, so a
// misbehaving peer cannot make it buffer more.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exipc/exipc"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

const (
	prefix    = "exipc"
	protoVers = 1
)

// Config is what a bridge runs with. Domain (or Handle) and URL are needed;
// the rest has defaults.
type Config struct {
	// Domain is the exipc domain to open (created if absent, never unlinked)
	// on a handle of the bridge's own, with WaitPolicy.
	Domain string
	// WaitPolicy is how the links of a bridge that opens Domain wait for
	// their local channels (exipc.Options.WaitPolicy). The default,
	// exipc.WaitAdaptive, suits the library form: in the process of the
	// client or server, a link that spins ~20 µs often catches the next
	// message without a thread wake-up. exipc-bridge uses exipc.WaitPark (a
	// bridge process beside its peers takes the CPU they need if it spins).
	WaitPolicy uint32
	// Handle, if not nil, is an open domain to use instead of opening Domain.
	// Its wait policy is the caller's; Close leaves it open. Measured slower
	// with 16 calls in flight than a handle of the bridge's own (about 0.3x
	// against 0.75x plain nats.go's calls/s): give Domain unless the process
	// has a reason to hold one handle only.
	Handle  *exipc.Domain
	URL     string        // NATS server URL(s), comma-separated
	Exports []string      // local services served to other hosts
	Imports []string      // remote services listened on in the domain
	NATS    []nats.Option // auth and TLS options, after the bridge's own

	Window         int           // messages in flight per channel and direction
	WindowBytes    int           // bytes in flight per channel and direction
	HeartbeatEvery time.Duration // how often the bridge says it lives
	DeadAfter      time.Duration // a peer bridge silent this long is dead
	OpenTimeout    time.Duration // how long an open request waits for an exporter
	Log            *log.Logger
}

func (c *Config) defaults() {
	if c.Window <= 0 {
		c.Window = 128
	}
	if c.WindowBytes <= 0 {
		c.WindowBytes = 8 << 20
	}
	if c.HeartbeatEvery <= 0 {
		c.HeartbeatEvery = 250 * time.Millisecond
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = 1200 * time.Millisecond
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = 2 * time.Second
	}
	if c.Log == nil {
		c.Log = log.Default()
	}
}

// Bridge is a running bridge.
type Bridge struct {
	cfg  Config
	id   string
	d    *exipc.Domain
	ownD bool // d was opened by Start (Close closes it)
	nc   *nats.Conn

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	links     map[uint64]*link
	seen      map[string]peerSeen // peer bridge -> its last heartbeat
	epoch     atomic.Uint64       // counts this bridge's NATS connections
	listeners []*exipc.Listener
	nextID    atomic.Uint64
}

// peerSeen is what the last heartbeat of a peer bridge said.
type peerSeen struct {
	at    time.Time
	epoch uint64
}

type openReq struct {
	Version int    `json:"v"`
	Service string `json:"service"`
	Bridge  string `json:"bridge"`
	Chan    uint64 `json:"chan"`
	Epoch   uint64 `json:"epoch"`
}

type openRep struct {
	Version int    `json:"v"`
	Bridge  string `json:"bridge,omitempty"`
	Chan    uint64 `json:"chan,omitempty"`
	Epoch   uint64 `json:"epoch,omitempty"`
	Err     string `json:"err,omitempty"`
}

// validName is the domain's rule for service names (1–47 of [A-Za-z0-9._-]),
// which also keeps them one NATS subject token.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 47 || s[0] == '.' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false // '.' would split a subject token
		}
	}
	return true
}

// Start opens the domain (or takes Handle), connects to NATS, and puts every
// export and import in place: when it returns, remote bridges can open
// channels on the exports and local clients can connect to the imports.
// Services are 1–47 of [A-Za-z0-9_-]. The failure semantics are
// exipc-bridge's (docs/bridge.md): a channel whose remote end, remote bridge
// or NATS connection goes is closed, and its local end sees ErrPeerDead
// within 2 s.
func Start(cfg Config) (*Bridge, error) {
	cfg.defaults()
	if cfg.Handle == nil && cfg.Domain == "" {
		return nil, errors.New("natsbridge: no Domain and no Handle")
	}
	for _, s := range append(append([]string(nil), cfg.Exports...), cfg.Imports...) {
		if !validName(s) {
			return nil, fmt.Errorf("service %q: 1–47 of [A-Za-z0-9_-]", s)
		}
	}
	b := &Bridge{cfg: cfg, id: nuid.Next(), links: map[uint64]*link{}, seen: map[string]peerSeen{}}
	b.epoch.Store(1)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	d := cfg.Handle
	if d == nil {
		var err error
		if d, err = exipc.Open(cfg.Domain, &exipc.Options{WaitPolicy: cfg.WaitPolicy}); err != nil {
			return nil, err
		}
		b.ownD = true
	}
	b.d = d
	closeD := func() {
		if b.ownD {
			d.Close()
		}
	}
	opts := append([]nats.Option{
		nats.Name("exipc-bridge " + d.Name()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.ReconnectJitter(50*time.Millisecond, 50*time.Millisecond),
		nats.ReconnectBufSize(-1), // nothing is buffered while disconnected: links die instead
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.cfg.Log.Printf("nats: disconnected (%v): closing every bridged channel", err)
			}
			// The heartbeats after the reconnect carry the new epoch: peers
			// close their ends of the channels opened before.
			b.epoch.Add(1)
			b.killAll("NATS connection lost")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.cfg.Log.Printf("nats: reconnected to %s", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil && errors.Is(err, nats.ErrSlowConsumer) {
				b.killSub(sub, "slow consumer: the peer sent beyond its credit")
				return
			}
			b.cfg.Log.Printf("nats: %v", err)
		}),
	}, cfg.NATS...)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		closeD()
		return nil, fmt.Errorf("nats %s: %w", cfg.URL, err)
	}
	b.nc = nc
	fail := func(err error) (*Bridge, error) {
		b.Close()
		return nil, err
	}
	if _, err := nc.Subscribe(prefix+".hb.*", b.onHeartbeat); err != nil {
		return fail(err)
	}
	if _, err := nc.Subscribe(prefix+".k."+b.id, b.onCredit); err != nil {
		return fail(err)
	}
	for _, svc := range cfg.Exports {
		svc := svc
		_, err := nc.QueueSubscribe(prefix+".open."+svc, prefix+".export."+svc, func(m *nats.Msg) {
			b.wg.Add(1)
			go func() { defer b.wg.Done(); b.onOpen(svc, m) }()
		})
		if err != nil {
			return fail(err)
		}
	}
	for _, svc := range cfg.Imports {
		l, err := d.Listen(svc)
		if err != nil {
			return fail(fmt.Errorf("import %s: %w", svc, err))
		}
		b.mu.Lock()
		b.listeners = append(b.listeners, l)
		b.mu.Unlock()
		b.wg.Add(1)
		go func() { defer b.wg.Done(); b.acceptLoop(svc, l) }()
	}
	if err := nc.Flush(); err != nil { // every subscription is in place at the server
		return fail(err)
	}
	b.wg.Add(1)
	go func() { defer b.wg.Done(); b.heartbeat() }()
	return b, nil
}

// Close closes every bridged channel (their local ends see ErrPeerDead, the
// remote bridges are told), the imported services' listeners, the NATS
// connection and the domain if Start opened it. Call it once.
func (b *Bridge) Close() error {
	b.cancel()
	b.mu.Lock()
	ls := b.listeners
	b.listeners = nil
	b.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	b.killAll("bridge closing")
	if b.nc != nil && b.nc.IsConnected() {
		b.nc.FlushTimeout(time.Second) // the remote bridges get their X
	}
	b.wg.Wait()
	if b.nc != nil {
		b.nc.Close()
	}
	if !b.ownD {
		return nil
	}
	return b.d.Close()
}

func (b *Bridge) heartbeat() {
	t := time.NewTicker(b.cfg.HeartbeatEvery)
	defer t.Stop()
	subj := prefix + ".hb." + b.id
	check := time.NewTicker(100 * time.Millisecond)
	defer check.Stop()
	var hb [8]byte
	beat := func() {
		binary.LittleEndian.PutUint64(hb[:], b.epoch.Load())
		b.nc.Publish(subj, hb[:])
	}
	beat()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
			beat()
		case now := <-check.C:
			b.watchdog(now)
		}
	}
}

func (b *Bridge) onHeartbeat(m *nats.Msg) {
	peer := strings.TrimPrefix(m.Subject, prefix+".hb.")
	if peer == b.id || len(peer) > 64 || len(m.Data) != 8 {
		return
	}
	b.mu.Lock()
	b.seen[peer] = peerSeen{at: time.Now(), epoch: binary.LittleEndian.Uint64(m.Data)}
	b.mu.Unlock()
}

// watchdog kills the links whose peer bridge has been silent for DeadAfter
// or has reconnected to NATS since the link opened (it closed its end then),
// and forgets bridges silent for long.
func (b *Bridge) watchdog(now time.Time) {
	var dead []*link
	b.mu.Lock()
	for _, l := range b.links {
		if l.peer == "" {
			continue
		}
		last := l.created
		s, ok := b.seen[l.peer]
		if ok && s.at.After(last) {
			last = s.at
		}
		if now.Sub(last) > b.cfg.DeadAfter || ok && s.epoch > l.peerEpoch {
			dead = append(dead, l)
		}
	}
	for p, s := range b.seen {
		if now.Sub(s.at) > 60*time.Second {
			delete(b.seen, p)
		}
	}
	b.mu.Unlock()
	for _, l := range dead {
		l.kill("peer bridge silent for " + b.cfg.DeadAfter.String() + " or reconnected")
	}
}

func (b *Bridge) onCredit(m *nats.Msg) {
	if len(m.Data) != 24 {
		return
	}
	id := binary.LittleEndian.Uint64(m.Data)
	b.mu.Lock()
	l := b.links[id]
	b.mu.Unlock()
	if l != nil {
		l.grant(binary.LittleEndian.Uint64(m.Data[8:]), binary.LittleEndian.Uint64(m.Data[16:]))
	}
}

func (b *Bridge) killAll(why string) {
	b.mu.Lock()
	ls := make([]*link, 0, len(b.links))
	for _, l := range b.links {
		ls = append(ls, l)
	}
	b.mu.Unlock()
	for _, l := range ls {
		l.kill(why)
	}
}

func (b *Bridge) killSub(sub *nats.Subscription, why string) {
	b.mu.Lock()
	var found *link
	for _, l := range b.links {
		if l.sub == sub {
			found = l
		}
	}
	b.mu.Unlock()
	if found != nil {
		found.kill(why)
	}
}

// acceptLoop serves an imported service: every channel a local client
// connects is opened on one exporter of the service.
func (b *Bridge) acceptLoop(svc string, l *exipc.Listener) {
	for {
		ch, err := l.Accept(b.ctx)
		if err != nil {
			if b.ctx.Err() != nil || errors.Is(err, exipc.ErrClosed) {
				return
			}
			b.cfg.Log.Printf("import %s: accept: %v", svc, err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		b.wg.Add(1)
		go func() { defer b.wg.Done(); b.importChan(svc, ch) }()
	}
}

func (b *Bridge) importChan(svc string, ch *exipc.Chan) {
	l, err := b.newLink(ch)
	if err != nil {
		b.cfg.Log.Printf("import %s: %v", svc, err)
		ch.Close()
		return
	}
	req, _ := json.Marshal(openReq{Version: protoVers, Service: svc, Bridge: b.id, Chan: l.id, Epoch: b.epoch.Load()})
	m, err := b.nc.Request(prefix+".open."+svc, req, b.cfg.OpenTimeout)
	var rep openRep
	if err == nil {
		err = json.Unmarshal(m.Data, &rep)
	}
	if err == nil && rep.Err != "" {
		err = errors.New(rep.Err)
	}
	if err == nil && (rep.Version != protoVers || rep.Bridge == "" || len(rep.Bridge) > 64 ||
		strings.ContainsAny(rep.Bridge, ".*> \t\r\n")) {
		err = fmt.Errorf("malformed open reply %q", m.Data)
	}
	if err != nil {
		b.cfg.Log.Printf("import %s: open: %v", svc, err)
		l.kill("")
		return
	}
	l.setPeer(rep.Bridge, rep.Chan, rep.Epoch)
	l.run()
}

// onOpen serves an open request for an exported service: it connects to the
// service in the domain and links the new channel to the importer's.
func (b *Bridge) onOpen(svc string, m *nats.Msg) {
	reply := func(r openRep) {
		r.Version = protoVers
		data, _ := json.Marshal(r)
		m.Respond(data)
	}
	var req openReq
	if err := json.Unmarshal(m.Data, &req); err != nil || req.Version != protoVers || req.Service != svc ||
		req.Bridge == "" || len(req.Bridge) > 64 || strings.ContainsAny(req.Bridge, ".*> \t\r\n") {
		reply(openRep{Err: "malformed open request"})
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.OpenTimeout/2)
	ch, err := b.d.Connect(ctx, svc)
	cancel()
	if err != nil {
		reply(openRep{Err: fmt.Sprintf("connect %s: %v", svc, err)})
		return
	}
	l, err := b.newLink(ch)
	if err != nil {
		ch.Close()
		reply(openRep{Err: err.Error()})
		return
	}
	l.setPeer(req.Bridge, req.Chan, req.Epoch) // before the reply: data may follow it at once
	reply(openRep{Bridge: b.id, Chan: l.id, Epoch: b.epoch.Load()})
	l.run()
}

// newLink registers a link for ch and subscribes to its messages.
func (b *Bridge) newLink(ch *exipc.Chan) (*link, error) {
	l := &link{b: b, id: b.nextID.Add(1), ch: ch, created: time.Now(),
		credit: make(chan struct{}, 1), done: make(chan struct{}), ready: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(b.ctx)
	b.mu.Lock()
	if b.ctx.Err() != nil {
		b.mu.Unlock()
		return nil, errors.New("bridge closing")
	}
	b.links[l.id] = l
	b.mu.Unlock()
	sub, err := b.nc.Subscribe(prefix+".d."+b.id+"."+strconv.FormatUint(l.id, 10)+".*", l.onData)
	if err != nil {
		b.drop(l)
		return nil, err
	}
	maxPayload := int(b.nc.MaxPayload())
	if maxPayload <= 0 {
		maxPayload = 1 << 20
	}
	// The window, the parts of one message larger than the window, and slack.
	sub.SetPendingLimits(b.cfg.Window+b.cfg.WindowBytes/maxPayload+(64<<20)/maxPayload+16,
		2*b.cfg.WindowBytes+(64<<20)+(1<<20))
	l.sub = sub
	return l, nil
}

func (b *Bridge) drop(l *link) {
	b.mu.Lock()
	delete(b.links, l.id)
	b.mu.Unlock()
}
