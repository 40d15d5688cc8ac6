// Package kafkaconn turns the security settings of a Kafka connection, in
// librdkafka's terms (security.protocol, sasl.*, ssl.*), into franz-go
// options and a sarama configuration. The command-line flags (internal/cli)
// and the librdkafka plugin's audit.* properties both use it.
//
//	sec := kafkaconn.Security{Protocol: "SASL_SSL", Mechanism: "SCRAM-SHA-512",
//		Username: "auditor", Password: pw, CAFile: "/etc/kafka/ca.pem"}
//	opts, err := sec.KgoOpts()       // kgo.DialTLSConfig, kgo.SASL
//	err = sec.ApplySarama(saramaCfg) // Net.TLS, Net.SASL (PLAIN or SCRAM)
package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Security is how a connection is encrypted and authenticated. The zero
// value is PLAINTEXT.
type Security struct {
	// Protocol is security.protocol: PLAINTEXT (or empty), SSL,
	// SASL_PLAINTEXT or SASL_SSL, in any case.
	Protocol string
	// Mechanism is sasl.mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512,
	// in any case. Required with a SASL protocol (librdkafka's default,
	// GSSAPI, is not supported).
	Mechanism          string
	Username, Password string
	// CAFile is a PEM file of the CA certificates to trust (system roots
	// if empty); CertFile and KeyFile a PEM client certificate and its
	// unencrypted key, both or neither.
	CAFile, CertFile, KeyFile string
	// SkipVerify disables certificate verification
	// (enable.ssl.certificate.verification=false).
	SkipVerify bool
	// SkipHostname verifies the certificate chain but not the host name
	// (ssl.endpoint.identification.algorithm=none).
	SkipHostname bool
}

func (s Security) protocol() (tlsOn, saslOn bool, err error) {
	switch strings.ToUpper(s.Protocol) {
	case "", "PLAINTEXT":
		return false, false, nil
	case "SSL":
		return true, false, nil
	case "SASL_PLAINTEXT":
		return false, true, nil
	case "SASL_SSL":
		return true, true, nil
	}
	return false, false, fmt.Errorf("kafkaconn: security.protocol %q is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", s.Protocol)
}

func (s Security) mechanism() (string, error) {
	m := strings.ToUpper(s.Mechanism)
	switch m {
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		return m, nil
	case "":
		return "", errors.New("kafkaconn: a SASL security.protocol needs sasl.mechanism PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (GSSAPI is not supported)")
	}
	return "", fmt.Errorf("kafkaconn: sasl.mechanism %s is not supported (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 are)", m)
}

// TLS returns the TLS configuration of an SSL or SASL_SSL protocol, nil
// for the others.
func (s Security) TLS() (*tls.Config, error) {
	tlsOn, _, err := s.protocol()
	if err != nil || !tlsOn {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pool, err := LoadCAs(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafkaconn: ssl.ca.location: %w", err)
		}
		cfg.RootCAs = pool
	}
	if s.CertFile != "" || s.KeyFile != "" {
		if s.CertFile == "" || s.KeyFile == "" {
			return nil, errors.New("kafkaconn: ssl.certificate.location and ssl.key.location go together")
		}
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafkaconn: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	switch {
	case s.SkipVerify:
		cfg.InsecureSkipVerify = true
	case s.SkipHostname:
		// Verify the chain, not the host name.
		cfg.InsecureSkipVerify = true
		roots := cfg.RootCAs
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("kafkaconn: broker sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	}
	return cfg, nil
}

// KgoOpts returns the franz-go options for s: kgo.DialTLSConfig and
// kgo.SASL, as the protocol needs.
func (s Security) KgoOpts() ([]kgo.Opt, error) {
	_, saslOn, err := s.protocol()
	if err != nil {
		return nil, err
	}
	var opts []kgo.Opt
	tlsCfg, err := s.TLS()
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	if saslOn {
		m, err := s.mechanism()
		if err != nil {
			return nil, err
		}
		var mech sasl.Mechanism
		switch m {
		case "PLAIN":
			mech = plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
		case "SCRAM-SHA-256":
			mech = scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			mech = scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
		}
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// ApplySarama sets cfg's Net.TLS and Net.SASL for s.
func (s Security) ApplySarama(cfg *sarama.Config) error {
	_, saslOn, err := s.protocol()
	if err != nil {
		return err
	}
	tlsCfg, err := s.TLS()
	if err != nil {
		return err
	}
	if tlsCfg != nil {
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = tlsCfg
	}
	if !saslOn {
		return nil
	}
	m, err := s.mechanism()
	if err != nil {
		return err
	}
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Handshake = true
	cfg.Net.SASL.User = s.Username
	cfg.Net.SASL.Password = s.Password
	switch m {
	case "PLAIN":
		cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case "SCRAM-SHA-256":
		cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{} }
	case "SCRAM-SHA-512":
		cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
			return &scramClient{sha512: true}
		}
	}
	return nil
}

// scramClient is sarama's SCRAMClient on top of franz-go's SCRAM
// implementation, so that both clients share one.
type scramClient struct {
	sha512 bool
	auth   scram.Auth
	sess   sasl.Session
	done   bool
}

func (c *scramClient) Begin(user, password, authzID string) error {
	c.auth = scram.Auth{User: user, Pass: password, Zid: authzID}
	return nil
}

// Step returns the client-first message on the first call (sarama passes
// an empty challenge), then answers the server's messages.
func (c *scramClient) Step(challenge string) (string, error) {
	if c.sess == nil {
		m := c.auth.AsSha256Mechanism()
		if c.sha512 {
			m = c.auth.AsSha512Mechanism()
		}
		sess, first, err := m.Authenticate(context.Background(), "")
		if err != nil {
			return "", fmt.Errorf("kafkaconn: scram: %w", err)
		}
		c.sess = sess
		return string(first), nil
	}
	done, resp, err := c.sess.Challenge([]byte(challenge))
	if err != nil {
		return "", fmt.Errorf("kafkaconn: scram: %w", err)
	}
	c.done = done
	return string(resp), nil
}

func (c *scramClient) Done() bool { return c.done }

// LoadCAs reads a PEM file of CA certificates.
func LoadCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("no PEM certificate in %s", file)
	}
	return pool, nil
}
