package shm

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Config configures an [Endpoint]. The zero value is ready to use.
type Config struct {
	// Dir, if not empty, is a directory in which the endpoint creates its socket file
	// (see [Addr]), so that peers in other network namespaces sharing the directory can
	// connect. It must pass [CheckDir]. Empty means a socket in the abstract namespace,
	// reachable from the same network namespace only.
	Dir string

	// HandshakeTimeout bounds a connection to the endpoint from its accept to the
	// client's proof. Zero means 1 second: an honest client answers at once.
	HandshakeTimeout time.Duration
}

// Caps on connections to an endpoint that have not proven anything yet, per peer uid
// (SO_PEERCRED) and in all: beyond them a new connection is closed at once. A stranger
// holding its uid's share cannot stop another uid's clients.
const (
	maxPendingPerUID = 16
	maxPending       = 256
)

// Addr returns the address of the endpoint with the given ID under dir (see
// [Config.Dir]). A client derives it from the top 16 bits of a link ID.
func Addr(dir string, id uint16) string {
	name := fmt.Sprintf("smc-%04x", id)
	if dir == "" {
		return "@smc-go/shm/" + name
	}
	return filepath.Join(dir, name+".sock")
}

// CheckDir reports whether dir may hold endpoint sockets: a directory owned by root or
// by this process's effective uid, that nobody else can swap files in (not writable by
// group or others, unless it has the sticky bit, as /tmp does). For processes of
// different uids to meet, use a root-owned directory with the sticky bit: the socket
// files themselves are mode 0666, and the link's proof (not the file's owner) tells a
// client it reached the server it dialed.
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("smc: shm: endpoint directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("smc: shm: endpoint directory %s is not a directory", dir)
	}
	uid, ok := ownerOf(fi)
	if !ok {
		return fmt.Errorf("smc: shm: endpoint directory %s: no owner", dir)
	}
	if uid != 0 && int(uid) != os.Geteuid() {
		return fmt.Errorf("smc: shm: endpoint directory %s is owned by uid %d, neither root nor us: refused", dir, uid)
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0 {
		return fmt.Errorf("smc: shm: endpoint directory %s is writable by others without the sticky bit (mode %v): refused", dir, fi.Mode())
	}
	return nil
}

// PeerID is a process's identity in the CLC Proposal (its PeerID field): random, per
// process. A server keeps one link per client PeerID.
type PeerID [8]byte

var processID = func() (id PeerID) {
	rand.Read(id[:])
	return id
}()

// ProcessID returns this process's PeerID.
func ProcessID() PeerID { return processID }

// An Endpoint is a process's Unix seqpacket listener for links: clients that received
// a link ID and a secret in a CLC Accept connect to it, prove they hold the secret, and
// then run their streams over that connection. A process needs one per directory,
// created lazily.
type Endpoint struct {
	cfg  Config
	id   uint16
	addr string
	ln   *net.UnixListener
	wg   sync.WaitGroup // the accept loop and the connections being set up

	mu        sync.Mutex // guards the fields below
	closed    bool
	pending   map[uint16]*pendingLink  // link index → a new link's founding offer
	firstPend map[PeerID]*pendingLink  // client process → its first pending link
	links     map[uint16]*link         // link index → established link
	byPeer    map[PeerID]*link         // client process → the link its offers use
	conns     map[*net.UnixConn]uint32 // connections being set up → their peer uid
	perUID    map[uint32]int           // connections being set up per peer uid
	nextIndex uint16
}

// pendingLink is a link announced in an Accept that its client has not set up yet.
type pendingLink struct {
	index  uint16
	secret [8]byte
	peer   PeerID
	offer  *Offer
	up     chan struct{} // closed once the link is set up or will not be
	once   sync.Once
}

// settle closes p.up: the link is up (registered), or will never be.
func (p *pendingLink) settle() { p.once.Do(func() { close(p.up) }) }

// Listen creates an endpoint with a random 16-bit ID (retrying while the address is
// taken). It does no I/O beyond creating the socket.
func Listen(cfg Config) (*Endpoint, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = time.Second
	}
	if cfg.Dir != "" {
		if err := CheckDir(cfg.Dir); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for range 64 {
		var b [2]byte
		rand.Read(b[:])
		id := binary.LittleEndian.Uint16(b[:])
		addr := Addr(cfg.Dir, id)
		ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: addr, Net: "unixpacket"})
		if errors.Is(err, syscall.EADDRINUSE) {
			lastErr = err
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("smc: shm: listen %s: %w", addr, err)
		}
		if cfg.Dir != "" {
			// Any uid may connect: who may use a link is decided by its proof.
			if err := os.Chmod(addr, 0o666); err != nil {
				ln.Close()
				return nil, fmt.Errorf("smc: shm: listen %s: %w", addr, err)
			}
		}
		var ix [2]byte
		rand.Read(ix[:])
		e := &Endpoint{
			cfg: cfg, id: id, addr: addr, ln: ln,
			pending: make(map[uint16]*pendingLink), links: make(map[uint16]*link),
			byPeer: make(map[PeerID]*link), conns: make(map[*net.UnixConn]uint32),
			firstPend: make(map[PeerID]*pendingLink),
			perUID:    make(map[uint32]int), nextIndex: binary.LittleEndian.Uint16(ix[:]),
		}
		e.wg.Add(1)
		go e.acceptLoop()
		return e, nil
	}
	return nil, fmt.Errorf("smc: shm: listen: %w", lastErr)
}

// ID returns the endpoint's 16-bit ID: the top half of its link IDs.
func (e *Endpoint) ID() uint16 { return e.id }

// Addr returns the endpoint's address.
func (e *Endpoint) Addr() string { return e.addr }

func (e *Endpoint) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// Close stops the endpoint: its socket is removed, pending offers fail with
// [ErrOfferClosed], connections being set up are cut. Established streams are
// unaffected; their links end as soon as they have no slot in use.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return errClosed("close endpoint")
	}
	e.closed = true
	var offers []*Offer
	for _, p := range e.pending {
		offers = append(offers, p.offer)
	}
	for c := range e.conns {
		c.Close()
	}
	var idle []*link
	for _, l := range e.links {
		idle = append(idle, l)
	}
	e.mu.Unlock()
	err := e.ln.Close()
	for _, o := range offers {
		o.Cancel()
	}
	for _, l := range idle {
		l.mu.Lock()
		if l.used == 0 {
			l.armIdleLocked()
		}
		l.mu.Unlock()
	}
	e.wg.Wait()
	if err != nil {
		return fmt.Errorf("smc: shm: close endpoint: %w", err)
	}
	return nil
}

// forget removes an ended link.
func (e *Endpoint) forget(l *link) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ix := uint16(l.id)
	if e.links[ix] == l {
		delete(e.links, ix)
	}
	for p, pl := range e.byPeer {
		if pl == l {
			delete(e.byPeer, p)
		}
	}
}

// newIndexLocked returns a link index in use neither by a link nor a pending one;
// indexes are handed out in turn, so not reused quickly.
func (e *Endpoint) newIndexLocked() (uint16, bool) {
	for range 1 << 16 {
		ix := e.nextIndex
		e.nextIndex++
		if e.links[ix] == nil && e.pending[ix] == nil {
			return ix, true
		}
	}
	return 0, false
}

func (e *Endpoint) acceptLoop() {
	defer e.wg.Done()
	for {
		c, err := e.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off a little rather than spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		uid, ok := peerUID(c)
		e.mu.Lock()
		if !ok || e.closed || len(e.conns) >= maxPending || e.perUID[uid] >= maxPendingPerUID {
			// Beyond its uid's share a stranger's connection costs it the connection,
			// not us a goroutine.
			e.mu.Unlock()
			c.Close()
			continue
		}
		e.conns[c] = uid
		e.perUID[uid]++
		e.wg.Add(1)
		e.mu.Unlock()
		go e.serve(c)
	}
}

// untrack removes c from the connections being set up; false if Close cut it.
func (e *Endpoint) untrack(c *net.UnixConn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	uid, ok := e.conns[c]
	if ok {
		delete(e.conns, c)
		if e.perUID[uid]--; e.perUID[uid] <= 0 {
			delete(e.perUID, uid)
		}
	}
	return ok && !e.closed
}

// proof computes the link proofs: HMAC-SHA256 keyed with the link secret, over the
// role letter, both nonces and, for the server's proof, its pidfs inode.
func proof(secret [8]byte, role byte, nc, ns []byte, ino uint64) []byte {
	m := hmac.New(sha256.New, secret[:])
	m.Write([]byte{role})
	m.Write(nc)
	m.Write(ns)
	if role == 's' {
		m.Write(binary.LittleEndian.AppendUint64(nil, ino))
	}
	return m.Sum(nil)
}

// serve sets up one link, server side: HELLO → AUTH → PROOF, then the founding offer's
// slot and READY. A connection that fails anything is closed without a word.
func (e *Endpoint) serve(c *net.UnixConn) {
	defer e.wg.Done()
	l, p := e.authenticate(c)
	e.untrack(c)
	if l == nil {
		c.Close()
		return
	}
	o := p.offer
	go l.readLoop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, _, tok, err := l.allocSlot(ctx, o.size, o)
	cancel()
	if err == nil && !o.attach(l, tok) {
		l.releaseHeld(tok, o) // cancelled: READY 0, the slot never announced
		err = ErrOfferClosed
	}
	if err != nil {
		tok = 0 // the client's Connect fails, and it declines the Accept
	}
	l.send(newMsg(msgReady).u64(tok), -1)
}

// authenticate runs the proof exchange on c and, if the client proved it holds the
// secret of a pending link, returns the new link (registered) and that pending link.
func (e *Endpoint) authenticate(c *net.UnixConn) (*link, *pendingLink) {
	c.SetDeadline(time.Now().Add(e.cfg.HandshakeTimeout))
	buf := make([]byte, maxMsgLen+1)
	oob := make([]byte, oobSpace)
	body, ok := readSetup(c, buf, oob, msgHello)
	if !ok || u32of(body) != linkVersion {
		return nil, nil
	}
	linkID := u32of(body[4:])
	nc := append([]byte(nil), body[8:8+nonceLen]...)
	if uint16(linkID>>16) != e.id {
		return nil, nil
	}
	ix := uint16(linkID)
	e.mu.Lock()
	p := e.pending[ix]
	e.mu.Unlock()
	if p == nil {
		return nil, nil
	}
	ns := make([]byte, nonceLen)
	rand.Read(ns)
	if _, err := c.Write(newMsg(msgAuth).bytes(ns).bytes(proof(p.secret, 's', nc, ns, selfPidfdIno()))); err != nil {
		return nil, nil
	}
	body, ok = readSetup(c, buf, oob, msgProof)
	if !ok || !hmac.Equal(body, proof(p.secret, 'c', nc, ns, 0)) {
		return nil, nil
	}
	e.mu.Lock()
	if e.closed || e.pending[ix] != p {
		e.mu.Unlock()
		return nil, nil
	}
	delete(e.pending, ix)
	e.mu.Unlock()
	c.SetDeadline(time.Time{})
	l, err := newLink(c, true, linkID, p.offer.maxPeer)
	if err != nil {
		e.unpend(p)
		return nil, nil
	}
	l.ep = e
	e.mu.Lock()
	e.links[ix] = l
	if e.byPeer[p.peer] == nil {
		e.byPeer[p.peer] = l
	}
	e.mu.Unlock()
	e.unpend(p)
	return l, p
}

// unpend settles a pending link and forgets it as its client's first.
func (e *Endpoint) unpend(p *pendingLink) {
	e.mu.Lock()
	if e.firstPend[p.peer] == p {
		delete(e.firstPend, p.peer)
	}
	e.mu.Unlock()
	p.settle()
}

// readSetup reads one set-up message of type t, which carries no descriptor, and
// returns its body.
func readSetup(c *net.UnixConn, buf, oob []byte, t byte) ([]byte, bool) {
	n, fds, err := readMsg(c, buf, oob)
	if err != nil {
		return nil, false
	}
	if len(fds) > 0 {
		closeFDs(fds)
		return nil, false
	}
	body, err := checkMsg(buf[:n])
	if err != nil || buf[0] != t {
		return nil, false
	}
	return body, true
}

// An Offer is a server's slot (or, for a new link, the link's secret) announced in a
// CLC Accept, waiting for the client's Confirm.
type Offer struct {
	e       *Endpoint
	linkID  uint32
	token   uint64 // what the Accept carries: the slot's token, or the new link's secret
	size    int
	maxPeer int

	mu     sync.Mutex // guards the fields below
	closed bool       // Cancel or Bind was called
	l      *link      // the link of the held slot, once there is one
	tok    uint64     // the held slot's token
}

// Offer reserves a slot with a ring of size bytes (a power of two, see [MinRingSize])
// for the client process peer: on the link to that process if there is one, else for a
// new link, announced with a one-time random secret. The client presents the offer's
// link ID and token (from the CLC Accept) to [Connect]. maxPeer is the largest client
// ring this side accepts: the link maps no client segment of larger rings (unless
// another offer on it accepts them), and the offer's slot announces it, so that the
// client's Connect fails for a larger ring before its Confirm. ctx bounds the growth
// of the pool. It fails with [ErrMemoryLimit] beyond the process bound.
func (e *Endpoint) Offer(ctx context.Context, peer PeerID, size, maxPeer int) (*Offer, error) {
	if !validRingSize(size) {
		return nil, ErrBadSize
	}
	o := &Offer{e: e, size: size, maxPeer: maxPeer}
	var dead *link // a link that ended under allocSlot, until forget removes it
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return nil, errClosed("offer")
		}
		l := e.byPeer[peer]
		if l == dead {
			l = nil
		}
		if l == nil {
			if first := e.firstPend[peer]; first != nil {
				// The client process's first link is being set up (a burst of
				// connections from a process we have no link with): wait for it
				// rather than announce one link per connection, which the client
				// would dial all at once, beyond what the endpoint accepts from one
				// uid. The wait is bounded by the founding handshake, whose offer
				// settles the pending link when it fails, and by ctx; under load
				// the set-up can take longer than any fixed figure.
				e.mu.Unlock()
				select {
				case <-first.up:
				case <-ctx.Done():
					return nil, fmt.Errorf("smc: shm: offer: waiting for the client's first link: %w", ctx.Err())
				}
				continue
			}
			// A new link, announced under the same lock that found none pending, so
			// that one founder is chosen among offers woken together.
			if err := e.pendLocked(o, peer, size); err != nil {
				return nil, err
			}
			return o, nil
		}
		e.mu.Unlock()
		l.raiseMaxPeer(maxPeer)
		_, _, tok, err := l.allocSlot(ctx, size, o)
		switch {
		case err == nil:
			o.linkID, o.token, o.l, o.tok = l.id, tok, l, tok
			return o, nil
		case !errors.Is(err, errLinkDown):
			return nil, err
		}
		dead = l
	}
}

// pendLocked announces a new link for the client process peer, founded by o; e.mu
// is held, and released.
func (e *Endpoint) pendLocked(o *Offer, peer PeerID, size int) error {
	defer e.mu.Unlock()
	// Its founding slot is made once the client has proven itself. Refuse now what
	// could not be made then: the slot headers of its first segment, and the first
	// window of the slot.
	if memUsed.Load()+int64(headersSize(1)+initialWindow(size)) > memLimit.Load() {
		return ErrMemoryLimit
	}
	p := &pendingLink{peer: peer, offer: o, up: make(chan struct{})}
	rand.Read(p.secret[:])
	if p.secret == ([8]byte{}) {
		p.secret[0] = 1
	}
	ix, ok := e.newIndexLocked()
	if !ok {
		return ErrMemoryLimit
	}
	p.index = ix
	e.pending[ix] = p
	if e.firstPend[peer] == nil {
		e.firstPend[peer] = p
	}
	o.linkID = uint32(e.id)<<16 | uint32(ix)
	o.token = binary.LittleEndian.Uint64(p.secret[:])
	return nil
}

// LinkID returns the link ID the Accept carries: endpoint ID << 16 | link index.
func (o *Offer) LinkID() uint32 { return o.linkID }

// Token returns the token the Accept carries: the server slot's token on an existing
// link, the new link's one-time secret otherwise.
func (o *Offer) Token() uint64 { return o.token }

// attach records the founding slot of a new link; false if the offer was cancelled.
func (o *Offer) attach(l *link, tok uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.l, o.tok = l, tok
	return true
}

// Bind starts the server's stream over the offer's slot and the client slot peerTok
// with a ring of peerSize bytes, as the client's CLC Confirm names them (its DMB token
// and size). The client bound its side before it sent the Confirm and may have
// written already. For a Confirm whose slot the client did not bind to this offer,
// Bind fails with a [ProtocolError] and withdraws the offer as Cancel does; the link
// and its other streams are unaffected. Bind fails with [ErrOfferClosed] after Cancel
// or an earlier Bind, or when the link ended. The offer is consumed: Cancel then does
// nothing.
func (o *Offer) Bind(peerTok uint64, peerSize int) (*Stream, error) {
	o.mu.Lock()
	closed, l, tok := o.closed, o.l, o.tok
	o.closed = true
	o.mu.Unlock()
	if closed {
		return nil, ErrOfferClosed
	}
	if l == nil {
		// A new link's founding offer gets its slot before the client hears READY,
		// and the client confirms only after that.
		o.unpend()
		return nil, violation("confirmed before the link was set up")
	}
	return l.bindOffer(o, tok, peerTok, peerSize)
}

// Cancel withdraws the offer. A slot not yet announced is freed at once; an announced
// one (its Accept may have reached the client, which may be writing into it) waits for
// the client's release or the link's end, and the client's stream bound to it, if any,
// fails with a reset. After Bind, Cancel does nothing.
func (o *Offer) Cancel() {
	o.mu.Lock()
	closed := o.closed
	o.closed = true
	l, tok := o.l, o.tok
	o.mu.Unlock()
	if closed {
		return
	}
	o.unpend()
	if l != nil {
		l.withdraw(tok, o)
	}
}

// unpend forgets the new link o founds, if its client has not set it up: its secret
// sets nothing up any more, and the client process's next offers no longer wait for it.
func (o *Offer) unpend() {
	e := o.e
	e.mu.Lock()
	var settled []*pendingLink
	for ix, p := range e.pending {
		if p.offer == o {
			delete(e.pending, ix)
			settled = append(settled, p)
		}
	}
	e.mu.Unlock()
	for _, p := range settled {
		e.unpend(p)
	}
}

// ErrUnreachable is returned by [Connect] when no endpoint listens at the address a link
// ID names: the server is not reachable through shared memory from here (another
// network namespace without a shared directory, or it exited).
var ErrUnreachable = errors.New("smc: shm: peer endpoint not reachable")

// ErrNotProven is returned by [Connect] when the endpoint it reached could not prove it
// holds the link's secret: not the server that sent the Accept. Nothing was written to it.
var ErrNotProven = errors.New("smc: shm: the endpoint did not prove it is the server")

// Connect is the client side: given the link ID and token of a CLC Accept, it binds a
// new slot of its own (ring of size bytes) to the server's slot (ring of peerSize bytes,
// at most maxPeer) over the link to that server, setting the link up first if this
// process has none with that ID (the token is then the link's secret). It returns as
// soon as the stream can write, with no message to the server: the caller then sends
// its Confirm naming the stream's [Stream.Token], on which the server binds its side
// ([Offer.Bind]). dir is the endpoint directory ("" for abstract sockets). It fails
// with [ErrMemoryLimit] beyond the process bound, [ErrBadSize] for a peer ring beyond
// maxPeer or a ring of ours larger than the server maps (nothing written),
// [ErrUnreachable], [ErrNotProven], and [ErrOfferClosed] when the server withdrew the
// offer. Every failure comes before the stream exists: the caller can still decline.
func Connect(ctx context.Context, dir string, linkID uint32, token uint64, size, peerSize, maxPeer int) (*Stream, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	if !validRingSize(size) || !validRingSize(peerSize) || peerSize > maxPeer {
		return nil, ErrBadSize
	}
	if dir != "" {
		dir = filepath.Clean(dir) // as Addr's filepath.Join does: one key per address
	}
	key := clientKey{dir, linkID}
	l, stok, err := clientLink(ctx, dir, key, token, maxPeer)
	if err != nil {
		return nil, err
	}
	l.raiseMaxPeer(maxPeer)
	l.mu.Lock()
	pg, pi := l.peerSlot(stok, maxPeer)
	err = nil
	switch {
	case pg == nil || pg.ringSize != peerSize:
		err = fmt.Errorf("%w: the server's slot %#x is not a %d-byte ring on link %#x", ErrBadSize, stok, peerSize, linkID)
	case !offered(pg.header(pi), stok):
		err = ErrOfferClosed
	case int(pg.header(pi).consCtl.accept.Load()) < size:
		err = fmt.Errorf("%w: the server accepts rings of at most %d bytes", ErrBadSize, pg.header(pi).consCtl.accept.Load())
	}
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	// A slot of a new segment is handed out only after the server mapped the segment
	// (SEGACK), so the server finds it when it reads the Confirm; a segment of rings
	// larger than the server maps is refused there, before anything is bound.
	_, _, ctok, err := l.allocSlot(ctx, size, nil)
	if err != nil {
		return nil, err
	}
	return l.bindConnect(ctok, stok, maxPeer)
}

// clientLink returns the link key names and the server slot token to bind to: the
// process's link if it has one, else the link it sets up with token as its secret.
// While a Connect of this process sets the link up, the server may already offer
// slots on it (it registers the link before the client hears READY): a Connect
// holding such an Accept waits for that set-up, bounded by ctx, rather than dial
// the link again with a slot token for a secret, which the server rightly refuses.
func clientLink(ctx context.Context, dir string, key clientKey, token uint64, maxPeer int) (*link, uint64, error) {
	for {
		clientLinks.mu.Lock()
		l := clientLinks.m[key]
		if l != nil && l.alive() {
			clientLinks.mu.Unlock()
			return l, token, nil
		}
		if ch := clientLinks.dialing[key]; ch != nil {
			clientLinks.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, 0, fmt.Errorf("smc: shm: connect %s: waiting for the link being set up: %w", key.addr(), ctx.Err())
			}
		}
		if clientLinks.dialing == nil {
			clientLinks.dialing = make(map[clientKey]chan struct{})
		}
		ch := make(chan struct{})
		clientLinks.dialing[key] = ch
		clientLinks.mu.Unlock()
		l, stok, err := dialLink(ctx, dir, key, token, maxPeer)
		clientLinks.mu.Lock()
		delete(clientLinks.dialing, key)
		clientLinks.mu.Unlock()
		close(ch)
		return l, stok, err
	}
}

// dialLink sets up a new link, client side: HELLO → AUTH (checked against the secret
// and the pidfs inode of the process we reached) → PROOF, then waits for READY with
// the founding offer's slot.
func dialLink(ctx context.Context, dir string, key clientKey, token uint64, maxPeer int) (*link, uint64, error) {
	if dir != "" {
		if err := CheckDir(dir); err != nil {
			return nil, 0, err
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unixpacket", key.addr())
	if err != nil {
		if unreachable(err) {
			return nil, 0, fmt.Errorf("%w: %s: %v", ErrUnreachable, key.addr(), err)
		}
		return nil, 0, fmt.Errorf("smc: shm: connect %s: %w", key.addr(), err)
	}
	c := conn.(*net.UnixConn)
	fail := func(err error) (*link, uint64, error) {
		c.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, 0, fmt.Errorf("smc: shm: connect %s: %w", key.addr(), err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	defer stop()
	var secret [8]byte
	binary.LittleEndian.PutUint64(secret[:], token)
	nc := make([]byte, nonceLen)
	rand.Read(nc)
	if _, err := c.Write(newMsg(msgHello).u32(linkVersion).u32(key.id).bytes(nc)); err != nil {
		return fail(err)
	}
	buf := make([]byte, maxMsgLen+1)
	oob := make([]byte, oobSpace)
	body, ok := readSetup(c, buf, oob, msgAuth)
	if !ok {
		return fail(ErrNotProven)
	}
	ns := body[:nonceLen]
	if !hmac.Equal(body[nonceLen:], proof(secret, 's', nc, ns, peerPidfdIno(c))) {
		return fail(ErrNotProven)
	}
	if _, err := c.Write(newMsg(msgProof).bytes(proof(secret, 'c', nc, ns, 0))); err != nil {
		return fail(err)
	}
	if !stop() {
		return fail(ctx.Err())
	}
	c.SetDeadline(time.Time{})
	l, err := newLink(c, false, key.id, maxPeer)
	if err != nil {
		return fail(err)
	}
	l.key = key
	ready := make(chan uint64, 1)
	l.ready = ready
	go l.readLoop()
	select {
	case tok, ok := <-ready:
		if ok && tok != 0 {
			addClientLink(l)
			return l, tok, nil
		}
		l.shutdown(nil)
		return nil, 0, ErrOfferClosed
	case <-ctx.Done():
		l.shutdown(nil)
		return nil, 0, fmt.Errorf("smc: shm: connect %s: %w", key.addr(), ctx.Err())
	}
}

// aLongTimeAgo is a deadline that has always passed (and is not the zero time).
var aLongTimeAgo = time.Unix(1, 0)
