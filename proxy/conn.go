package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// conn is one client connection and its connection to a broker. Two
// goroutines serve it: readRequests (client to broker) and readResponses
// (broker to client). Kafka answers a connection's requests in order, so a
// FIFO of pending requests pairs each response with its request.
type conn struct {
	p    *Proxy
	id   uint64
	node int32
	log  *slog.Logger

	client, up net.Conn
	cr, ur     *bufio.Reader
	cw, uw     *bufio.Writer
	clientAddr string
	clientIP   string

	inflight chan *pending
	done     chan struct{}
	once     sync.Once
	reason   string

	principal atomic.Pointer[string]

	// SASL exchange state: the request side sets the mechanism and the
	// claimed user, the response side counts successful steps.
	saslMu    sync.Mutex
	saslMech  string
	saslUser  string
	saslSteps int

	clientGone bool // response side only: stop writing to the client

	// SaslHandshake v0 bridging: after a v0 handshake the client sends
	// SASL tokens without Kafka framing; the request side wraps each in a
	// SaslAuthenticate v0 request and waits for the response side's
	// verdict on saslResult (saslMore, saslDone or saslFailed).
	saslResult  chan int
	rawSASL     bool // request side only
	rawClientID string
	rawCorr     int32
}

const (
	saslMore = iota
	saslDone
	saslFailed
)

// pending is a request forwarded to the broker and not yet answered.
type pending struct {
	hdr       RequestHeader
	start     time.Time
	size      int
	req       kmsg.Request // decoded when something needs it
	principal string
	group     string
	acks      int16
	produce   []PartitionData
	local     []byte // a response the proxy makes itself
	saslMech  string
	saslUser  string
	saslV0    bool // a SaslHandshake v0, sent to the broker as v1
	rawToken  bool // a bridged SASL token: answer it unframed
	// ready, if not nil, is closed once a streamed request has been read
	// and inspected whole; the response side waits for it.
	ready chan struct{}
}

func (p *Proxy) serve(raw net.Conn, node int32) {
	clientAddr := raw.RemoteAddr().String()
	log := p.log.With("client", clientAddr, "broker", node)
	client := raw
	var certUser string
	if p.cfg.ClientTLS != nil {
		tc := tls.Server(raw, p.cfg.ClientTLS)
		hctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			log.Warn("proxy: closing connection: TLS handshake failed", "err", err)
			p.stats.protocolClosed.Add(1)
			raw.Close()
			return
		}
		st := tc.ConnectionState()
		if len(st.VerifiedChains) > 0 && len(st.PeerCertificates) > 0 {
			certUser = certPrincipal(st.PeerCertificates[0])
		}
		client = tc
	}
	upAddr, err := p.upstreamFor(p.ctx, node)
	if err != nil {
		log.Warn("proxy: closing connection: no upstream broker", "err", err)
		p.stats.upstreamFailed.Add(1)
		client.Close()
		return
	}
	up, err := p.dial(p.ctx, upAddr)
	if err != nil {
		log.Warn("proxy: closing connection: cannot reach broker", "upstream", upAddr, "err", err)
		p.stats.upstreamFailed.Add(1)
		client.Close()
		return
	}
	c := &conn{
		p: p, id: p.connSeq.Add(1), node: node, log: log.With("upstream", upAddr),
		client: client, up: up,
		cr: bufio.NewReaderSize(client, 64<<10), cw: bufio.NewWriterSize(client, 64<<10),
		ur: bufio.NewReaderSize(up, 64<<10), uw: bufio.NewWriterSize(up, 64<<10),
		clientAddr: clientAddr,
		inflight:   make(chan *pending, p.cfg.MaxInFlight),
		done:       make(chan struct{}),
		saslResult: make(chan int, 1),
	}
	c.clientIP, _, _ = net.SplitHostPort(clientAddr)
	principal := Anonymous
	if certUser != "" {
		principal = certUser
	}
	c.principal.Store(&principal)

	p.conns.Store(c, struct{}{})
	p.stats.active.Add(1)
	defer func() {
		p.conns.Delete(c)
		p.stats.active.Add(-1)
	}()
	respDone := make(chan struct{})
	go func() {
		defer close(respDone)
		c.readResponses()
	}()
	c.readRequests()
	<-respDone
}

// close closes both sides once and logs why.
func (c *conn) close(reason string) {
	c.once.Do(func() {
		c.reason = reason
		close(c.done)
		c.client.Close()
		c.up.Close()
		c.log.Debug("proxy: connection closed", "reason", reason)
	})
}

// fail closes the connection for err, logged as the reason.
func (c *conn) fail(side string, err error) {
	var fe *FrameError
	switch {
	case errors.As(err, &fe):
		c.p.stats.protocolClosed.Add(1)
		c.log.Warn("proxy: closing connection: "+side+" broke the protocol", "reason", fe.Reason)
	case side == "broker":
		c.p.stats.upstreamFailed.Add(1)
		c.log.Info("proxy: closing connection: broker connection failed", "err", err)
	default:
		c.log.Info("proxy: closing connection", "side", side, "err", err)
	}
	c.close(side + ": " + err.Error())
}

func (c *conn) currentPrincipal() string { return *c.principal.Load() }

func (c *conn) key() clientKey {
	return clientKey{principal: c.currentPrincipal(), ip: c.clientIP}
}

// needsRequest says whether a request of key must be decoded.
func (c *conn) needsRequest(key int16) bool {
	switch key {
	case 17, 36: // SASL: the principal
		return true
	case 0: // Produce: acks, and what the observers count
		return true
	}
	if groupKeys[key] {
		return true
	}
	return len(c.p.audQ) > 0 && needsAuditDecode(key)
}

// groupKeys are the requests that name the client's consumer group.
var groupKeys = map[int16]bool{8: true, 9: true, 11: true, 12: true, 13: true, 14: true, 28: true, 68: true, 76: true, 78: true}

func requestGroup(req kmsg.Request) string {
	switch r := req.(type) {
	case *kmsg.OffsetCommitRequest:
		return r.Group
	case *kmsg.OffsetFetchRequest:
		if r.Group != "" {
			return r.Group
		}
		if len(r.Groups) == 1 {
			return r.Groups[0].Group
		}
	case *kmsg.JoinGroupRequest:
		return r.Group
	case *kmsg.HeartbeatRequest:
		return r.Group
	case *kmsg.LeaveGroupRequest:
		return r.Group
	case *kmsg.SyncGroupRequest:
		return r.Group
	case *kmsg.TxnOffsetCommitRequest:
		return r.Group
	case *kmsg.ConsumerGroupHeartbeatRequest:
		return r.Group
	case *kmsg.ShareGroupHeartbeatRequest:
		return r.GroupID
	case *kmsg.ShareFetchRequest:
		if r.GroupID != nil {
			return *r.GroupID
		}
	}
	return ""
}

func (c *conn) readRequests() {
	defer close(c.inflight)
	max := c.p.cfg.MaxFrameBytes
	for {
		size, err := readSize(c.cr, max)
		if err != nil {
			c.readFailed(err)
			return
		}
		var frame []byte
		if size >= streamMin && !c.rawSASL {
			var ok bool
			if frame, ok = c.streamProduce(size); ok {
				continue
			}
			if frame == nil {
				return
			}
		} else {
			frame = make([]byte, size)
			if err := readBody(c.cr, frame, 0, size); err != nil {
				c.readFailed(err)
				return
			}
		}
		if c.rawSASL {
			if !c.bridgeToken(frame) {
				return
			}
			continue
		}
		now := c.p.cfg.Now()
		hdr, err := ParseRequestHeader(frame)
		if err != nil {
			c.fail("client", err)
			return
		}
		c.p.stats.requests.Add(1)
		pd := &pending{hdr: hdr, start: now, size: len(frame), principal: c.currentPrincipal()}
		if hdr.Key == apiVersionsKey && hdr.Version > (&kmsg.ApiVersionsRequest{}).MaxVersion() {
			pd.local = unsupportedAPIVersions(hdr.CorrelationID)
			if !c.push(pd) {
				return
			}
			continue
		}
		if c.needsRequest(hdr.Key) {
			req := kmsg.RequestForKey(hdr.Key)
			req.SetVersion(hdr.Version)
			if err := req.ReadFrom(frame[hdr.BodyOffset:]); err != nil {
				c.fail("client", frameErrorf("malformed %s v%d request: %v", APIName(hdr.Key), hdr.Version, err))
				return
			}
			pd.req = req
			if err := c.inspectRequest(pd); err != nil {
				c.fail("client", err)
				return
			}
		}
		k := c.key()
		k.clientID = hdr.ClientID
		if groupKeys[hdr.Key] && pd.req != nil {
			if g := requestGroup(pd.req); g != "" {
				c.p.groups.set(k, g, now)
			}
		}
		pd.group = c.p.groups.get(k)

		if hdr.Key == saslHandshakeKey && hdr.Version == 0 {
			// The broker may not know v0 (Kafka 4.0): ask in v1, whose
			// request and response are v0's, then bridge the tokens.
			binary.BigEndian.PutUint16(frame[2:], 1)
			pd.saslV0 = true
		}

		noResponse := hdr.Key == 0 && pd.acks == 0
		if !noResponse && !c.push(pd) {
			return
		}
		if err := c.forward(c.uw, frame, c.cr.Buffered() == 0 || pd.saslV0); err != nil {
			c.fail("broker", fmt.Errorf("write request: %w", err))
			return
		}
		if noResponse {
			c.complete(pd, nil, 0, now)
		}
		if pd.saslV0 {
			switch c.awaitSASL() {
			case saslMore:
				c.rawSASL, c.rawClientID, c.rawCorr = true, hdr.ClientID, hdr.CorrelationID
			case saslFailed:
				return
			}
		}
	}
}

// streamMin is the size from which Produce requests are forwarded as they
// arrive (cut-through) instead of after they arrived whole.
const streamMin = 64 << 10

// streamHead is how much of a large frame is read before deciding to
// stream it: enough for the header and a Produce request's acks.
const streamHead = 1024

var framePool sync.Pool // *[]byte, for streamed Produce frames

// streamProduce reads a large frame's head; if it is a Produce request it
// forwards it while it arrives and returns ok. Otherwise it reads the rest
// and returns the whole frame (nil if the connection failed).
func (c *conn) streamProduce(size int) (frame []byte, ok bool) {
	bp, _ := framePool.Get().(*[]byte)
	if bp == nil || cap(*bp) < size {
		b := make([]byte, size)
		bp = &b
	}
	buf := (*bp)[:size]
	head := min(size, streamHead)
	if err := readBody(c.cr, buf[:head], 0, size); err != nil {
		c.readFailed(err)
		return nil, false
	}
	hdr, herr := ParseRequestHeader(buf[:head])
	acks, aok := int16(0), false
	if herr == nil && hdr.Key == 0 {
		acks, aok = produceAcks(buf[hdr.BodyOffset:head], hdr.Version, hdr.Flexible)
	}
	if !aok {
		// Not a Produce request, or an odd one: read it whole.
		whole := make([]byte, size)
		copy(whole, buf[:head])
		framePool.Put(bp)
		if err := readBody(c.cr, whole[:size], head, size); err != nil {
			c.readFailed(err)
			return nil, false
		}
		return whole, false
	}
	now := c.p.cfg.Now()
	c.p.stats.requests.Add(1)
	pd := &pending{hdr: hdr, start: now, size: size, principal: c.currentPrincipal(), acks: acks, ready: make(chan struct{})}
	k := c.key()
	k.clientID = hdr.ClientID
	pd.group = c.p.groups.get(k)
	inspected := false
	defer func() {
		if !inspected {
			close(pd.ready)
		}
	}()
	if acks != 0 && !c.push(pd) {
		return nil, false
	}
	var sz [4]byte
	binary.BigEndian.PutUint32(sz[:], uint32(size))
	c.uw.Write(sz[:])
	if _, err := c.uw.Write(buf[:head]); err != nil {
		c.fail("broker", fmt.Errorf("write request: %w", err))
		return nil, false
	}
	for off := head; off < size; {
		n, err := c.cr.Read(buf[off:min(size, off+256<<10)])
		if n > 0 {
			if _, werr := c.uw.Write(buf[off : off+n]); werr != nil {
				c.fail("broker", fmt.Errorf("write request: %w", werr))
				return nil, false
			}
			off += n
		}
		if err != nil {
			// The broker has part of a frame: that connection is spoilt.
			c.fail("client", &FrameError{Reason: fmt.Sprintf("peer closed inside a frame (%d of %d bytes)", off, size), Truncated: true})
			return nil, false
		}
	}
	if err := c.uw.Flush(); err != nil {
		c.fail("broker", fmt.Errorf("write request: %w", err))
		return nil, false
	}
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(hdr.Version)
	if err := req.ReadFrom(buf[hdr.BodyOffset:]); err != nil {
		c.fail("client", frameErrorf("malformed %s v%d request: %v", APIName(hdr.Key), hdr.Version, err))
		return nil, false
	}
	pd.req = req
	c.inspectRequest(pd) // copies what it keeps; the records are dropped
	inspected = true
	close(pd.ready)
	framePool.Put(bp)
	if acks == 0 {
		c.complete(pd, nil, 0, now)
	}
	return nil, true
}

// produceAcks reads acks from the start of a Produce request body.
func produceAcks(body []byte, version int16, flexible bool) (int16, bool) {
	off := 0
	if version >= 3 { // transactional_id first
		if flexible {
			l, n := binary.Uvarint(body)
			if n <= 0 {
				return 0, false
			}
			off = n
			if l > 0 {
				off += int(l - 1)
			}
		} else {
			if len(body) < 2 {
				return 0, false
			}
			l := int(int16(binary.BigEndian.Uint16(body)))
			off = 2
			if l > 0 {
				off += l
			}
		}
	}
	if off+2 > len(body) {
		return 0, false
	}
	return int16(binary.BigEndian.Uint16(body[off:])), true
}

// readFailed handles a failed read from the client.
func (c *conn) readFailed(err error) {
	select {
	case <-c.done:
		return // closed by the other side or by shutdown
	default:
	}
	var fe *FrameError
	if errors.Is(err, errCleanEOF) || errors.As(err, &fe) && fe.Truncated {
		// The client went away (cleanly or inside a frame): let the
		// response side collect the answers to what was already
		// forwarded, for the audit, then close.
		if !errors.Is(err, errCleanEOF) {
			c.log.Info("proxy: client disconnected mid-request", "reason", fe.Reason)
		}
		c.up.SetReadDeadline(time.Now().Add(c.p.cfg.DrainTimeout))
		return
	}
	c.fail("client", err)
}

func (c *conn) awaitSASL() int {
	select {
	case r := <-c.saslResult:
		return r
	case <-c.done:
		return saslFailed
	}
}

// bridgeToken sends an unframed SASL token (after a SaslHandshake v0) to
// the broker as a SaslAuthenticate v0 request and waits for its outcome;
// it returns false if the connection is closing.
func (c *conn) bridgeToken(token []byte) bool {
	c.rawCorr++
	hdr := RequestHeader{Key: saslAuthenticateKey, Version: 0, CorrelationID: c.rawCorr, ClientID: c.rawClientID}
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version = 0
	req.SASLAuthBytes = token
	frame := binary.BigEndian.AppendUint16(nil, uint16(hdr.Key))
	frame = binary.BigEndian.AppendUint16(frame, 0)
	frame = binary.BigEndian.AppendUint32(frame, uint32(hdr.CorrelationID))
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(hdr.ClientID)))
	frame = append(frame, hdr.ClientID...)
	frame = req.AppendTo(frame)
	c.p.stats.requests.Add(1)
	pd := &pending{hdr: hdr, start: c.p.cfg.Now(), size: len(token), req: req, principal: c.currentPrincipal(), rawToken: true}
	_ = c.inspectRequest(pd)
	if !c.push(pd) {
		return false
	}
	if err := c.forward(c.uw, frame, true); err != nil {
		c.fail("broker", fmt.Errorf("write request: %w", err))
		return false
	}
	switch c.awaitSASL() {
	case saslDone:
		c.rawSASL = false
	case saslFailed:
		return false
	}
	return true
}

func (c *conn) push(pd *pending) bool {
	select {
	case c.inflight <- pd:
		return true
	case <-c.done:
		return false
	}
}

// forward writes a frame (with its size) and flushes if asked.
func (c *conn) forward(w *bufio.Writer, frame []byte, flush bool) error {
	var size [4]byte
	binary.BigEndian.PutUint32(size[:], uint32(len(frame)))
	if _, err := w.Write(size[:]); err != nil {
		return err
	}
	if _, err := w.Write(frame); err != nil {
		return err
	}
	if flush {
		return w.Flush()
	}
	return nil
}

// inspectRequest reads what the proxy needs from a decoded request.
func (c *conn) inspectRequest(pd *pending) error {
	switch r := pd.req.(type) {
	case *kmsg.SASLHandshakeRequest:
		c.saslMu.Lock()
		c.saslMech, c.saslUser, c.saslSteps = r.Mechanism, "", 0
		c.saslMu.Unlock()
	case *kmsg.SASLAuthenticateRequest:
		c.saslMu.Lock()
		if c.saslUser == "" {
			c.saslUser = saslUser(c.saslMech, r.SASLAuthBytes)
		}
		pd.saslMech, pd.saslUser = c.saslMech, c.saslUser
		c.saslMu.Unlock()
		r.SASLAuthBytes = nil // the password stays out of the proxy's memory
	case *kmsg.ProduceRequest:
		pd.acks = r.Acks
		if len(c.p.obsQ) > 0 {
			for _, t := range r.Topics {
				name := topicName(t.Topic, t.TopicID, c.p.topicName)
				for _, part := range t.Partitions {
					n := countBatches(part.Records)
					pd.produce = append(pd.produce, PartitionData{Topic: name, Partition: part.Partition, Bytes: n.Bytes, Records: n.Records})
				}
			}
		}
		if len(c.p.audQ) == 0 {
			pd.req = nil // nothing else needs it: let the records go
		} else {
			for i := range r.Topics {
				for j := range r.Topics[i].Partitions {
					r.Topics[i].Partitions[j].Records = nil
				}
			}
		}
	}
	return nil
}

// unsupportedAPIVersions is the v0 answer Kafka gives an ApiVersions
// request of a version it does not know: UNSUPPORTED_VERSION with the
// ApiVersions range, so the client retries with a version in it.
func unsupportedAPIVersions(corr int32) []byte {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	k := kmsg.NewApiVersionsResponseApiKey()
	k.ApiKey, k.MinVersion, k.MaxVersion = apiVersionsKey, 0, (&kmsg.ApiVersionsRequest{}).MaxVersion()
	resp.ApiKeys = append(resp.ApiKeys, k)
	out := binary.BigEndian.AppendUint32(nil, uint32(corr))
	return resp.AppendTo(out)
}

func (c *conn) readResponses() {
	max := c.p.cfg.MaxFrameBytes
	defer func() {
		// Whatever is still pending never got an answer.
		for pd := range c.inflight {
			c.complete(pd, nil, 0, c.p.cfg.Now())
		}
	}()
	for pd := range c.inflight {
		if pd.local != nil {
			if !c.clientGone {
				if err := c.forward(c.cw, pd.local, len(c.inflight) == 0); err != nil {
					c.clientGone = true
				}
			}
			continue
		}
		frame, err := readFrame(c.ur, max)
		if err != nil {
			c.complete(pd, nil, 0, c.p.cfg.Now())
			select {
			case <-c.done:
				return
			default:
			}
			if errors.Is(err, errCleanEOF) {
				err = errors.New("broker closed the connection")
			}
			c.fail("broker", err)
			return
		}
		now := c.p.cfg.Now()
		out, err := c.handleResponse(pd, frame, now)
		if err != nil {
			c.complete(pd, nil, 0, now)
			c.fail("broker", err)
			return
		}
		c.p.stats.responses.Add(1)
		if c.clientGone {
			continue
		}
		if err := c.forward(c.cw, out, c.ur.Buffered() == 0 || len(c.inflight) == 0); err != nil {
			// The client is gone: keep reading the answers to what it
			// sent, for the audit.
			c.clientGone = true
			c.up.SetReadDeadline(time.Now().Add(c.p.cfg.DrainTimeout))
		}
	}
	c.cw.Flush()
	c.close("client closed the connection")
}

// handleResponse decodes, learns from, rewrites, observes and audits one
// response; it returns the frame to send to the client.
func (c *conn) handleResponse(pd *pending, frame []byte, now time.Time) ([]byte, error) {
	if pd.ready != nil {
		<-pd.ready
	}
	key := pd.hdr.Key
	corr, off, err := responseBodyOffset(frame, key, pd.hdr.Flexible)
	if err != nil {
		return nil, err
	}
	if corr != pd.hdr.CorrelationID {
		return nil, frameErrorf("response correlation id %d does not match the pending %s request's %d", corr, APIName(key), pd.hdr.CorrelationID)
	}
	must := rewriteKeys[key] || key == apiVersionsKey || pd.saslV0 || pd.rawToken
	if !must && pd.req == nil && len(c.p.obsQ) == 0 && key != 19 {
		c.complete(pd, nil, len(frame), now)
		return frame, nil
	}
	resp, err := decodeResponse(key, pd.hdr.Version, frame[off:])
	if err != nil {
		if must {
			return nil, err
		}
		c.p.stats.undecodable.Add(1)
		c.log.Warn("proxy: forwarding a response it cannot decode", "api", APIName(key), "version", pd.hdr.Version, "err", err)
		c.complete(pd, nil, len(frame), now)
		return frame, nil
	}
	c.p.learn(resp)
	c.inspectResponse(pd, resp)
	if pd.saslV0 {
		if r := resp.(*kmsg.SASLHandshakeResponse); r.ErrorCode == 0 {
			c.saslResult <- saslMore
		} else {
			c.saslResult <- saslDone // the client stays framed (and gives up)
		}
	}
	if pd.rawToken {
		r := resp.(*kmsg.SASLAuthenticateResponse)
		c.complete(pd, resp, len(frame), now)
		if r.ErrorCode != 0 {
			c.saslResult <- saslFailed
			return nil, fmt.Errorf("SASL authentication failed (%s): Kafka closes a SaslHandshake v0 connection", errorName(r.ErrorCode))
		}
		c.saslMu.Lock()
		done := c.saslSteps >= saslSteps(c.saslMech)
		c.saslMu.Unlock()
		if done {
			c.saslResult <- saslDone
		} else {
			c.saslResult <- saslMore
		}
		return r.SASLAuthBytes, nil // unframed: just the token (forward adds its length)
	}
	changed := false
	if r, ok := resp.(*kmsg.ApiVersionsResponse); ok {
		changed = AdjustAPIVersions(r)
	}
	if rewriteKeys[key] {
		ch, err := RewriteAddresses(resp, c.p)
		if err != nil {
			return nil, fmt.Errorf("rewrite %s response: %w", APIName(key), err)
		}
		if ch {
			c.p.stats.rewritten.Add(1)
		}
		changed = changed || ch
	}
	size := len(frame)
	if changed {
		out := make([]byte, off, off+len(frame))
		copy(out, frame[:off])
		frame = resp.AppendTo(out)
	}
	c.complete(pd, resp, size, now)
	return frame, nil
}

// inspectResponse follows the SASL exchange to name the principal.
func (c *conn) inspectResponse(pd *pending, resp kmsg.Response) {
	r, ok := resp.(*kmsg.SASLAuthenticateResponse)
	if !ok || r.ErrorCode != 0 {
		return
	}
	c.saslMu.Lock()
	defer c.saslMu.Unlock()
	c.saslSteps++
	if c.saslSteps < saslSteps(c.saslMech) {
		return
	}
	user := c.saslUser
	if user == "" {
		user = "unknown(" + c.saslMech + ")"
	}
	principal := "User:" + user
	c.principal.Store(&principal)
}

// complete hands a finished request to the observers and auditors. resp
// is nil if the response never came, could not be decoded, or was not
// needed; size is the response's size (0: none).
func (c *conn) complete(pd *pending, resp kmsg.Response, size int, now time.Time) {
	if pd.ready != nil {
		<-pd.ready
	}
	p := c.p
	if len(p.obsQ) > 0 {
		req := &RequestInfo{
			Time: pd.start, APIKey: pd.hdr.Key, APIVersion: pd.hdr.Version, CorrelationID: pd.hdr.CorrelationID,
			ClientID: pd.hdr.ClientID, ClientAddr: c.clientAddr, Principal: pd.principal, Group: pd.group,
			Broker: c.node, Size: pd.size, Acks: pd.acks, Produce: pd.produce,
		}
		rinfo := &ResponseInfo{Size: size, Latency: now.Sub(pd.start)}
		if pd.hdr.Key == 0 && pd.acks == 0 {
			rinfo = &ResponseInfo{None: true}
		}
		if resp != nil {
			rinfo.ErrorCounts = errorCounts(resp)
			switch r := resp.(type) {
			case *kmsg.ProduceResponse:
				setProduceCodes(req.Produce, r, p.topicName)
			case *kmsg.FetchResponse:
				rinfo.Fetch = fetchData(r, p.topicName)
			}
		} else if size == 0 && !rinfo.None {
			rinfo.ErrorCounts = map[int16]int{noResponseCode: 1}
			for i := range req.Produce {
				req.Produce[i].ErrorCode = noResponseCode
			}
		}
		for _, q := range p.obsQ {
			q.offer(observation{req, rinfo})
		}
	}
	if len(p.audQ) > 0 && pd.req != nil && auditModes[pd.hdr.Key] != auditNever {
		if pd.hdr.Key == 0 && pd.acks == 0 {
			return // no response: nothing to say about authorization
		}
		var rs []Resource
		if pd.hdr.Key == 36 {
			rs = saslAudit(pd, resp, size)
		} else {
			rs = auditResources(pd.req, resp, p.topicName)
		}
		if len(rs) == 0 {
			return
		}
		ev := &AuditEvent{
			ID: uuid.NewString(), Time: now, Method: APIName(pd.hdr.Key), APIKey: pd.hdr.Key, APIVersion: pd.hdr.Version,
			CorrelationID: pd.hdr.CorrelationID, Principal: pd.principal, ClientAddr: c.clientAddr, ClientID: pd.hdr.ClientID,
			Group: pd.group, Broker: c.node, ClusterID: p.ClusterID(), Proxy: p.cfg.Name, Allowed: true, Resources: rs,
		}
		if pd.hdr.Key == 36 && pd.saslUser != "" {
			ev.Principal = "User:" + pd.saslUser // who tried to authenticate
		}
		for _, r := range rs {
			if !r.Allowed {
				ev.Allowed = false
			}
			if ev.ErrorCode == 0 && r.ErrorCode != 0 {
				ev.ErrorCode = r.ErrorCode
			}
		}
		p.stats.audited.Add(1)
		for _, q := range p.audQ {
			q.offer(ev)
		}
	}
}

// saslAudit audits a failed authentication: an error answer, or the
// broker closing the connection instead of answering.
func saslAudit(pd *pending, resp kmsg.Response, size int) []Resource {
	r := literal("CLUSTER", clusterResource, "AUTHENTICATE")
	r.Detail = "mechanism=" + pd.saslMech
	if pd.saslUser != "" {
		r.Detail += " user=" + pd.saslUser
	}
	switch ar := resp.(type) {
	case *kmsg.SASLAuthenticateResponse:
		if ar.ErrorCode == 0 {
			return nil
		}
		setOutcome(&r, ar.ErrorCode)
		r.Allowed = false
	default:
		if size > 0 {
			return nil // answered, but not decoded: nothing to say
		}
		setOutcome(&r, noResponseCode)
		r.Allowed = false
		r.Detail += "; the broker closed the connection without answering"
	}
	return []Resource{r}
}

func setProduceCodes(parts []PartitionData, r *kmsg.ProduceResponse, names topicNamer) {
	if len(parts) == 0 {
		return
	}
	type tp struct {
		t string
		p int32
	}
	codes := make(map[tp]int16, len(parts))
	for _, t := range r.Topics {
		n := topicName(t.Topic, t.TopicID, names)
		for _, p := range t.Partitions {
			codes[tp{n, p.Partition}] = p.ErrorCode
		}
	}
	for i := range parts {
		parts[i].ErrorCode = codes[tp{parts[i].Topic, parts[i].Partition}]
	}
}

func fetchData(r *kmsg.FetchResponse, names topicNamer) []PartitionData {
	var out []PartitionData
	for _, t := range r.Topics {
		n := topicName(t.Topic, t.TopicID, names)
		for _, p := range t.Partitions {
			cnt := countBatches(p.RecordBatches)
			if cnt.Bytes == 0 && p.ErrorCode == 0 {
				continue
			}
			out = append(out, PartitionData{Topic: n, Partition: p.Partition, Bytes: cnt.Bytes, Records: cnt.Records, ErrorCode: p.ErrorCode})
		}
	}
	return out
}
