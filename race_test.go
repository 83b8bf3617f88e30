//go:build race

package exipc_test

// raceEnabled scales the cross-process streams down under the race detector.
const raceEnabled = true
