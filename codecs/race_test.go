//go:build race

package codecs_test

// raceEnabled: the race detector changes allocation counts.
const raceEnabled = true
