package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Span is a duration flag that also takes days: "30d", "1d12h", "90m".
type Span time.Duration

func (s *Span) UnmarshalText(b []byte) error {
	text := strings.TrimSpace(string(b))
	var days int64
	if i := strings.IndexByte(text, 'd'); i >= 0 {
		n, err := strconv.ParseInt(text[:i], 10, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid duration %q: want e.g. 30d, 12h, 1d12h", text)
		}
		days, text = n, text[i+1:]
	}
	var rest time.Duration
	if text != "" {
		var err error
		if rest, err = time.ParseDuration(text); err != nil {
			return fmt.Errorf("invalid duration %q: want e.g. 30d, 12h, 1d12h", string(b))
		}
	}
	d := time.Duration(days)*24*time.Hour + rest
	if d < 0 {
		return errors.New("duration must not be negative")
	}
	*s = Span(d)
	return nil
}

func (s Span) String() string { return time.Duration(s).String() }
