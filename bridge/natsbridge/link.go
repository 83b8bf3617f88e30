package natsbridge

// A link joins a local channel end to a remote bridge's link: local messages
// go out in order on NATS, remote ones are written into this domain's heap
// and sent on the local channel, each way within a credit window.

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exipc/exipc"
	"github.com/nats-io/nats.go"
)

// maxMessage bounds one message crossing the bridge (larger ones close the
// channel): the receiver allocates it whole before its parts arrive.
const maxMessage = 64 << 20

type link struct {
	b       *Bridge
	id      uint64
	ch      *exipc.Chan
	created time.Time
	sub     *nats.Subscription // under b.mu

	peer      string // the remote bridge (under b.mu once set)
	peerChan  uint64
	peerEpoch uint64 // the remote bridge's epoch when the link opened
	dataSubj  string // the remote link's subject, without the kind
	kSubj     string // the remote bridge's credit subject

	ctx    context.Context
	cancel context.CancelFunc

	// Outbound (local -> remote): written by the reader goroutine, acked by
	// the remote's grants.
	sentMsgs, sentBytes atomic.Uint64
	ackMsgs, ackBytes   atomic.Uint64
	credit              chan struct{}

	// Inbound (remote -> local): the subscription's goroutine only.
	recvMsgs, recvBytes   uint64 // whole messages received
	delivMsgs, delivBytes uint64 // delivered to the local channel
	granted               uint64 // delivMsgs at the last grant
	grantedBytes          uint64
	pmu                   sync.Mutex   // held by onData; kill takes it to free part
	part                  exipc.Handle // a message arriving in parts
	partBuf               []byte
	partOff               int
	grantBuf              [24]byte

	ready  chan struct{} // closed by setPeer
	once   sync.Once
	dead   atomic.Bool
	done   chan struct{}
	remote atomic.Bool // the remote end closed (X received): no X back
}

// setPeer records the remote link; messages towards this link are handled
// from then on (onData waits for it).
func (l *link) setPeer(peer string, peerChan, peerEpoch uint64) {
	l.b.mu.Lock()
	l.peer, l.peerChan, l.peerEpoch = peer, peerChan, peerEpoch
	l.dataSubj = prefix + ".d." + peer + "." + strconv.FormatUint(peerChan, 10) + "."
	l.kSubj = prefix + ".k." + peer
	l.b.mu.Unlock()
	close(l.ready)
}

// run pumps local messages out until the local end closes or the link dies.
func (l *link) run() {
	if l.dead.Load() {
		return
	}
	l.readLoop()
}

// readLoop sends the local channel's messages to the remote link in order.
func (l *link) readLoop() {
	b := l.b
	maxPayload := int(b.nc.MaxPayload())
	if maxPayload <= 16 {
		maxPayload = 1 << 20
	}
	dSubj, bSubj, mSubj := l.dataSubj+"D", l.dataSubj+"B", l.dataSubj+"M"
	var first []byte
	for {
		// Drain what is there, then sleep in C on the ring (one thread hop
		// per wake-up; RecvBatch would park on the domain's poller, two).
		h, body, err := l.ch.TryRecvBytes()
		if err == exipc.ErrEmpty {
			// Before sleeping, let nats.go's flusher (readied by our
			// publishes onto this P) write them: a goroutine left on the P
			// of a thread asleep in C waits for another thread to steal it.
			runtime.Gosched()
			h, body, err = l.ch.RecvBytes(l.ctx)
		}
		if err != nil {
			if errors.Is(err, exipc.ErrPeerDead) && !l.dead.Load() {
				l.kill("") // the local peer is done: X tells the remote, after its messages
			}
			return
		}
		if !l.forward(h, body, dSubj, bSubj, mSubj, maxPayload, &first) {
			return
		}
	}
}

// forward publishes the local message h (and frees it); false once the link
// is dead.
func (l *link) forward(h exipc.Handle, body []byte, dSubj, bSubj, mSubj string, maxPayload int, first *[]byte) bool {
	b := l.b
	var err error
	n := uint64(len(body))
	if !l.waitCredit(n) {
		b.d.Free(h)
		return false
	}
	// Counted before it goes: the remote's grant for it may come back before
	// this goroutine runs again.
	l.sentBytes.Add(n)
	l.sentMsgs.Add(1)
	if len(body) <= maxPayload {
		err = b.nc.Publish(dSubj, body)
	} else {
		// B: total length, then as much as fits; M: the rest, in parts.
		k := maxPayload - 4
		*first = binary.LittleEndian.AppendUint32((*first)[:0], uint32(len(body)))
		*first = append(*first, body[:k]...)
		err = b.nc.Publish(bSubj, *first)
		for off := k; err == nil && off < len(body); off += maxPayload {
			end := min(off+maxPayload, len(body))
			err = b.nc.Publish(mSubj, body[off:end])
		}
	}
	b.d.Free(h)
	if err != nil {
		l.kill("nats publish: " + err.Error())
		return false
	}
	return true
}

// waitCredit waits until a message of n bytes fits in the window.
func (l *link) waitCredit(n uint64) bool {
	w, wb := uint64(l.b.cfg.Window), uint64(l.b.cfg.WindowBytes)
	asked := false
	for {
		msgs := l.sentMsgs.Load() - l.ackMsgs.Load()
		bytes := l.sentBytes.Load() - l.ackBytes.Load()
		if msgs < w && (bytes == 0 || bytes+n <= wb) {
			return true
		}
		if !asked { // ask for the grants the receiver holds back (W)
			asked = true
			if err := l.b.nc.Publish(l.dataSubj+"W", nil); err != nil {
				l.kill("nats publish: " + err.Error())
				return false
			}
		}
		select {
		case <-l.credit:
		case <-l.ctx.Done():
			return false
		}
	}
}

// grant records the remote's cumulative delivery counts.
func (l *link) grant(msgs, bytes uint64) {
	if msgs > l.sentMsgs.Load() || bytes > l.sentBytes.Load() {
		l.kill("credit grant beyond what was sent")
		return
	}
	for {
		old := l.ackMsgs.Load()
		if msgs <= old || l.ackMsgs.CompareAndSwap(old, msgs) {
			break
		}
	}
	for {
		old := l.ackBytes.Load()
		if bytes <= old || l.ackBytes.CompareAndSwap(old, bytes) {
			break
		}
	}
	select {
	case l.credit <- struct{}{}:
	default:
	}
}

// onData handles one NATS message towards this link, in order.
func (l *link) onData(m *nats.Msg) {
	select {
	case <-l.ready:
	case <-l.ctx.Done():
		return
	}
	l.pmu.Lock()
	defer func() {
		if l.dead.Load() { // killed meanwhile (here or elsewhere): drop the part
			l.freePart()
		}
		l.pmu.Unlock()
	}()
	if l.dead.Load() {
		return
	}
	subj := m.Subject
	if len(subj) < 2 || subj[len(subj)-2] != '.' {
		return
	}
	switch subj[len(subj)-1] {
	case 'D':
		if l.part != 0 || len(m.Data) == 0 {
			l.kill("malformed message")
			return
		}
		if !l.admit(uint64(len(m.Data))) {
			return
		}
		h, buf, ok := l.alloc(len(m.Data))
		if !ok {
			return
		}
		copy(buf, m.Data)
		l.deliver(h, len(buf))
	case 'B':
		if l.part != 0 || len(m.Data) < 4 {
			l.kill("malformed first part")
			return
		}
		total := int(binary.LittleEndian.Uint32(m.Data))
		if total > maxMessage || total < len(m.Data)-4 {
			l.kill("message of " + strconv.Itoa(total) + " bytes: too large")
			return
		}
		if !l.admit(uint64(total)) {
			return
		}
		h, buf, ok := l.alloc(total)
		if !ok {
			return
		}
		l.part, l.partBuf = h, buf
		l.partOff = copy(buf, m.Data[4:])
		l.finishPart()
	case 'M':
		if l.part == 0 || len(m.Data) > len(l.partBuf)-l.partOff {
			l.kill("malformed part")
			return
		}
		l.partOff += copy(l.partBuf[l.partOff:], m.Data)
		l.finishPart()
	case 'W': // the sender waits for credit: grant what was delivered before
		if l.delivMsgs != l.granted || l.delivBytes != l.grantedBytes {
			l.sendGrant()
		}
	case 'X':
		l.remote.Store(true)
		l.kill("")
	}
}

func (l *link) freePart() {
	if l.part != 0 {
		l.b.d.Free(l.part)
		l.part, l.partBuf, l.partOff = 0, nil, 0
	}
}

func (l *link) finishPart() {
	if l.partOff == len(l.partBuf) {
		h, n := l.part, len(l.partBuf)
		l.part, l.partBuf, l.partOff = 0, nil, 0
		l.deliver(h, n)
	}
}

// admit checks that the peer kept to the window before a message of n bytes.
func (l *link) admit(n uint64) bool {
	msgs := l.recvMsgs - l.granted
	bytes := l.recvBytes - l.grantedBytes
	if msgs >= uint64(l.b.cfg.Window) || (bytes > 0 && bytes+n > uint64(l.b.cfg.WindowBytes)) {
		l.kill("peer sent beyond its credit")
		return false
	}
	l.recvMsgs++
	l.recvBytes += n
	return true
}

// alloc gets a block for an incoming message, waiting (within the window's
// bound) while the heap is full.
func (l *link) alloc(n int) (exipc.Handle, []byte, bool) {
	for wait := 20 * time.Microsecond; ; {
		h, buf, err := l.b.d.Alloc(n)
		if err == nil {
			return h, buf, true
		}
		if !errors.Is(err, exipc.ErrHeapFull) {
			l.kill("alloc: " + err.Error())
			return 0, nil, false
		}
		if !l.sleep(&wait) {
			return 0, nil, false
		}
	}
}

// sleep backs off between retries; false once the link is dead.
func (l *link) sleep(wait *time.Duration) bool {
	select {
	case <-time.After(*wait):
	case <-l.ctx.Done():
		return false
	}
	if *wait < time.Millisecond {
		*wait *= 2
	}
	return !l.dead.Load()
}

// deliver sends h on the local channel, waiting while its ring is full (the
// remote's window bounds what queues up meanwhile), then grants credit.
func (l *link) deliver(h exipc.Handle, n int) {
	for wait := 5 * time.Microsecond; ; {
		err := l.ch.Send(h)
		if err == nil {
			break
		}
		if err != exipc.ErrQueueFull || !l.sleep(&wait) {
			l.b.d.Free(h)
			if !errors.Is(err, exipc.ErrQueueFull) && !errors.Is(err, exipc.ErrPeerDead) {
				l.kill("local send: " + err.Error())
			}
			return // the local peer is gone: its reader sends X
		}
	}
	l.delivMsgs++
	l.delivBytes += uint64(n)
	w, wb := uint64(l.b.cfg.Window), uint64(l.b.cfg.WindowBytes)
	// Grant every quarter window; a sender that waits for credit sooner asks
	// with W (see onData).
	if l.delivMsgs-l.granted >= w/4 || l.delivBytes-l.grantedBytes >= wb/4 {
		l.sendGrant()
	}
}

func (l *link) sendGrant() {
	l.granted, l.grantedBytes = l.delivMsgs, l.delivBytes
	binary.LittleEndian.PutUint64(l.grantBuf[0:], l.peerChan)
	binary.LittleEndian.PutUint64(l.grantBuf[8:], l.delivMsgs)
	binary.LittleEndian.PutUint64(l.grantBuf[16:], l.delivBytes)
	l.b.nc.Publish(l.kSubj, l.grantBuf[:])
}

// kill ends the link once: the local end is closed (its peer receives what
// was delivered, then ErrPeerDead), the remote is told unless it closed
// first, and the link is forgotten. why is logged when not empty.
func (l *link) kill(why string) {
	l.once.Do(func() {
		l.dead.Store(true)
		l.b.mu.Lock()
		sub, peer, peerChan, subj := l.sub, l.peer, l.peerChan, l.dataSubj
		l.b.mu.Unlock()
		if why != "" {
			l.b.cfg.Log.Printf("channel %d (peer %s/%d): %s", l.id, peer, peerChan, why)
		}
		if !l.remote.Load() && peer != "" {
			l.b.nc.Publish(subj+"X", nil)
		}
		l.cancel()
		if sub != nil {
			sub.Unsubscribe()
		}
		l.ch.Close()
		// A part being received is freed here, or by onData as it returns
		// if it is running (dead is already set).
		if l.pmu.TryLock() {
			l.freePart()
			l.pmu.Unlock()
		}
		l.b.drop(l)
		close(l.done)
	})
}
