package cli

import (
	"io"
	"log/slog"
	"strings"
)

// Log configures the slog logger.
type Log struct {
	LogLevel  string `help:"Log level: debug, info, warn or error." env:"KAUDIT_LOG_LEVEL" default:"info" enum:"debug,info,warn,error"`
	LogFormat string `help:"Log format: text or json." env:"KAUDIT_LOG_FORMAT" default:"text" enum:"text,json"`
}

// Logger returns the logger writing to w.
func (l *Log) Logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(l.LogLevel)))
	opts := &slog.HandlerOptions{Level: lvl}
	if l.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
