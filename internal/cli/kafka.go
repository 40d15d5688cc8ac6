// Package cli holds the flag groups shared by kaudit's binaries: Kafka
// connection settings (with TLS and SASL), logging and metrics. Each group is
// a struct with kong tags, so its flags, environment variables (KAUDIT_*) and
// --help text are declared in one place:
//
//	var cfg struct {
//		Kafka cli.Kafka `embed:""`
//		Log   cli.Log   `embed:""`
//	}
//	kong.Parse(&cfg)
//	opts, err := cfg.Kafka.KgoOpts()
package cli

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Kafka is how to reach a Kafka cluster.
type Kafka struct {
	Brokers          []string `help:"Kafka bootstrap servers (host:port, comma separated)." env:"KAUDIT_BROKERS" default:"127.0.0.1:9092" sep:","`
	SecurityProtocol string   `help:"security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL." env:"KAUDIT_SECURITY_PROTOCOL" default:"PLAINTEXT" enum:"PLAINTEXT,SSL,SASL_PLAINTEXT,SASL_SSL"`
	SASLMechanism    string   `name:"sasl-mechanism" help:"sasl.mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512." env:"KAUDIT_SASL_MECHANISM" default:"PLAIN" enum:"PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"`
	SASLUsername     string   `name:"sasl-username" help:"sasl.username." env:"KAUDIT_SASL_USERNAME"`
	SASLPassword     string   `name:"sasl-password" help:"sasl.password." env:"KAUDIT_SASL_PASSWORD"`
	TLSCAFile        string   `name:"tls-ca-file" help:"PEM file of CA certificates to trust (ssl.ca.location); system roots if empty." env:"KAUDIT_TLS_CA_FILE" type:"path"`
	TLSCertFile      string   `name:"tls-cert-file" help:"PEM client certificate (ssl.certificate.location)." env:"KAUDIT_TLS_CERT_FILE" type:"path"`
	TLSKeyFile       string   `name:"tls-key-file" help:"PEM client key (ssl.key.location)." env:"KAUDIT_TLS_KEY_FILE" type:"path"`
}

func (k *Kafka) tls() (*tls.Config, error) {
	if !strings.HasSuffix(k.SecurityProtocol, "SSL") {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if k.TLSCAFile != "" {
		pem, err := os.ReadFile(k.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka tls: no certificates in %s", k.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	if k.TLSCertFile != "" || k.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(k.TLSCertFile, k.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (k *Kafka) sasl() bool { return strings.HasPrefix(k.SecurityProtocol, "SASL") }

// KgoOpts returns franz-go options for the cluster: the seed brokers and
// ClientOpts.
func (k *Kafka) KgoOpts() ([]kgo.Opt, error) {
	opts, err := k.ClientOpts()
	if err != nil {
		return nil, err
	}
	return append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, opts...), nil
}

// ClientOpts returns the franz-go options for TLS and SASL.
func (k *Kafka) ClientOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	tlsCfg, err := k.tls()
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	if k.sasl() {
		var m sasl.Mechanism
		switch k.SASLMechanism {
		case "PLAIN":
			m = plain.Auth{User: k.SASLUsername, Pass: k.SASLPassword}.AsMechanism()
		case "SCRAM-SHA-256":
			m = scram.Auth{User: k.SASLUsername, Pass: k.SASLPassword}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			m = scram.Auth{User: k.SASLUsername, Pass: k.SASLPassword}.AsSha512Mechanism()
		default:
			return nil, fmt.Errorf("kafka: unsupported sasl.mechanism %q", k.SASLMechanism)
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// Sarama returns a goka/sarama client configuration for the cluster.
func (k *Kafka) Sarama() (*sarama.Config, error) {
	cfg := goka.DefaultConfig()
	tlsCfg, err := k.tls()
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = tlsCfg
	}
	if k.sasl() {
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.User = k.SASLUsername
		cfg.Net.SASL.Password = k.SASLPassword
		switch k.SASLMechanism {
		case "PLAIN":
			cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case "SCRAM-SHA-256", "SCRAM-SHA-512":
			return nil, fmt.Errorf("kafka: sasl.mechanism %s is not supported by the goka correlator yet; use PLAIN", k.SASLMechanism)
		}
	}
	return cfg, nil
}
