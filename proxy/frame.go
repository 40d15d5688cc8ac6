package proxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultMaxFrameBytes is the largest request or response frame the proxy
// accepts by default: Kafka's own socket.request.max.bytes (100 MiB).
const DefaultMaxFrameBytes = 100 << 20

// apiVersionsKey is the one API whose response header is never flexible.
const apiVersionsKey = 18

// A FrameError is a protocol violation on one connection: the proxy closes
// that connection and logs Reason; every other connection is unaffected.
type FrameError struct {
	Reason string
	// Truncated is set when the peer closed the connection inside a
	// frame (a client disconnecting mid-request).
	Truncated bool
}

func (e *FrameError) Error() string { return "kafka protocol: " + e.Reason }

func frameErrorf(format string, args ...any) error {
	return &FrameError{Reason: fmt.Sprintf(format, args...)}
}

// errCleanEOF is a peer closing its side between two frames.
var errCleanEOF = errors.New("connection closed between frames")

// readFrame reads one size-prefixed frame from r and returns its payload
// (without the 4-byte size). A peer that closes between frames gives
// errCleanEOF; one that closes inside a frame, a FrameError saying how much
// of the frame arrived; a frame larger than max, a FrameError without
// reading it.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	l, err := readSize(r, max)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, l)
	if err := readBody(r, buf, 0, l); err != nil {
		return nil, err
	}
	return buf, nil
}

// readSize reads a frame's 4-byte size and checks it against max.
func readSize(r *bufio.Reader, max int) (int, error) {
	var size [4]byte
	n, err := io.ReadFull(r, size[:])
	if err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return 0, errCleanEOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, &FrameError{Reason: fmt.Sprintf("peer closed inside a frame's size (%d of 4 bytes)", n), Truncated: true}
		}
		return 0, err
	}
	l := int32(binary.BigEndian.Uint32(size[:]))
	if l < 0 || int64(l) > int64(max) {
		return 0, frameErrorf("frame of %d bytes is over the limit of %d bytes", l, max)
	}
	return int(l), nil
}

// readBody fills buf[from:] of a frame of total bytes.
func readBody(r *bufio.Reader, buf []byte, from, total int) error {
	n, err := io.ReadFull(r, buf[from:])
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &FrameError{Reason: fmt.Sprintf("peer closed inside a frame (%d of %d bytes)", from+n, total), Truncated: true}
		}
		return err
	}
	return nil
}

// RequestHeader is the parsed header of a request frame.
type RequestHeader struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      string
	// Flexible is whether the request (and, except ApiVersions, its
	// response) uses KIP-482 flexible encoding at this version.
	Flexible bool
	// BodyOffset is where the request body starts in the frame.
	BodyOffset int
}

// ParseRequestHeader parses and checks the header of a request frame: the
// API key and version must be ones kmsg can decode (the proxy caps the
// versions it advertises in ApiVersions to those), except ApiVersions above
// its known versions, which the proxy answers itself. The frame is not
// modified.
func ParseRequestHeader(frame []byte) (RequestHeader, error) {
	var h RequestHeader
	if len(frame) < 10 {
		return h, frameErrorf("request frame of %d bytes is shorter than a request header", len(frame))
	}
	h.Key = int16(binary.BigEndian.Uint16(frame[0:]))
	h.Version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.CorrelationID = int32(binary.BigEndian.Uint32(frame[4:]))
	req := kmsg.RequestForKey(h.Key)
	if req == nil {
		return h, frameErrorf("unknown API key %d", h.Key)
	}
	if h.Version < 0 {
		return h, frameErrorf("negative version %d of %s", h.Version, kmsg.NameForKey(h.Key))
	}
	if h.Version > req.MaxVersion() && h.Key != apiVersionsKey {
		return h, frameErrorf("%s version %d is above the highest known version %d", kmsg.NameForKey(h.Key), h.Version, req.MaxVersion())
	}
	if h.Version <= req.MaxVersion() {
		req.SetVersion(h.Version)
		h.Flexible = req.IsFlexible()
	}
	// An ApiVersions request above the known versions keeps Flexible false:
	// the proxy answers it in v0 without reading its body or header tags.
	off := 8
	idLen := int(int16(binary.BigEndian.Uint16(frame[off:])))
	off += 2
	if idLen > 0 {
		if off+idLen > len(frame) {
			return h, frameErrorf("client id of %d bytes runs past the %d-byte frame", idLen, len(frame))
		}
		h.ClientID = string(frame[off : off+idLen])
		off += idLen
	} else if idLen < -1 {
		return h, frameErrorf("invalid client id length %d", idLen)
	}
	if h.Flexible {
		n, err := skipTags(frame[off:])
		if err != nil {
			return h, frameErrorf("request header tags: %v", err)
		}
		off += n
	}
	h.BodyOffset = off
	return h, nil
}

// responseBodyOffset returns where the body of a response frame starts,
// after its correlation id and, for flexible responses other than
// ApiVersions, its header tags; it also returns the correlation id.
func responseBodyOffset(frame []byte, key int16, flexible bool) (corr int32, off int, err error) {
	if len(frame) < 4 {
		return 0, 0, frameErrorf("response frame of %d bytes has no correlation id", len(frame))
	}
	corr = int32(binary.BigEndian.Uint32(frame))
	off = 4
	if flexible && key != apiVersionsKey {
		n, err := skipTags(frame[off:])
		if err != nil {
			return corr, 0, frameErrorf("response header tags: %v", err)
		}
		off += n
	}
	return corr, off, nil
}

// skipTags skips a KIP-482 tagged-field section and returns its length.
func skipTags(b []byte) (int, error) {
	num, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, errors.New("truncated tag count")
	}
	off := n
	if num > uint64(len(b)) {
		return 0, fmt.Errorf("%d tags in %d bytes", num, len(b))
	}
	for range num {
		_, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return 0, errors.New("truncated tag key")
		}
		off += n
		size, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return 0, errors.New("truncated tag size")
		}
		off += n
		if size > uint64(len(b)-off) {
			return 0, fmt.Errorf("tag of %d bytes runs past the frame", size)
		}
		off += int(size)
	}
	return off, nil
}

// appendFrame appends a size-prefixed frame made of head and body to dst.
func appendFrame(dst, head, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(head)+len(body)))
	dst = append(dst, head...)
	return append(dst, body...)
}
