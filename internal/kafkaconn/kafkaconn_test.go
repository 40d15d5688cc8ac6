package kafkaconn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/internal/kafkaconn"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// pingKgo connects a franz-go client using opts (TLS handshake, SASL, an
// ApiVersions request) and, if that worked, produces one record.
func pingKgo(c *kfake.Cluster, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.AllowAutoTopicCreation()}, opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		return err
	}
	return cl.ProduceSync(ctx, &kgo.Record{Topic: "ping", Value: []byte("x")}).FirstErr()
}

// pingSarama produces one record with a sarama client configured by sec.
func pingSarama(t *testing.T, c *kfake.Cluster, sec kafkaconn.Security) error {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_1_0_0
	cfg.Producer.Return.Successes = true
	cfg.Net.DialTimeout = 2 * time.Second
	cfg.Metadata.Retry.Max = 0
	if err := sec.ApplySarama(cfg); err != nil {
		t.Fatalf("ApplySarama: %v", err)
	}
	p, err := sarama.NewSyncProducer(c.ListenAddrs(), cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: "ping", Value: sarama.StringEncoder("x")})
	return err
}

// TestSASL authenticates franz-go and sarama clients against a kfake
// cluster with SASL users of each mechanism: the right password works, a
// wrong one is refused.
func TestSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c := kafkatest.NewCluster(t, kfake.EnableSASL(), kfake.Superuser(mech, "auditor", "s3cret"),
				kfake.AllowAutoTopicCreation())
			good := kafkaconn.Security{Protocol: "sasl_plaintext", Mechanism: strings.ToLower(mech), Username: "auditor", Password: "s3cret"}
			bad := good
			bad.Password = "wrong"
			for name, sec := range map[string]kafkaconn.Security{"good": good, "bad": bad} {
				opts, err := sec.KgoOpts()
				if err != nil {
					t.Fatal(err)
				}
				kerr := pingKgo(c, opts)
				serr := pingSarama(t, c, sec)
				if name == "good" && (kerr != nil || serr != nil) {
					t.Errorf("right password: franz-go %v, sarama %v", kerr, serr)
				}
				if name == "bad" && (kerr == nil || serr == nil) {
					t.Errorf("wrong password accepted: franz-go %v, sarama %v", kerr, serr)
				}
			}
		})
	}
}

// TestTLS connects to a kfake cluster whose certificate names another host
// (as a broker behind an address not in its certificate): refused by
// default, accepted with SkipHostname (the chain is still verified: a
// cluster with a certificate of an unknown CA is refused) or SkipVerify.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caFile := newCA(t, dir, "ca")
	serverCert := issue(t, ca, "broker.example")
	c := kafkatest.NewCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}}), kfake.AllowAutoTopicCreation())
	otherCA, _ := newCA(t, dir, "other")
	stranger := kafkatest.NewCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{issue(t, otherCA, "broker.example")}}),
		kfake.AllowAutoTopicCreation())

	for name, tc := range map[string]struct {
		sec     kafkaconn.Security
		cluster *kfake.Cluster
		ok      bool
	}{
		"host name checked":     {kafkaconn.Security{Protocol: "SSL", CAFile: caFile}, c, false},
		"chain only":            {kafkaconn.Security{Protocol: "SSL", CAFile: caFile, SkipHostname: true}, c, true},
		"chain of another CA":   {kafkaconn.Security{Protocol: "SSL", CAFile: caFile, SkipHostname: true}, stranger, false},
		"no verification":       {kafkaconn.Security{Protocol: "SSL", SkipVerify: true}, stranger, true},
		"plaintext against TLS": {kafkaconn.Security{}, c, false},
	} {
		t.Run(name, func(t *testing.T) {
			opts, err := tc.sec.KgoOpts()
			if err != nil {
				t.Fatal(err)
			}
			kerr := pingKgo(tc.cluster, opts)
			var serr error
			if tc.sec.Protocol != "" { // sarama waits long on a plaintext handshake with TLS
				serr = pingSarama(t, tc.cluster, tc.sec)
			}
			if tc.ok && (kerr != nil || serr != nil) {
				t.Errorf("want a connection: franz-go %v, sarama %v", kerr, serr)
			}
			if !tc.ok && kerr == nil {
				t.Error("franz-go connected")
			}
			if !tc.ok && tc.sec.Protocol != "" && serr == nil {
				t.Error("sarama connected")
			}
		})
	}
}

func TestBadSettings(t *testing.T) {
	dir := t.TempDir()
	_, caFile := newCA(t, dir, "ca")
	for name, tc := range map[string]struct {
		sec  kafkaconn.Security
		want string
	}{
		"protocol":          {kafkaconn.Security{Protocol: "TLS"}, "security.protocol"},
		"no mechanism":      {kafkaconn.Security{Protocol: "SASL_SSL"}, "GSSAPI is not supported"},
		"gssapi":            {kafkaconn.Security{Protocol: "SASL_PLAINTEXT", Mechanism: "GSSAPI"}, "GSSAPI is not supported"},
		"cert without key":  {kafkaconn.Security{Protocol: "SSL", CertFile: caFile}, "go together"},
		"missing CA file":   {kafkaconn.Security{Protocol: "SSL", CAFile: filepath.Join(dir, "nope.pem")}, "ssl.ca.location"},
		"CA file, no certs": {kafkaconn.Security{Protocol: "SSL", CAFile: writeFile(t, dir, "empty.pem", "x")}, "no PEM certificate"},
	} {
		_, kerr := tc.sec.KgoOpts()
		serr := tc.sec.ApplySarama(sarama.NewConfig())
		if kerr == nil || serr == nil || !strings.Contains(kerr.Error(), tc.want) || !strings.Contains(serr.Error(), tc.want) {
			t.Errorf("%s: KgoOpts %v, ApplySarama %v; want both to say %q", name, kerr, serr, tc.want)
		}
	}
	if opts, err := (kafkaconn.Security{}).KgoOpts(); err != nil || len(opts) != 0 {
		t.Errorf("plaintext: %d options, %v", len(opts), err)
	}
}

// newCA makes a self-signed CA, written to dir/name.pem.
func newCA(t *testing.T, dir, name string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	file := writeFile(t, dir, name+".pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, file
}

// issue makes a server certificate for host, signed by ca.
func issue(t *testing.T, ca tls.Certificate, host string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Leaf, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Certificate[0]}, PrivateKey: key}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
