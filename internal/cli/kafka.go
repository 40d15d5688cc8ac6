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
	"fmt"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/internal/kafkaconn"
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

// Security is the connection's security settings.
func (k *Kafka) Security() kafkaconn.Security {
	return kafkaconn.Security{
		Protocol:  k.SecurityProtocol,
		Mechanism: k.SASLMechanism,
		Username:  k.SASLUsername,
		Password:  k.SASLPassword,
		CAFile:    k.TLSCAFile,
		CertFile:  k.TLSCertFile,
		KeyFile:   k.TLSKeyFile,
	}
}

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
	opts, err := k.Security().KgoOpts()
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return opts, nil
}

// Sarama returns a goka/sarama client configuration for the cluster (TLS,
// SASL PLAIN or SCRAM).
func (k *Kafka) Sarama() (*sarama.Config, error) {
	cfg := goka.DefaultConfig()
	if err := k.Security().ApplySarama(cfg); err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return cfg, nil
}
