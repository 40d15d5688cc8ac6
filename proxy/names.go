package proxy

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkaNames are Kafka's own API names where kmsg spells them differently.
var kafkaNames = map[int16]string{
	4:  "LeaderAndIsr",
	17: "SaslHandshake",
	22: "InitProducerId",
	29: "DescribeAcls",
	30: "CreateAcls",
	31: "DeleteAcls",
	36: "SaslAuthenticate",
	45: "AlterPartitionReassignments",
	50: "DescribeUserScramCredentials",
	51: "AlterUserScramCredentials",
}

// APIName returns Kafka's name of an API key, as in Kafka's protocol guide
// (and Confluent's audit-log methodName after "kafka.").
func APIName(key int16) string {
	if n, ok := kafkaNames[key]; ok {
		return n
	}
	if n := kmsg.NameForKey(key); n != "" && n != "Unknown" {
		return n
	}
	return fmt.Sprintf("ApiKey%d", key)
}
