package web

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// chart is an SVG chart, laid out in Go and drawn by the overview
// template: every number in it is computed here, every text is escaped by
// html/template.
type chart struct {
	Title   string
	Caption string
	W, H    float64
	// The plot area.
	Left, Top, Right, Bottom float64
	XTicks, YTicks           []tick
	Lines                    []line
	Bars                     []bar
	Legend                   []legendItem
	Empty                    bool
}

type tick struct {
	Pos   float64
	Label string
}

// line is one series of a line chart: its unbroken runs as SVG polyline
// points, and its isolated points as dots.
type line struct {
	Class string
	Runs  []string
	Dots  []dot
}

type dot struct{ X, Y float64 }

type bar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type legendItem struct {
	Name, Class string
}

// seriesDef is one series: a value per point (NaN when unknown).
type seriesDef struct {
	Name, Class string
	Value       func(i int) float64
}

const (
	chartW      = 720
	chartH      = 220
	chartLeft   = 56
	chartRight  = chartW - 14
	chartTop    = 14
	chartBottom = chartH - 26
)

func newChart(title, caption string, from, to time.Time) *chart {
	c := &chart{Title: title, Caption: caption, W: chartW, H: chartH,
		Left: chartLeft, Top: chartTop, Right: chartRight, Bottom: chartBottom}
	c.XTicks = timeTicks(from, to, c.Left, c.Right)
	return c
}

// xOf maps t into the plot area between from and to.
func (c *chart) xOf(t, from, to time.Time) float64 {
	span := to.Sub(from)
	if span <= 0 {
		return c.Left
	}
	return c.Left + float64(t.Sub(from))/float64(span)*(c.Right-c.Left)
}

func (c *chart) yOf(v, top float64) float64 {
	if top <= 0 {
		return c.Bottom
	}
	return c.Bottom - v/top*(c.Bottom-c.Top)
}

// lineChart draws series over times (one per point, ascending); a run
// breaks where a value is unknown or the next point is more than step
// later.
func lineChart(title, caption string, from, to time.Time, step time.Duration, times []time.Time,
	series []seriesDef, label func(float64) string) *chart {
	c := newChart(title, caption, from, to)
	top := 0.0
	for _, s := range series {
		for i := range times {
			if v := s.Value(i); !math.IsNaN(v) && v > top {
				top = v
			}
		}
	}
	if top == 0 {
		c.Empty = true
	}
	top = niceCeil(top)
	c.YTicks = valueTicks(top, c, label)
	for _, s := range series {
		l := line{Class: s.Class}
		var run []dot
		flush := func() {
			switch {
			case len(run) == 1:
				l.Dots = append(l.Dots, run[0])
			case len(run) > 1:
				pts := make([]string, len(run))
				for i, d := range run {
					pts[i] = coord(d.X) + "," + coord(d.Y)
				}
				l.Runs = append(l.Runs, strings.Join(pts, " "))
			}
			run = run[:0]
		}
		for i, t := range times {
			v := s.Value(i)
			if math.IsNaN(v) {
				flush()
				continue
			}
			if i > 0 && t.Sub(times[i-1]) > step {
				flush()
			}
			// A point is drawn in the middle of its interval.
			run = append(run, dot{c.xOf(t.Add(step/2), from, to), c.yOf(v, top)})
		}
		flush()
		c.Lines = append(c.Lines, l)
		c.Legend = append(c.Legend, legendItem{s.Name, s.Class})
	}
	return c
}

// barChart draws the series side by side within each point's interval;
// zero values draw nothing.
func barChart(title, caption string, from, to time.Time, step time.Duration, times []time.Time,
	series []seriesDef) *chart {
	c := newChart(title, caption, from, to)
	top := 0.0
	for _, s := range series {
		for i := range times {
			if v := s.Value(i); v > top {
				top = v
			}
		}
	}
	if top == 0 {
		c.Empty = true
	}
	top = max(niceCeil(top), 1)
	c.YTicks = valueTicks(top, c, func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) })
	slot := c.xOf(from.Add(step), from, to) - c.Left
	w := max(slot/float64(len(series)+1), 1)
	for i, t := range times {
		x0 := c.xOf(t, from, to) + w/2
		for j, s := range series {
			v := s.Value(i)
			if !(v > 0) {
				continue
			}
			y := c.yOf(v, top)
			c.Bars = append(c.Bars, bar{X: x0 + float64(j)*w, Y: y, W: w, H: c.Bottom - y, Class: s.Class,
				Title: fmt.Sprintf("%s %s: %s", t.UTC().Format("15:04"), s.Name, strconv.FormatFloat(v, 'f', -1, 64))})
		}
	}
	for _, s := range series {
		c.Legend = append(c.Legend, legendItem{s.Name, s.Class})
	}
	return c
}

// MidX and MidY are the middle of the plot area.
func (c *chart) MidX() float64 { return (c.Left + c.Right) / 2 }
func (c *chart) MidY() float64 { return (c.Top + c.Bottom) / 2 }

func coord(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if !(v > 0) || math.IsInf(v, 0) {
		return 0
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// valueTicks puts five ticks from 0 to top.
func valueTicks(top float64, c *chart, label func(float64) string) []tick {
	if top <= 0 {
		return []tick{{c.Bottom, label(0)}}
	}
	var out []tick
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		out = append(out, tick{c.yOf(v, top), label(v)})
	}
	return out
}

// tickSteps are the candidate distances between time ticks.
var tickSteps = []time.Duration{
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// timeTicks labels [from, to] with at most 7 ticks on round UTC times.
func timeTicks(from, to time.Time, left, right float64) []tick {
	span := to.Sub(from)
	if span <= 0 {
		return nil
	}
	step := tickSteps[len(tickSteps)-1]
	for _, s := range tickSteps {
		if span/s <= 6 {
			step = s
			break
		}
	}
	layout := "15:04"
	if span > 24*time.Hour {
		layout = "Jan 2 15:04"
	}
	var out []tick
	for t := from.UTC().Truncate(step); !t.After(to); t = t.Add(step) {
		if t.Before(from) {
			continue
		}
		x := left + float64(t.Sub(from))/float64(span)*(right-left)
		out = append(out, tick{x, t.Format(layout)})
	}
	return out
}
