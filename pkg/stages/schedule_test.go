package stages

import (
	"testing"
	"time"

	"github.com/meshcanary/meshcanary/pkg/policy"
)

// at parses an RFC 3339 instant for the tables below.
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestMatches(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		spec string
		at   time.Time
		want bool
	}{
		// 2024-06-05 is a Wednesday, 2024-06-08 a Saturday.
		{name: "a weekday minute inside office hours matches", spec: "* 9-16 * * 1-5", at: at("2024-06-05T09:00:00Z"), want: true},
		{name: "any second of a matching minute matches", spec: "* 9-16 * * 1-5", at: at("2024-06-05T16:59:59.999Z"), want: true},
		{name: "the minute after office hours does not match", spec: "* 9-16 * * 1-5", at: at("2024-06-05T17:00:00Z"), want: false},
		{name: "the minute before office hours does not match", spec: "* 9-16 * * 1-5", at: at("2024-06-05T08:59:59Z"), want: false},
		{name: "a weekend minute does not match", spec: "* 9-16 * * 1-5", at: at("2024-06-08T10:00:00Z"), want: false},
		{name: "a single-minute schedule matches its minute", spec: "0 14 * * *", at: at("2024-06-05T14:00:30Z"), want: true},
		{name: "a single-minute schedule does not match the next minute", spec: "0 14 * * *", at: at("2024-06-05T14:01:00Z"), want: false},
		{name: "a descriptor matches its minute", spec: "@daily", at: at("2024-06-05T00:00:59Z"), want: true},
		{name: "a schedule that never occurs matches nothing", spec: "* * 30 2 *", at: at("2024-02-29T10:00:00Z"), want: false},
		{name: "a schedule without a zone is read in UTC whatever the time's location", spec: "* 9 * * *", at: at("2024-06-05T09:30:00Z").In(paris), want: true},
		{name: "a schedule without a zone does not follow the time's location", spec: "* 9 * * *", at: time.Date(2024, 6, 5, 9, 30, 0, 0, paris), want: false},
		{name: "a zoned schedule is read in its zone", spec: "CRON_TZ=Europe/Paris * 9-16 * * *", at: at("2024-06-05T07:00:00Z"), want: true},
		{name: "a zoned schedule ends in its zone", spec: "CRON_TZ=Europe/Paris * 9-16 * * *", at: at("2024-06-05T15:00:00Z"), want: false},
		// Paris moves from CET (+1) to CEST (+2) at 01:00 UTC on 2024-03-31
		// and back at 01:00 UTC on 2024-10-27.
		{name: "office hours start at 08:00 UTC the day before summer time", spec: "CRON_TZ=Europe/Paris * 9-16 * * *", at: at("2024-03-30T08:00:00Z"), want: true},
		{name: "office hours start at 07:00 UTC on the first day of summer time", spec: "CRON_TZ=Europe/Paris * 9-16 * * *", at: at("2024-03-31T07:00:00Z"), want: true},
		{name: "office hours end at 15:00 UTC on the first day of summer time", spec: "CRON_TZ=Europe/Paris * 9-16 * * *", at: at("2024-03-31T15:00:00Z"), want: false},
		{name: "the hour skipped by summer time matches nothing", spec: "CRON_TZ=Europe/Paris * 2 * * *", at: at("2024-03-31T01:30:00Z"), want: false},
		{name: "the hour repeated by winter time matches the first time", spec: "CRON_TZ=Europe/Paris 30 2 * * *", at: at("2024-10-27T00:30:00Z"), want: true},
		{name: "the hour repeated by winter time matches the second time", spec: "CRON_TZ=Europe/Paris 30 2 * * *", at: at("2024-10-27T01:30:00Z"), want: true},
		{name: "the minute after the repeated hour does not match", spec: "CRON_TZ=Europe/Paris * 2 * * *", at: at("2024-10-27T02:00:00Z"), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := policy.ParseSchedule(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := Matches(s, tt.at); got != tt.want {
				t.Errorf("Matches(%q, %v) = %v; want %v", tt.spec, tt.at, got, tt.want)
			}
		})
	}
}

func TestNextOutside(t *testing.T) {
	tests := []struct {
		name   string
		spec   string
		from   time.Time
		limit  time.Duration
		want   time.Time
		wantOK bool
	}{
		{
			name: "a time outside the schedule on a minute start is its own answer",
			spec: "* 9-16 * * *", from: at("2024-06-05T08:00:00Z"), limit: time.Hour,
			want: at("2024-06-05T08:00:00Z"), wantOK: true,
		},
		{
			name: "a time within a minute looks from the next minute start",
			spec: "* 9-16 * * *", from: at("2024-06-05T08:00:01Z"), limit: time.Hour,
			want: at("2024-06-05T08:01:00Z"), wantOK: true,
		},
		{
			name: "inside the schedule the answer is the end of the matching minutes",
			spec: "* 9-16 * * *", from: at("2024-06-05T15:42:10Z"), limit: 2 * time.Hour,
			want: at("2024-06-05T17:00:00Z"), wantOK: true,
		},
		{
			name: "a gap at exactly the limit is found",
			spec: "* 9-16 * * *", from: at("2024-06-05T16:00:00Z"), limit: time.Hour,
			want: at("2024-06-05T17:00:00Z"), wantOK: true,
		},
		{
			name: "a gap beyond the limit is not found",
			spec: "* 9-16 * * *", from: at("2024-06-05T16:00:00Z"), limit: time.Hour - time.Minute,
			wantOK: false,
		},
		{
			name: "a schedule of every minute has no gap",
			spec: "* * * * *", from: at("2024-06-05T16:00:00Z"), limit: 24 * time.Hour,
			wantOK: false,
		},
		{
			name: "a freeze over Christmas in Paris ends at midnight Paris time",
			spec: "CRON_TZ=Europe/Paris * * 24-26 12 *", from: at("2024-12-25T12:00:00Z"), limit: 7 * 24 * time.Hour,
			want: at("2024-12-26T23:00:00Z"), wantOK: true,
		},
		{
			name: "a Paris window ends an hour earlier in UTC once summer time starts",
			spec: "CRON_TZ=Europe/Paris * 0-16 * * *", from: at("2024-03-31T00:00:00Z"), limit: 24 * time.Hour,
			want: at("2024-03-31T15:00:00Z"), wantOK: true,
		},
		{
			name: "the end of a window found across the repeated hour of winter time",
			spec: "CRON_TZ=Europe/Paris * 0-2 * * *", from: at("2024-10-26T22:00:00Z"), limit: 24 * time.Hour,
			want: at("2024-10-27T02:00:00Z"), wantOK: true,
		},
		{
			name: "a negative limit finds nothing",
			spec: "* 9-16 * * *", from: at("2024-06-05T08:00:00Z"), limit: -time.Minute,
			wantOK: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := policy.ParseSchedule(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := NextOutside(s, tt.from, tt.limit)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Errorf("NextOutside(%q, %v, %v) = %v, %v; want %v, %v", tt.spec, tt.from, tt.limit, got, ok, tt.want, tt.wantOK)
			}
			if ok && (Matches(s, got) || got.Before(tt.from) || got.Truncate(time.Minute) != got) {
				t.Errorf("%v must be a minute start at or after %v that the schedule does not match", got, tt.from)
			}
		})
	}
}
