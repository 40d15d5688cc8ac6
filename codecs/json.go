package codecs

import (
	"encoding/json"
	"errors"
	"fmt"
)

// UnmarshalEventJSON decodes a JSON event (the shape encoding/json writes for
// Event, kind as a name) into e, which it resets first. Unknown JSON fields
// are ignored; an unknown kind or an event that fails e.Validate is an error.
func UnmarshalEventJSON(b []byte, e *Event) error {
	if e == nil {
		return errors.New("codecs: UnmarshalEventJSON into nil *Event")
	}
	*e = Event{}
	if err := json.Unmarshal(b, e); err != nil {
		return fmt.Errorf("codecs: json event: %w", err)
	}
	return e.Validate()
}

// UnmarshalVerdictJSON decodes a JSON verdict (status as a name) into v,
// which it resets first. Unknown JSON fields are ignored; an unknown status
// or a verdict that fails v.Validate is an error.
func UnmarshalVerdictJSON(b []byte, v *Verdict) error {
	if v == nil {
		return errors.New("codecs: UnmarshalVerdictJSON into nil *Verdict")
	}
	*v = Verdict{}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("codecs: json verdict: %w", err)
	}
	return v.Validate()
}
