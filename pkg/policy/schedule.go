package policy

import (
	"fmt"
	"strings"
	"time"
	// Zones named by CRON_TZ must load wherever the controller runs,
	// including images without /usr/share/zoneinfo: otherwise a policy
	// valid on one machine would be rejected on another.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

// scheduleExpected is how every unreadable schedule is reported.
const scheduleExpected = `expected a cron schedule of 5 fields like "* 9-16 * * 1-5", optionally prefixed with CRON_TZ=<zone>`

// Schedule is a parsed cron schedule (Window, Freeze, StartAt). Next
// returns the first activation strictly after t, in t's location, or the
// zero time when there is none within five years.
type Schedule interface {
	Next(t time.Time) time.Time
}

// ScheduleError reports a schedule that cannot be read. Reason says what
// was expected and why the text is not it.
type ScheduleError struct {
	Spec   string
	Reason string
}

func (e *ScheduleError) Error() string {
	return fmt.Sprintf("invalid schedule %q: %s", e.Spec, e.Reason)
}

// ParseSchedule reads a cron schedule as robfig/cron's ParseStandard does:
// five fields (minute, hour, day of month, month, day of week), or a
// descriptor such as @daily, optionally prefixed with "CRON_TZ=<zone> " or
// "TZ=<zone> ".
//
// It differs in three ways, each so that a schedule names the same minutes
// wherever and whenever it is asked:
//   - without a zone prefix the schedule is read in UTC, rather than in the
//     location of each time it is asked about;
//   - @every is refused: it counts from whenever it is asked rather than
//     naming minutes, so no minute would ever match it;
//   - CRON_TZ=Local is refused, since it means the controller machine's
//     zone.
//
// A zone prefix without a schedule after it is an error here, where
// robfig/cron v3.0.1 would panic.
func ParseSchedule(spec string) (Schedule, error) {
	fail := func(reason string) (Schedule, error) {
		return nil, &ScheduleError{Spec: spec, Reason: reason}
	}
	text := strings.TrimSpace(spec)
	body := text
	zoned := false
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		rest, ok := strings.CutPrefix(text, prefix)
		if !ok {
			continue
		}
		zone, schedule, found := strings.Cut(rest, " ")
		if !found || strings.TrimSpace(schedule) == "" {
			return fail(scheduleExpected + "; " + prefix + "<zone> must be followed by a space and the schedule")
		}
		if zone == "Local" {
			return fail(scheduleExpected + "; name a zone such as Europe/Paris or UTC rather than the controller machine's Local")
		}
		zoned, body = true, strings.TrimSpace(schedule)
		break
	}
	if strings.HasPrefix(body, "@every") {
		return fail(scheduleExpected + `; @every counts from whenever it is asked and names no minutes, write "*/15 * * * *" instead`)
	}
	s, err := cron.ParseStandard(text)
	if err != nil {
		return fail(scheduleExpected + "; " + err.Error())
	}
	if cs, ok := s.(*cron.SpecSchedule); ok && !zoned {
		cs.Location = time.UTC
	}
	return s, nil
}
