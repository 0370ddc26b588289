package policy

import (
	"errors"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"strings"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		wantErr string // part of ScheduleError.Reason
	}{
		{name: "five fields are read", spec: "* 9-16 * * 1-5"},
		{name: "names of days and months are read", spec: "0 14 * JAN-NOV MON-FRI"},
		{name: "a descriptor is read", spec: "@daily"},
		{name: "a CRON_TZ prefix is read", spec: "CRON_TZ=Europe/Paris * 9-16 * * 1-5"},
		{name: "a TZ prefix is read", spec: "TZ=America/New_York 0 14 * * *"},
		{name: "a descriptor may carry a zone", spec: "CRON_TZ=Asia/Tokyo @weekly"},
		{name: "surrounding whitespace is ignored", spec: "  0 14 * * *\n"},
		{name: "an empty schedule is rejected", spec: "", wantErr: "expected a cron schedule of 5 fields"},
		{name: "four fields are rejected", spec: "9-17 * * 1-5", wantErr: "found 4"},
		{name: "six fields with seconds are rejected", spec: "0 0 14 * * *", wantErr: "found 6"},
		{name: "an hour out of range is rejected", spec: "* 24 * * *", wantErr: "above maximum (23)"},
		{name: "a clock time is rejected", spec: "14:00", wantErr: "expected a cron schedule of 5 fields"},
		{name: "an unknown descriptor is rejected", spec: "@fortnightly", wantErr: "unrecognized descriptor"},
		{name: "@every is rejected because it names no minutes", spec: "@every 1h", wantErr: "@every counts from whenever it is asked"},
		{name: "an unknown zone is rejected", spec: "CRON_TZ=Mars/Olympus * * * * *", wantErr: "bad location"},
		{name: "a zone without a schedule is rejected rather than panicking", spec: "CRON_TZ=UTC", wantErr: "must be followed by a space"},
		{name: "a TZ zone without a schedule is rejected rather than panicking", spec: "TZ=UTC   ", wantErr: "must be followed by a space"},
		{name: "the Local zone is rejected because it differs between machines", spec: "CRON_TZ=Local * * * * *", wantErr: "Local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSchedule(tt.spec)
			if tt.wantErr != "" {
				se, ok := errors.AsType[*ScheduleError](err)
				if !ok || se.Spec != tt.spec || !strings.Contains(se.Reason, tt.wantErr) || !strings.HasPrefix(se.Reason, scheduleExpected) {
					t.Fatalf("ParseSchedule(%q) = %v, %v; want a *ScheduleError with %q", tt.spec, s, err, tt.wantErr)
				}
				return
			}
			if err != nil || s == nil {
				t.Fatalf("ParseSchedule(%q) = %v, %v; want a schedule", tt.spec, s, err)
			}
		})
	}
}

func FuzzParseSchedule(f *testing.F) {
	for _, seed := range []string{
		"* 9-16 * * 1-5", "0 14 * * *", "@daily", "@every 1h", "CRON_TZ=Europe/Paris * * 24-26 12 *",
		"TZ=UTC", "CRON_TZ=", "TZ= * * * * *", "*/0 * * * *", "1-2-3 * * * *", "59-0 * * * *", "* * * * 7",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseSchedule(spec)
		if err != nil {
			if _, ok := errors.AsType[*ScheduleError](err); !ok {
				t.Fatalf("ParseSchedule(%q) failed with %T, not a *ScheduleError", spec, err)
			}
			return
		}
		// Whatever parses can be asked about without panicking.
		now := at("2024-06-05T10:30:00Z")
		stages.Matches(s, now)
		stages.NextOutside(s, now, time.Hour)
	})
}
