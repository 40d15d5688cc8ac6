package cli

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kgo"
)

// AuditKafka is how to reach the audit cluster from a command that also
// talks to an application cluster (kaudit traffic, kaudit ingest). Without
// --audit-brokers the audit cluster is the application cluster, reached with
// its settings; with it, only the --audit-* security settings apply: the
// application cluster's credentials are never sent to another cluster.
type AuditKafka struct {
	AuditBrokers          []string `help:"Bootstrap servers of the audit cluster (default: --brokers, with its security settings)." env:"KAUDIT_AUDIT_BROKERS" sep:","`
	AuditSecurityProtocol string   `name:"audit-security-protocol" help:"security.protocol of --audit-brokers: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (the application cluster's settings are not inherited)." env:"KAUDIT_AUDIT_SECURITY_PROTOCOL" default:"PLAINTEXT" enum:"PLAINTEXT,SSL,SASL_PLAINTEXT,SASL_SSL"`
	AuditSASLMechanism    string   `name:"audit-sasl-mechanism" help:"sasl.mechanism of --audit-brokers: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512." env:"KAUDIT_AUDIT_SASL_MECHANISM" default:"PLAIN" enum:"PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"`
	AuditSASLUsername     string   `name:"audit-sasl-username" help:"sasl.username of --audit-brokers." env:"KAUDIT_AUDIT_SASL_USERNAME"`
	AuditSASLPassword     string   `name:"audit-sasl-password" help:"sasl.password of --audit-brokers." env:"KAUDIT_AUDIT_SASL_PASSWORD"`
	AuditTLSCAFile        string   `name:"audit-tls-ca-file" help:"PEM file of CA certificates to trust for --audit-brokers; system roots if empty." env:"KAUDIT_AUDIT_TLS_CA_FILE" type:"path"`
	AuditTLSCertFile      string   `name:"audit-tls-cert-file" help:"PEM client certificate for --audit-brokers." env:"KAUDIT_AUDIT_TLS_CERT_FILE" type:"path"`
	AuditTLSKeyFile       string   `name:"audit-tls-key-file" help:"PEM client key for --audit-brokers." env:"KAUDIT_AUDIT_TLS_KEY_FILE" type:"path"`
}

// kafka returns the audit cluster's settings as a Kafka.
func (a *AuditKafka) kafka() *Kafka {
	return &Kafka{
		Brokers:          a.AuditBrokers,
		SecurityProtocol: a.AuditSecurityProtocol,
		SASLMechanism:    a.AuditSASLMechanism,
		SASLUsername:     a.AuditSASLUsername,
		SASLPassword:     a.AuditSASLPassword,
		TLSCAFile:        a.AuditTLSCAFile,
		TLSCertFile:      a.AuditTLSCertFile,
		TLSKeyFile:       a.AuditTLSKeyFile,
	}
}

// Audit returns the audit cluster's brokers and franz-go options (TLS,
// SASL): app's own without --audit-brokers, otherwise the --audit-* ones
// only. An --audit-* security setting without --audit-brokers is an error.
func (a *AuditKafka) Audit(app *Kafka) ([]string, []kgo.Opt, error) {
	if len(a.AuditBrokers) == 0 {
		if a.AuditSecurityProtocol != "PLAINTEXT" && a.AuditSecurityProtocol != "" || a.AuditSASLUsername != "" || a.AuditSASLPassword != "" ||
			a.AuditTLSCAFile != "" || a.AuditTLSCertFile != "" || a.AuditTLSKeyFile != "" {
			return nil, nil, errors.New("the --audit-* security settings need --audit-brokers (without it the audit cluster is --brokers, with its settings)")
		}
		opts, err := app.ClientOpts()
		return app.Brokers, opts, err
	}
	k := a.kafka()
	opts, err := k.ClientOpts()
	return k.Brokers, opts, err
}
