package proxy_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/auditors"
	"github.com/kaudit/kaudit/proxy/traffic"
)

// trafficSink collects the observer's records through the real log
// auditor.
type trafficSink struct {
	buf *itest.SyncBuffer
	agg *traffic.Aggregator
}

func newTrafficSink() *trafficSink {
	buf := &itest.SyncBuffer{}
	lg := auditors.NewLog(buf, nil, auditors.FormatKaudit, nil)
	return &trafficSink{buf: buf, agg: traffic.New(traffic.Config{Writers: []traffic.Writer{lg}})}
}

// produced sums the Produce records per principal and topic.
func (s *trafficSink) produced(t *testing.T) map[[2]string]int64 {
	t.Helper()
	out := map[[2]string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(s.buf.String()), "\n") {
		var r traffic.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r.API == "Produce" && r.Topic != "" {
			out[[2]string{r.Principal, r.Topic}] += r.Records
		}
	}
	return out
}

type certs struct {
	pool           *x509.CertPool
	server, client tls.Certificate
}

func newCerts(t *testing.T) certs {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, name pkix.Name, usage x509.ExtKeyUsage, ips ...net.IP) tls.Certificate {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: name, IPAddresses: ips,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return certs{
		pool:   pool,
		server: leaf(2, pkix.Name{CommonName: "127.0.0.1"}, x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1")),
		client: leaf(3, pkix.Name{CommonName: "tls-user", Organization: []string{"kaudit"}}, x509.ExtKeyUsageClientAuth),
	}
}

// TestTLSBothSides: a broker that speaks TLS (trusted through the upstream
// CA), clients that reach the proxy over mutual TLS; the principal is the
// client certificate's subject.
func TestTLSBothSides(t *testing.T) {
	itest.Integration(t)
	cs := newCerts(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(2, "tls-topic"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cs.server}}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sink := newTrafficSink()
	r := start(t, proxy.Config{
		Upstream:    c.ListenAddrs(),
		ClientTLS:   &tls.Config{Certificates: []tls.Certificate{cs.server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: cs.pool},
		UpstreamTLS: &tls.Config{RootCAs: cs.pool},
		Observers:   []proxy.Observer{sink.agg},
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.p.Addr()), kgo.DefaultProduceTopic("tls-topic"),
		kgo.DialTLSConfig(&tls.Config{RootCAs: cs.pool, Certificates: []tls.Certificate{cs.client}}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 25 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("secret")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()

	// A client without a certificate does not get in.
	noCert, _ := kgo.NewClient(kgo.SeedBrokers(r.p.Addr()), kgo.DialTLSConfig(&tls.Config{RootCAs: cs.pool}))
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	if err := noCert.Ping(pctx); err == nil {
		t.Error("a client without a certificate got through")
	}
	pcancel()
	noCert.Close()

	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	got := sink.produced(t)
	if n := got[[2]string{"User:CN=tls-user,O=kaudit", "tls-topic"}]; n != 25 {
		t.Errorf("records by the certificate's principal: %d, want 25 (all: %v)", n, got)
	}
}

// TestSASLHandshakeV0 runs a sarama producer that authenticates with
// SaslHandshake v0 (unframed SASL tokens) through the proxy to a broker
// that only knows v1: the proxy bridges the tokens and names the
// principal.
func TestSASLHandshakeV0(t *testing.T) {
	itest.Integration(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "v0-topic"), kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "sam", "sam-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sink := newTrafficSink()
	r := start(t, proxy.Config{Upstream: c.ListenAddrs(), Observers: []proxy.Observer{sink.agg}})

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_1_0_0
	cfg.ClientID = "sarama-v0"
	cfg.Producer.Return.Successes = true
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	cfg.Net.SASL.Version = sarama.SASLHandshakeV0
	cfg.ApiVersionsRequest = false // sarama's rule for v0
	cfg.Net.SASL.User, cfg.Net.SASL.Password = "sam", "sam-secret"
	prod, err := sarama.NewSyncProducer([]string{r.p.Addr()}, cfg)
	if err != nil {
		t.Fatalf("sarama through the proxy: %v", err)
	}
	for range 7 {
		if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "v0-topic", Value: sarama.StringEncoder("v0")}); err != nil {
			t.Fatal(err)
		}
	}
	prod.Close()

	// Wrong password: refused, as by the broker.
	cfg.Net.SASL.Password = "wrong"
	cfg.Metadata.Retry.Max = 0
	if p, err := sarama.NewSyncProducer([]string{r.p.Addr()}, cfg); err == nil {
		p.Close()
		t.Error("a wrong password got through the bridge")
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if n := sink.produced(t)[[2]string{"User:sam", "v0-topic"}]; n != 7 {
		t.Errorf("records by User:sam: %d, want 7\n%s", n, sink.buf.String())
	}
	if bytes.Contains([]byte(sink.buf.String()), []byte("sam-secret")) {
		t.Error("the password reached the audit output")
	}
}
