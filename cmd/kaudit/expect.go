package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/processors/expectations"
)

type expectCmd struct {
	Set    expectSetCmd    `cmd:"" help:"Declare the consumer groups that must consume every message of a topic, and the deadline."`
	List   expectListCmd   `cmd:"" help:"List the declared expectations."`
	Delete expectDeleteCmd `cmd:"" help:"Remove the expectation of a topic."`
}

type expectFlags struct {
	cli.Kafka         `embed:""`
	ExpectationsTopic string        `help:"Compacted topic of declared expectations." env:"KAUDIT_EXPECTATIONS_TOPIC" default:"${expectations_topic}"`
	Timeout           time.Duration `help:"Give up after this long." default:"30s"`
}

func (f *expectFlags) store() (*expectations.Store, context.Context, context.CancelFunc, error) {
	opts, err := f.KgoOpts()
	if err != nil {
		return nil, nil, nil, err
	}
	s, err := expectations.NewStore(f.ExpectationsTopic, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.Timeout)
	return s, ctx, cancel, nil
}

type expectSetCmd struct {
	expectFlags `embed:""`

	Topic    string        `arg:"" help:"The audited topic."`
	Groups   []string      `arg:"" help:"Consumer groups that must consume every message: a,b,c or a b c."`
	Deadline time.Duration `help:"Deadline after the acknowledgement (0: the correlator's default)." default:"0s"`
	sloFlags `embed:""`
}

// sloFlags are the SLOs of `kaudit expect set` (evaluated by `kaudit alerts`).
type sloFlags struct {
	Completeness float64       `help:"Completeness SLO of each group, in percent (0 < c <= 100): the share of messages that must be delivered by the deadline (0: none)." default:"0"`
	P99          time.Duration `name:"p99" help:"Latency SLO of each group: 99% of messages consumed within this end-to-end latency (0: none)." default:"0s"`
	SLOWindow    cli.Span      `name:"slo-window" help:"Window the SLOs are measured over (e.g. 30d; 0: 30d)." default:"0"`
}

// apply sets the SLOs on e.
func (f *sloFlags) apply(e *expectations.Expectation) {
	e.Completeness = f.Completeness
	e.P99 = expectations.Duration(f.P99)
	e.SLOWindow = expectations.Duration(f.SLOWindow)
}

// sloText describes the SLOs of e, "" if it has none.
func sloText(e *expectations.Expectation) string {
	if !e.HasSLO() {
		return ""
	}
	var parts []string
	if e.Completeness != 0 {
		parts = append(parts, fmt.Sprintf("completeness %v%%", e.Completeness))
	}
	if e.P99 != 0 {
		parts = append(parts, "p99 "+time.Duration(e.P99).String())
	}
	w := e.Window()
	window := w.String()
	if w%(24*time.Hour) == 0 {
		window = fmt.Sprintf("%dd", w/(24*time.Hour))
	}
	return strings.Join(parts, ", ") + " over " + window
}

func (c *expectSetCmd) Run() error {
	s, ctx, cancel, err := c.store()
	if err != nil {
		return err
	}
	defer cancel()
	defer s.Close()
	groups, err := splitGroups(c.Groups)
	if err != nil {
		return err
	}
	e := &expectations.Expectation{Topic: c.Topic, Groups: groups, Deadline: expectations.Duration(c.Deadline), SinceNs: time.Now().UnixNano()}
	c.sloFlags.apply(e)
	if err := s.Set(ctx, e); err != nil {
		return err
	}
	fmt.Printf("%s: %d expected groups %s, deadline %s (for messages acknowledged from now on)\n", c.Topic, len(groups), groupList(groups), deadlineText(e.Deadline))
	if slo := sloText(e); slo != "" {
		fmt.Printf("%s: SLO of each group: %s\n", c.Topic, slo)
	}
	return nil
}

type expectListCmd struct {
	expectFlags `embed:""`
}

func (c *expectListCmd) Run() error {
	s, ctx, cancel, err := c.store()
	if err != nil {
		return err
	}
	defer cancel()
	defer s.Close()
	all, err := s.List(ctx)
	if err != nil {
		return err
	}
	topics := make([]string, 0, len(all))
	for t := range all {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TOPIC\tGROUPS\tDEADLINE\tSINCE\tSLO")
	for _, t := range topics {
		e := all[t]
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t, groupList(e.Groups), deadlineText(e.Deadline), time.Unix(0, e.SinceNs).UTC().Format(time.RFC3339), cmp.Or(sloText(e), "-"))
	}
	return w.Flush()
}

type expectDeleteCmd struct {
	expectFlags `embed:""`

	Topic string `arg:"" help:"The audited topic."`
}

func (c *expectDeleteCmd) Run() error {
	s, ctx, cancel, err := c.store()
	if err != nil {
		return err
	}
	defer cancel()
	defer s.Close()
	if err := s.Delete(ctx, c.Topic); err != nil {
		return err
	}
	fmt.Printf("%s: expectation removed\n", c.Topic)
	return nil
}

func deadlineText(d expectations.Duration) string {
	if d == 0 {
		return "default"
	}
	return time.Duration(d).String()
}

// splitGroups takes the group arguments as typed: "a,b,c", "a b c" or a
// mix. kong applies no separator to positional arguments, so the commas
// are split here. Empty names are refused, as are duplicates.
func splitGroups(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		for _, g := range strings.Split(a, ",") {
			g = strings.TrimSpace(g)
			if g == "" {
				return nil, fmt.Errorf("empty consumer group name in %q", a)
			}
			if slices.Contains(out, g) {
				return nil, fmt.Errorf("consumer group %q given twice", g)
			}
			out = append(out, g)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("at least one consumer group is required")
	}
	return out, nil
}

// groupList prints groups so that one group can never be read as several:
// [a b c], each name quoted if it holds a space, a comma, a bracket or a
// quote.
func groupList(groups []string) string {
	parts := make([]string, len(groups))
	for i, g := range groups {
		if g == "" || strings.ContainsAny(g, " ,[]\"'\t") {
			g = strconv.Quote(g)
		}
		parts[i] = g
	}
	return "[" + strings.Join(parts, " ") + "]"
}
