//go:build rdkafka

package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSettingsSet(t *testing.T) {
	var s settings
	for _, kv := range [][2]string{
		{"topic", "audit_topic"},
		{"bootstrap.servers", "SASL_SSL://a:9093, b:9094"},
		{"security.protocol", "sasl_ssl"},
		{"sasl.mechanisms", "scram-sha-512"},
		{"queue.buffering.max.ms", "20"},
		{"queue.buffering.max.messages", "1000"},
		{"enqueue.timeout.ms", "15"},
		{"format", "blog-json"},
		{"request.required.acks", "1"},
		{"compression.codec", "zstd"},
	} {
		if err := s.set(kv[0], kv[1]); err != nil {
			t.Fatalf("set %s=%s: %v", kv[0], kv[1], err)
		}
	}
	if s.topic != "audit_topic" || !slices.Equal(s.brokers, []string{"a:9093", "b:9094"}) ||
		s.protocol != "SASL_SSL" || s.mechanism != "SCRAM-SHA-512" || *s.linger != 20*time.Millisecond ||
		s.queueSize != 1000 || s.enqueueTimeout != 15*time.Millisecond || s.format != formatInterceptorJSON ||
		s.acks != "1" || s.compression == nil {
		t.Fatalf("settings %+v", s)
	}
	// An empty value (librdkafka's NULL) resets to the default.
	if err := s.set("topic", ""); err != nil || s.topic != "" {
		t.Fatalf("reset topic: %v, %q", err, s.topic)
	}

	for _, kv := range [][2]string{
		{"bootstrap.servers", "nohost"},
		{"bootstrap.servers", "a:port"},
		{"security.protocol", "tls"},
		{"topic", "bad topic"},
		{"topic", strings.Repeat("t", 250)},
		{"queue.buffering.max.messages", "0"},
		{"enqueue.timeout.ms", "-1"},
		{"acks", "2"},
		{"log.level", "loud"},
		{"ssl.certificate.location", "/nonexistent"},
		{"ssl.keystore.location", "/x.p12"},
		{"nope", "1"},
	} {
		if err := s.set(kv[0], kv[1]); err == nil {
			t.Errorf("set %s=%q accepted", kv[0], kv[1])
		}
	}
	if near := nearest("bootstrap.server"); near != "bootstrap.servers" {
		t.Errorf("nearest(bootstrap.server) = %q", near)
	}
	if near := nearest("completely.different"); near != "" {
		t.Errorf("nearest(completely.different) = %q", near)
	}
}

func TestResolve(t *testing.T) {
	client := clientProps{clientID: "app", brokers: "k1:9092,k2:9092", protocol: "sasl_plaintext", mechanism: "PLAIN", username: "u", password: "p"}

	// Nothing set: the client's brokers and credentials, kaudit's topic.
	var s settings
	a, err := s.resolve(client)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.brokers, []string{"k1:9092", "k2:9092"}) || a.topic != "kaudit.events" ||
		a.queueSize != defaultQueueSize || a.closeTimeout != defaultCloseTimeout || a.format != formatKaudit {
		t.Fatalf("resolved %+v", a)
	}
	// clientID, auto topic creation, compression, SASL.
	if len(a.opts) != 4 {
		t.Errorf("%d client options, want 4 (client ID, topic creation, compression, SASL)", len(a.opts))
	}

	// Own brokers: the client's credentials are not sent there.
	s = settings{}
	if err := s.set("bootstrap.servers", "audit:9093"); err != nil {
		t.Fatal(err)
	}
	if a, err = s.resolve(client); err != nil || len(a.opts) != 3 {
		t.Fatalf("resolve with own brokers: %v, %d options", err, len(a.opts))
	}

	// An inherited mechanism the plugin cannot use is an on_new error.
	s = settings{}
	if _, err := s.resolve(clientProps{brokers: "k:1", protocol: "SASL_SSL"}); err == nil || !strings.Contains(err.Error(), "GSSAPI") {
		t.Errorf("inherited GSSAPI: %v", err)
	}
	// No brokers at all.
	if _, err := s.resolve(clientProps{}); err == nil {
		t.Error("resolved without brokers")
	}
	// A certificate without its key.
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir)
	s = settings{}
	for _, kv := range [][2]string{{"security.protocol", "ssl"}, {"ssl.ca.location", certFile}, {"ssl.certificate.location", certFile}} {
		if err := s.set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.resolve(client); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("certificate without key: %v", err)
	}
	if err := s.set("ssl.key.location", keyFile); err != nil {
		t.Fatal(err)
	}
	cfg, err := s.tlsConfig()
	if err != nil || len(cfg.Certificates) != 1 || cfg.RootCAs == nil || cfg.InsecureSkipVerify {
		t.Fatalf("TLS config %+v: %v", cfg, err)
	}
	if err := s.set("ssl.endpoint.identification.algorithm", "none"); err != nil {
		t.Fatal(err)
	}
	if cfg, err = s.tlsConfig(); err != nil || !cfg.InsecureSkipVerify || cfg.VerifyConnection == nil {
		t.Fatalf("no host name check must still verify the chain: %+v, %v", cfg, err)
	}
	// A key file is not a certificate.
	if err := s.set("ssl.certificate.location", keyFile); err == nil {
		t.Error("a key accepted as certificate")
	}
}

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kaudit-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
