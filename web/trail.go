package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/report"
)

// maxIDLen bounds correlation IDs: longer ones are "not found" without a
// query (kaudit's interceptors write 36-character UUIDs).
const maxIDLen = 256

type trailPage struct {
	ID       string
	Events   []trailEvent
	Verdicts []trailVerdict
}

type trailEvent struct {
	Time, What, Where, Client, Detail string
	Class                             string
}

type trailVerdict struct {
	codecs.Verdict
	Where    string
	AckUs    float64
	E2EUs    float64
	CauseAll string
}

func (s *Server) trail(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if id == "" {
		s.render(w, http.StatusOK, "message", messagePage{Title: "Trail of a message",
			Text: "Enter a correlation ID (the correlation_id header of a message)."})
		return
	}
	if len(id) > maxIDLen || !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
		s.notFound(w, id)
		return
	}
	ctx, cancel := s.queryContext(r)
	defer cancel()
	t, err := report.Trail(ctx, s.conn, s.cfg.Database, id)
	if errors.Is(err, report.ErrNotFound) {
		s.notFound(w, id)
		return
	}
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	s.render(w, http.StatusOK, "trail", trailView(t))
}

func (s *Server) notFound(w http.ResponseWriter, id string) {
	s.render(w, http.StatusNotFound, "message", messagePage{Title: "Not found",
		Text: "No audit event or verdict has this correlation ID:", ID: id})
}

// trailView lays a trail out as the page shows it: events in time order
// with their latencies, then the verdict of each group.
func trailView(t *report.TrailResult) trailPage {
	p := trailPage{ID: t.CorrelationID}
	var sendNs int64
	for _, r := range t.Events {
		if r.Event.Kind == codecs.KindProduce && r.Event.SendNs != 0 {
			sendNs = r.Event.SendNs
			break
		}
	}
	for _, r := range t.Events {
		e := &r.Event
		ev := trailEvent{
			Time:   formatUTCMicros(e.TimeNs()),
			Where:  fmt.Sprintf("%s[%d]@%d", e.Topic, e.Partition, e.Offset),
			Client: report.Who(e.ClientID, e.Host, e.Source),
		}
		switch e.Kind {
		case codecs.KindProduce:
			switch {
			case e.Error != "":
				ev.What, ev.Class, ev.Where = "produce failed", "bad", e.Topic
				ev.Detail = "error: " + e.Error
			case e.AckNs != 0:
				ev.What, ev.Class = "produce acked", "ok"
				ev.Detail = "ack latency " + report.FormatMicros(float64(e.AckNs-e.SendNs)/1e3)
			default:
				ev.What, ev.Class = "produce sent", "warn"
				ev.Detail = "no ack recorded"
			}
			ev.Detail += fmt.Sprintf(", %d bytes", e.PayloadSize)
		case codecs.KindConsume:
			ev.What, ev.Class = "consume", "ok"
			ev.Detail = "group " + e.Group
			if sendNs != 0 && e.ConsumeNs != 0 {
				ev.Detail += ", end-to-end " + report.FormatMicros(float64(e.ConsumeNs-sendNs)/1e3)
			}
		default:
			ev.What = e.Kind.String()
		}
		p.Events = append(p.Events, ev)
	}
	for _, v := range t.Deliveries {
		cause := v.Cause
		if v.ProduceError != "" {
			cause = strings.TrimSpace(cause + " produce error: " + v.ProduceError)
		}
		p.Verdicts = append(p.Verdicts, trailVerdict{
			Verdict:  v,
			Where:    fmt.Sprintf("%s[%d]@%d", v.Topic, v.Partition, v.Offset),
			AckUs:    float64(v.AckLatencyUs),
			E2EUs:    float64(v.E2ELatencyUs),
			CauseAll: cause,
		})
	}
	return p
}

func formatUTCMicros(ns int64) string {
	if ns <= 0 {
		return "-"
	}
	return formatUTC(ns) + fmt.Sprintf(".%06d", ns%1e9/1e3)
}
