package codecs

// DecodeEvent decodes an event in either format: JSON when the first
// non-whitespace byte is '{', binary otherwise. No valid binary encoding
// starts with '{' or JSON whitespace (see audit.proto), so the choice is
// never wrong for valid input.
func DecodeEvent(b []byte) (*Event, error) {
	e := new(Event)
	if err := DecodeEventInto(b, e); err != nil {
		return nil, err
	}
	return e, nil
}

// DecodeEventInto is DecodeEvent into e, which it resets first.
func DecodeEventInto(b []byte, e *Event) error {
	if isJSON(b) {
		return UnmarshalEventJSON(b, e)
	}
	return UnmarshalEvent(b, e)
}

// DecodeVerdict is DecodeEvent for verdicts.
func DecodeVerdict(b []byte) (*Verdict, error) {
	v := new(Verdict)
	var err error
	if isJSON(b) {
		err = UnmarshalVerdictJSON(b, v)
	} else {
		err = UnmarshalVerdict(b, v)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

func isJSON(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}
