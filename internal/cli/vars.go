package cli

import (
	"github.com/alecthomas/kong"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/store"
)

// Vars are the kong variables that flag defaults refer to
// (default:"${events_topic}"), so every binary's topic defaults come from
// the audit contract. Pass it to kong.Parse.
func Vars() kong.Vars {
	return kong.Vars{
		"events_topic":       audit.DefaultEventsTopic,
		"verdicts_topic":     audit.DefaultVerdictsTopic,
		"dlq_topic":          audit.DefaultDLQTopic,
		"expectations_topic": audit.DefaultExpectationsTopic,
		"lag_topic":          audit.DefaultLagTopic,

		"default_replica_path":      store.DefaultReplicaPath,
		"default_replica_path_uuid": store.DefaultReplicaPathUUID,
	}
}
