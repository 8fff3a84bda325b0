//! Schedules as a pure calculation: a cron expression in a time zone gives fire times, and a
//! due schedule gives what to do now (fire a tick, catch up once, or skip what was missed).
//!
//! Cron expressions have five fields (minute to weekday) or six with seconds first, in the
//! croner dialect (`L`, `#`, `W`, names). Times are milliseconds since the Unix epoch; the time
//! zone decides what "09:00" means, daylight saving included.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// What to do with ticks missed while no server was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Forget them; the next tick fires as usual.
    Skip,
    /// Run once for the latest missed tick, then go on.
    Once,
}

impl FromStr for CatchUp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(CatchUp::Skip),
            "once" => Ok(CatchUp::Once),
            other => Err(format!("unknown catch-up policy `{other}` (skip or once)")),
        }
    }
}

impl CatchUp {
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Skip => "skip",
            CatchUp::Once => "once",
        }
    }
}

/// A parsed cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct Timetable {
    cron: Cron,
    tz: Tz,
}

impl Timetable {
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, String> {
        let cron = Cron::from_str(expression.trim())
            .map_err(|e| format!("invalid cron expression `{expression}`: {e}"))?;
        let tz: Tz = timezone.parse().map_err(|_| {
            format!("unknown time zone `{timezone}` (use an IANA name such as Europe/Berlin)")
        })?;
        Ok(Self { cron, tz })
    }

    /// The first fire time strictly after `after_ms`.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let start: DateTime<Tz> =
            self.tz.from_utc_datetime(&DateTime::<Utc>::from_timestamp_millis(after_ms)?.naive_utc());
        self.cron.find_next_occurrence(&start, false).ok().map(|t| t.timestamp_millis())
    }

    /// The next `n` fire times after `after_ms`.
    pub fn upcoming(&self, after_ms: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let mut at = after_ms;
        while out.len() < n {
            match self.next_after(at) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }
}

/// What a due schedule does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The tick to start a run for, if any.
    pub fire: Option<i64>,
    /// The schedule's next fire time after this step.
    pub next: Option<i64>,
}

/// How late a tick may be and still fire as usual: a busy server catches up on ticks this
/// recent one by one; older ones were missed (no server ran) and the catch-up policy decides.
pub const GRACE_MS: i64 = 5_000;

/// Decides for a schedule due at `due` (its stored next fire time) at time `now`. A tick is
/// on time when it is less than [`GRACE_MS`] late or the one after it is still in the future;
/// otherwise ticks were missed and `catch_up` decides.
pub fn step(table: &Timetable, due: i64, now: i64, catch_up: CatchUp) -> Step {
    let after_due = table.next_after(due);
    if now - due <= GRACE_MS || after_due.is_none_or(|t| t > now) {
        return Step { fire: Some(due), next: after_due };
    }
    let next = table.next_after(now);
    let fire = match catch_up {
        CatchUp::Skip => None,
        // The latest tick at or before now.
        CatchUp::Once => {
            let mut latest = due;
            while let Some(t) = table.next_after(latest).filter(|t| *t <= now) {
                latest = t;
            }
            Some(latest)
        }
    };
    Step { fire, next }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn fire_times_follow_the_time_zone_across_daylight_saving() {
        let t = Timetable::parse("0 9 * * *", "Europe/Berlin").unwrap();
        // Berlin moves to summer time on 2026-03-29: 09:00 is 08:00 UTC before, 07:00 after.
        let times = t.upcoming(ms("2026-03-27T12:00:00Z"), 3);
        assert_eq!(
            times,
            [ms("2026-03-28T08:00:00Z"), ms("2026-03-29T07:00:00Z"), ms("2026-03-30T07:00:00Z")]
        );
        let seconds = Timetable::parse("*/15 * * * * *", "UTC").unwrap();
        assert_eq!(seconds.next_after(ms("2026-01-01T00:00:01Z")), Some(ms("2026-01-01T00:00:15Z")));
    }

    #[test]
    fn bad_expressions_and_zones_are_named() {
        assert!(Timetable::parse("61 * * * *", "UTC").unwrap_err().contains("61 * * * *"));
        assert!(Timetable::parse("* * * * *", "Mars/Olympus").unwrap_err().contains("Mars/Olympus"));
        assert!("always".parse::<CatchUp>().is_err());
    }

    #[test]
    fn on_time_ticks_fire_and_missed_ones_follow_the_policy() {
        let t = Timetable::parse("0 * * * *", "UTC").unwrap();
        let due = ms("2026-05-01T10:00:00Z");
        let on_time = step(&t, due, due + 2_000, CatchUp::Skip);
        assert_eq!(on_time, Step { fire: Some(due), next: Some(ms("2026-05-01T11:00:00Z")) });

        // Down from 10:00 to 13:30: three ticks (10, 11, 12, 13) passed.
        let now = ms("2026-05-01T13:30:00Z");
        let next = Some(ms("2026-05-01T14:00:00Z"));
        assert_eq!(step(&t, due, now, CatchUp::Skip), Step { fire: None, next });
        assert_eq!(step(&t, due, now, CatchUp::Once), Step { fire: Some(ms("2026-05-01T13:00:00Z")), next });

        // A per-second schedule on a server running 3 s behind fires every tick in turn.
        let every = Timetable::parse("* * * * * *", "UTC").unwrap();
        let late = step(&every, due, due + 3_000, CatchUp::Skip);
        assert_eq!(late, Step { fire: Some(due), next: Some(due + 1_000) });
    }
}
