package proxy

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Advertiser maps an upstream broker to the address clients must use for it
// through the proxy. Advertise is given what a response says about broker
// node (its upstream host and port) and returns the proxy's host and port
// for that node; the proxy also learns the upstream address from it.
type Advertiser interface {
	Advertise(node int32, host string, port int32) (string, int32, error)
}

const (
	saslHandshakeKey    = 17
	saslAuthenticateKey = 36
)

// rewriteKeys are the responses that carry broker addresses.
var rewriteKeys = map[int16]bool{
	0:  true, // Produce (v10+: NodeEndpoints of new leaders, KIP-951)
	1:  true, // Fetch (v16+: NodeEndpoints, KIP-951)
	3:  true, // Metadata
	10: true, // FindCoordinator
	60: true, // DescribeCluster
	78: true, // ShareFetch
	79: true, // ShareAcknowledge
}

// RewriteAddresses replaces, in a decoded response, every broker address
// with the proxy's address for that broker, and reports whether it changed
// anything. Entries without a broker (node id < 0, as in a FindCoordinator
// error) are left as they are. DescribeCluster answers listing controllers
// (EndpointType 2) are left as they are: controllers are not proxied.
func RewriteAddresses(resp kmsg.Response, a Advertiser) (bool, error) {
	changed := false
	fix := func(node int32, host *string, port *int32) error {
		if node < 0 || *host == "" {
			return nil
		}
		h, p, err := a.Advertise(node, *host, *port)
		if err != nil {
			return fmt.Errorf("broker %d at %s:%d: %w", node, *host, *port, err)
		}
		if h != *host || p != *port {
			*host, *port = h, p
			changed = true
		}
		return nil
	}
	var err error
	switch r := resp.(type) {
	case *kmsg.MetadataResponse:
		for i := range r.Brokers {
			b := &r.Brokers[i]
			if err = fix(b.NodeID, &b.Host, &b.Port); err != nil {
				break
			}
		}
	case *kmsg.FindCoordinatorResponse:
		if r.Version < 4 {
			if r.ErrorCode == 0 {
				err = fix(r.NodeID, &r.Host, &r.Port)
			}
			break
		}
		for i := range r.Coordinators {
			c := &r.Coordinators[i]
			if c.ErrorCode != 0 {
				continue
			}
			if err = fix(c.NodeID, &c.Host, &c.Port); err != nil {
				break
			}
		}
	case *kmsg.DescribeClusterResponse:
		if r.EndpointType == 2 {
			break
		}
		for i := range r.Brokers {
			b := &r.Brokers[i]
			if err = fix(b.NodeID, &b.Host, &b.Port); err != nil {
				break
			}
		}
	case *kmsg.ProduceResponse:
		for i := range r.Brokers {
			b := &r.Brokers[i]
			if err = fix(b.NodeID, &b.Host, &b.Port); err != nil {
				break
			}
		}
	case *kmsg.FetchResponse:
		for i := range r.Brokers {
			b := &r.Brokers[i]
			if err = fix(b.NodeID, &b.Host, &b.Port); err != nil {
				break
			}
		}
	case *kmsg.ShareFetchResponse:
		for i := range r.NodeEndpoints {
			b := &r.NodeEndpoints[i]
			if err = fix(b.NodeID, &b.Host, &b.Port); err != nil {
				break
			}
		}
	case *kmsg.ShareAcknowledgeResponse:
		for i := range r.NodeEndpoints {
			b := &r.NodeEndpoints[i]
			if err = fix(b.NodeID, &b.Host, &b.Port); err != nil {
				break
			}
		}
	}
	return changed, err
}

// AdjustAPIVersions limits an ApiVersions response to the API keys and
// versions kmsg can decode, so clients never send the proxy a request it
// cannot read, and, when the broker supports SaslHandshake v1 and
// SaslAuthenticate but not SaslHandshake v0 (Kafka 4.0 removed it, KIP-896),
// adds v0: the proxy carries a v0 client's unframed SASL tokens in
// SaslAuthenticate requests (librdkafka before its fix #4983 will not
// authenticate unless v0 is listed). It reports whether it changed anything.
func AdjustAPIVersions(r *kmsg.ApiVersionsResponse) bool {
	changed := false
	kept := r.ApiKeys[:0]
	hasAuth := false
	for _, k := range r.ApiKeys {
		if k.ApiKey == saslAuthenticateKey {
			hasAuth = true
		}
	}
	for _, k := range r.ApiKeys {
		if k.ApiKey == saslHandshakeKey && k.MinVersion == 1 && k.MaxVersion >= 1 && hasAuth {
			k.MinVersion = 0
			changed = true
		}
		req := kmsg.RequestForKey(k.ApiKey)
		if req == nil || k.MinVersion > req.MaxVersion() {
			changed = true
			continue
		}
		if k.MaxVersion > req.MaxVersion() {
			k.MaxVersion = req.MaxVersion()
			changed = true
		}
		kept = append(kept, k)
	}
	r.ApiKeys = kept
	return changed
}

// decodeResponse decodes a response body of the given key and request
// version. An ApiVersions request of a version the broker does not support
// is answered in v0 (with UNSUPPORTED_VERSION), so such a body is decoded
// as v0 and the returned response has version 0.
func decodeResponse(key, version int16, body []byte) (kmsg.Response, error) {
	resp := kmsg.ResponseForKey(key)
	if resp == nil {
		return nil, frameErrorf("unknown API key %d", key)
	}
	if key == apiVersionsKey && len(body) >= 2 && int16(uint16(body[0])<<8|uint16(body[1])) == 35 {
		version = 0
	}
	resp.SetVersion(version)
	if err := resp.ReadFrom(body); err != nil {
		return nil, frameErrorf("malformed %s v%d response: %v", kmsg.NameForKey(key), version, err)
	}
	return resp, nil
}
