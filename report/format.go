package report

import (
	"fmt"
	"math"
)

// FormatMicros renders a latency in microseconds: "850 µs" below a
// millisecond, "12.34 ms" from there, "-" when unknown (NaN or negative).
func FormatMicros(us float64) string {
	switch {
	case math.IsNaN(us) || us < 0:
		return "-"
	case us < 1000:
		return fmt.Sprintf("%.0f µs", us)
	default:
		return fmt.Sprintf("%.2f ms", us/1000)
	}
}
