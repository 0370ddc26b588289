package policy

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestParseValue(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantUnit Unit
		want     float64
		wantErr  bool
	}{
		{name: "a whole percentage becomes a fraction", in: "1%", wantUnit: UnitPercent, want: 0.01},
		{name: "a fractional percentage becomes a fraction without rounding noise", in: "0.5%", wantUnit: UnitPercent, want: 0.005},
		{name: "a tenth of a percent is exactly the nearest float to 0.001", in: "0.1%", wantUnit: UnitPercent, want: 0.001},
		{name: "a duration in seconds becomes seconds", in: "2s", wantUnit: UnitDuration, want: 2},
		{name: "a duration in milliseconds becomes fractional seconds", in: "300ms", wantUnit: UnitDuration, want: 0.3},
		{name: "a duration in minutes becomes seconds", in: "1m", wantUnit: UnitDuration, want: 60},
		{name: "a compound duration is summed", in: "1m30s", wantUnit: UnitDuration, want: 90},
		{name: "a whole number stays a number", in: "50", wantUnit: UnitNumber, want: 50},
		{name: "a decimal number stays a number", in: "1.2", wantUnit: UnitNumber, want: 1.2},
		{name: "a negative number is read, leaving its sign to validation", in: "-3", wantUnit: UnitNumber, want: -3},
		{name: "surrounding spaces are ignored", in: " 1% ", wantUnit: UnitPercent, want: 0.01},
		{name: "an unknown suffix is rejected", in: "1x", wantErr: true},
		{name: "an empty string is rejected", in: "", wantErr: true},
		{name: "a lone percent sign is rejected", in: "%", wantErr: true},
		{name: "infinity is rejected although strconv reads it", in: "inf", wantErr: true},
		{name: "not-a-number is rejected although strconv reads it", in: "NaN", wantErr: true},
		{name: "a hexadecimal number is rejected although strconv reads it", in: "0x10", wantErr: true},
		{name: "a number too large for a float64 is rejected", in: "1e400", wantErr: true},
		{name: "an infinite percentage is rejected", in: "inf%", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseValue(tt.in)
			if tt.wantErr {
				var ve *ValueError
				if !errors.As(err, &ve) {
					t.Fatalf("ParseValue(%q) = %+v, %v; want a *ValueError", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseValue(%q): %v", tt.in, err)
			}
			if got.Unit != tt.wantUnit || got.Number != tt.want || got.Raw != tt.in {
				t.Errorf("ParseValue(%q) = %+v; want unit %s, number %v and the raw text kept", tt.in, got, tt.wantUnit, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q; want %q", got.String(), tt.in)
			}
		})
	}
}

func TestValueJSON(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantRaw  string
		wantUnit Unit
		want     float64
		wantOut  string
		wantErr  bool
	}{
		{name: "a JSON string with a percentage round-trips as a string", in: `"1%"`, wantRaw: "1%", wantUnit: UnitPercent, want: 0.01, wantOut: `"1%"`},
		{name: "a JSON string with a duration round-trips as a string", in: `"300ms"`, wantRaw: "300ms", wantUnit: UnitDuration, want: 0.3, wantOut: `"300ms"`},
		{name: "a JSON number keeps its literal and round-trips as a number", in: `0.25`, wantRaw: "0.25", wantUnit: UnitNumber, want: 0.25, wantOut: `0.25`},
		{name: "a numeric JSON string is a number and marshals as one", in: `"50"`, wantRaw: "50", wantUnit: UnitNumber, want: 50, wantOut: `50`},
		{name: "a JSON boolean is rejected", in: `true`, wantErr: true},
		{name: "a JSON object is rejected", in: `{"a":1}`, wantErr: true},
		{name: "an unreadable JSON string is rejected", in: `"fast"`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v Value
			err := json.Unmarshal([]byte(tt.in), &v)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Unmarshal(%s) = %+v; want an error", tt.in, v)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tt.in, err)
			}
			if v.Raw != tt.wantRaw || v.Unit != tt.wantUnit || v.Number != tt.want {
				t.Errorf("Unmarshal(%s) = %+v; want raw %q, unit %s, number %v", tt.in, v, tt.wantRaw, tt.wantUnit, tt.want)
			}
			out, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(out) != tt.wantOut {
				t.Errorf("Marshal = %s; want %s", out, tt.wantOut)
			}
		})
	}
}

func TestValueWithoutRawMarshalsToItsNumber(t *testing.T) {
	tests := []struct {
		name string
		in   Value
		want string
	}{
		{name: "a percentage built in code is written as a percentage", in: Value{Number: 0.05, Unit: UnitPercent}, want: `"5%"`},
		{name: "a duration built in code is written as a Go duration", in: Value{Number: 1.5, Unit: UnitDuration}, want: `"1.5s"`},
		{name: "a number built in code is written as a JSON number", in: Value{Number: 3, Unit: UnitNumber}, want: `3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Fatalf("Marshal = %s; want %s", out, tt.want)
			}
			var back Value
			if err := json.Unmarshal(out, &back); err != nil {
				t.Fatal(err)
			}
			if back.Number != tt.in.Number || back.Unit != tt.in.Unit {
				t.Errorf("round trip gave %+v; want %+v", back, tt.in)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantOut string
		wantErr bool
	}{
		{name: "a Go duration string is read", in: `"1m"`, want: time.Minute, wantOut: `"1m0s"`},
		{name: "a compound duration is read", in: `"1h30m"`, want: 90 * time.Minute, wantOut: `"1h30m0s"`},
		{name: "null leaves the duration unset", in: `null`, want: 0, wantOut: `"0s"`},
		{name: "a bare number is rejected because its unit would be a guess", in: `60`, wantErr: true},
		{name: "a string that is no duration is rejected", in: `"soon"`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tt.in), &d)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Unmarshal(%s) = %v; want an error", tt.in, d)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tt.in, err)
			}
			if d.Duration != tt.want {
				t.Errorf("Unmarshal(%s) = %v; want %v", tt.in, d.Duration, tt.want)
			}
			out, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.wantOut {
				t.Errorf("Marshal = %s; want %s", out, tt.wantOut)
			}
		})
	}
}
