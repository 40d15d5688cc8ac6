package cli_test

import (
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// TestSaramaSCRAM: the correlator's and learner's sarama configuration
// (--security-protocol SASL_PLAINTEXT --sasl-mechanism SCRAM-SHA-512)
// authenticates against a cluster that only has a SCRAM-SHA-512 user.
func TestSaramaSCRAM(t *testing.T) {
	c := kafkatest.NewCluster(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "kaudit", "pw"),
		kfake.AllowAutoTopicCreation())
	k := cli.Kafka{Brokers: c.ListenAddrs(), SecurityProtocol: "SASL_PLAINTEXT", SASLMechanism: "SCRAM-SHA-512",
		SASLUsername: "kaudit", SASLPassword: "pw"}
	cfg, err := k.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(k.Brokers, cfg)
	if err != nil {
		t.Fatalf("sarama with SCRAM-SHA-512: %v", err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "t", Value: sarama.StringEncoder("x")}); err != nil {
		t.Fatalf("produce: %v", err)
	}
	opts, err := k.KgoOpts()
	if err != nil || len(opts) != 2 { // seed brokers, SASL
		t.Fatalf("KgoOpts: %d options, %v", len(opts), err)
	}
}
