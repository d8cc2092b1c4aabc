//go:build !race

package trainer

// raceDetector is true in a build with the race detector.
const raceDetector = false
