package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// valueExpected is the one phrase every unreadable threshold is reported
// with, so that users see the three accepted spellings wherever they erred.
const valueExpected = `expected a percentage like "1%", a duration like "2s" or a number`

// durationExpected is how a bad interval or stage duration is reported.
const durationExpected = `expected a duration like "30s", "5m" or "1h"`

// ValueError reports a threshold that is none of the accepted spellings. It
// keeps the raw text apart from the expectation so that Parse can report it
// against the field it came from.
type ValueError struct {
	Raw      string
	Expected string
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("invalid threshold %q: %s", e.Raw, e.Expected)
}

// ParseValue reads a threshold as a user writes it. The unit comes from the
// spelling alone ("1%", "2s", "0.5"), so one field can bound metrics of any
// kind; whether the unit fits the metric is Validate's concern.
func ParseValue(s string) (Value, error) {
	t := strings.TrimSpace(s)
	if num, ok := strings.CutSuffix(t, "%"); ok {
		if !isDecimal(num) {
			return Value{}, &ValueError{Raw: s, Expected: valueExpected}
		}
		// Shifting the exponent rather than dividing by 100 keeps "0.1%"
		// exactly the float64 nearest to 0.001.
		f, err := strconv.ParseFloat(num+"e-2", 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return Value{}, &ValueError{Raw: s, Expected: valueExpected}
		}
		return Value{Raw: s, Number: f, Unit: UnitPercent}, nil
	}
	if isDecimal(t) {
		f, err := strconv.ParseFloat(t, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return Value{}, &ValueError{Raw: s, Expected: valueExpected}
		}
		return Value{Raw: s, Number: f, Unit: UnitNumber}, nil
	}
	if d, err := time.ParseDuration(t); err == nil {
		return Value{Raw: s, Number: d.Seconds(), Unit: UnitDuration}, nil
	}
	return Value{}, &ValueError{Raw: s, Expected: valueExpected}
}

// isDecimal admits only plain decimal notation, because strconv.ParseFloat
// would otherwise accept "inf", "NaN", hexadecimal and digit separators,
// none of which belong in a threshold.
func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	digits := false
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits = true
		case r == '.' || r == '-' || r == '+' || r == 'e' || r == 'E':
		default:
			return false
		}
	}
	return digits
}

// String returns the threshold as the user wrote it, because messages about
// a check read best in the user's own words.
func (v Value) String() string {
	if v.Raw != "" {
		return v.Raw
	}
	return v.format()
}

// format spells a Value built in code without Raw, so that it still
// marshals to something ParseValue reads back to the same number.
func (v Value) format() string {
	switch v.Unit {
	case UnitPercent:
		return strconv.FormatFloat(v.Number*100, 'f', -1, 64) + "%"
	case UnitDuration:
		return time.Duration(v.Number * float64(time.Second)).String()
	default:
		return strconv.FormatFloat(v.Number, 'f', -1, 64)
	}
}

// UnmarshalJSON accepts a JSON string in any spelling ParseValue reads, or a
// JSON number. Numbers arrive as numbers when YAML leaves them unquoted.
func (v *Value) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		return nil
	}
	var raw string
	switch {
	case len(data) > 0 && data[0] == '"':
		if err := json.Unmarshal(data, &raw); err != nil {
			return fmt.Errorf("reading threshold: %w", err)
		}
	case len(data) > 0 && (data[0] == '-' || (data[0] >= '0' && data[0] <= '9')):
		raw = string(data)
	default:
		return &ValueError{Raw: string(data), Expected: valueExpected}
	}
	parsed, err := ParseValue(raw)
	if err != nil {
		return err
	}
	*v = parsed
	return nil
}

// MarshalJSON writes the threshold back as the user wrote it; plain numbers
// stay JSON numbers so that a round trip through YAML looks unchanged.
func (v Value) MarshalJSON() ([]byte, error) {
	s := v.String()
	if v.Unit == UnitNumber {
		t := strings.TrimSpace(s)
		if t != "" && (t[0] == '-' || (t[0] >= '0' && t[0] <= '9')) && json.Valid([]byte(t)) {
			return []byte(t), nil
		}
	}
	return json.Marshal(s)
}

// UnmarshalJSON reads a Go duration string. Bare numbers are refused because
// their unit would be a guess.
func (d *Duration) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("%s, not %s: %w", durationExpected, data, err)
	}
	parsed, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%s: %w", durationExpected, err)
	}
	d.Duration = parsed
	return nil
}

// MarshalJSON writes the duration the way UnmarshalJSON reads it.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}
