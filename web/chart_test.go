package web

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestNiceCeil(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{
		{0, 0}, {-3, 0}, {math.NaN(), 0}, {1, 1}, {1.2, 2}, {2.2, 2.5}, {3, 5}, {7, 10}, {42, 50}, {0.013, 0.02}, {1000, 1000},
	} {
		if got := niceCeil(c.in); got != c.want {
			t.Errorf("niceCeil(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestTimeTicks(t *testing.T) {
	from := time.Date(2026, 5, 1, 11, 7, 0, 0, time.UTC)
	ticks := timeTicks(from, from.Add(time.Hour), 0, 600)
	var labels []string
	for _, tk := range ticks {
		labels = append(labels, tk.Label)
		if tk.Pos < 0 || tk.Pos > 600 {
			t.Errorf("tick %+v outside the axis", tk)
		}
	}
	if got := strings.Join(labels, " "); got != "11:10 11:20 11:30 11:40 11:50 12:00" {
		t.Errorf("ticks of an hour: %s", got)
	}
	if n := len(timeTicks(from, from.Add(7*24*time.Hour), 0, 600)); n == 0 || n > 7 {
		t.Errorf("%d ticks for a week", n)
	}
	if timeTicks(from, from, 0, 600) != nil {
		t.Error("ticks for an empty span")
	}
}

func TestLineChartBreaksRuns(t *testing.T) {
	from := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return from.Add(time.Duration(m) * time.Minute) }
	times := []time.Time{at(0), at(1), at(2), at(5), at(7), at(8)}
	vals := []float64{1, 2, 3, 4, math.NaN(), 6}
	c := lineChart("t", "", from, at(10), time.Minute, times,
		[]seriesDef{{Name: "v", Class: "c", Value: func(i int) float64 { return vals[i] }}},
		func(v float64) string { return "x" })
	l := c.Lines[0]
	// Minutes 0-2 are one run; 5 is alone (gap before, unknown after); 8
	// is alone (unknown before).
	if len(l.Runs) != 1 || strings.Count(l.Runs[0], ",") != 3 || len(l.Dots) != 2 {
		t.Errorf("runs %q, dots %v", l.Runs, l.Dots)
	}
	if c.Empty || len(c.YTicks) != 5 || c.YTicks[4].Pos != c.Top {
		t.Errorf("y axis: %+v", c.YTicks)
	}
	for _, d := range l.Dots {
		if d.X < c.Left || d.X > c.Right || d.Y < c.Top || d.Y > c.Bottom {
			t.Errorf("dot %+v outside the plot", d)
		}
	}
	if e := lineChart("t", "", from, at(10), time.Minute, nil, nil, func(float64) string { return "" }); !e.Empty {
		t.Error("chart without points is not Empty")
	}
}

func TestBarChart(t *testing.T) {
	from := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	times := []time.Time{from, from.Add(time.Minute)}
	lost := []float64{3, 0}
	late := []float64{1, 2}
	c := barChart("t", "", from, from.Add(10*time.Minute), time.Minute, times, []seriesDef{
		{Name: "lost", Class: "l", Value: func(i int) float64 { return lost[i] }},
		{Name: "late", Class: "a", Value: func(i int) float64 { return late[i] }},
	})
	if len(c.Bars) != 3 {
		t.Fatalf("%d bars, want 3 (zero draws none): %+v", len(c.Bars), c.Bars)
	}
	slot := (c.Right - c.Left) / 10
	for _, b := range c.Bars {
		if b.X < c.Left || b.X+b.W > c.Left+2*slot+0.001 || b.Y+b.H != c.Bottom {
			t.Errorf("bar %+v out of its slot", b)
		}
	}
	// The tallest bar (3) reaches the top tick (nice ceiling 5 → 60%).
	if got := (c.Bottom - c.Bars[0].Y) / (c.Bottom - c.Top); math.Abs(got-0.6) > 1e-9 {
		t.Errorf("bar of 3 on a 0-5 axis has height %v", got)
	}
}
