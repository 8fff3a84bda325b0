//! Calendar days (`YYYY-MM-DD`, UTC), the unit usage is counted in.

use steward_engine::Timestamp;

use crate::UsageRow;

const DAY_MS: i64 = 86_400_000;

/// The UTC day a time falls on.
pub fn day_of(t: Timestamp) -> String {
    let (y, m, d) = civil_from_days(t.millis().div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day `n` days before `day` (after it, for negative `n`); `None` unless `day` is a real
/// `YYYY-MM-DD` date.
pub fn day_before(day: &str, n: i64) -> Option<String> {
    let mut parts = day.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let days = days_from_civil(y, m, d);
    // A date like 2026-02-30 comes back as another day; refuse it.
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    let (y, m, d) = civil_from_days(days - n);
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

/// The sums of usage rows, as one row with empty day and agent.
pub fn usage_total(rows: &[UsageRow]) -> UsageRow {
    rows.iter().fold(UsageRow::default(), |mut t, r| {
        t.input_tokens += r.input_tokens;
        t.output_tokens += r.output_tokens;
        t.cost_micros += r.cost_micros;
        t.model_calls += r.model_calls;
        t.tool_calls += r.tool_calls;
        t
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day_of(Timestamp(0)), "1970-01-01");
        assert_eq!(day_of(Timestamp(1_795_000_000_000)), "2026-11-18");
        assert_eq!(day_of(Timestamp(951_782_400_000)), "2000-02-29");
        assert_eq!(day_of(Timestamp(-1)), "1969-12-31");
    }

    #[test]
    fn counting_back_crosses_months_years_and_leap_days() {
        assert_eq!(day_before("2026-03-01", 1).as_deref(), Some("2026-02-28"));
        assert_eq!(day_before("2024-03-01", 1).as_deref(), Some("2024-02-29"));
        assert_eq!(day_before("2026-01-05", 30).as_deref(), Some("2025-12-06"));
        assert_eq!(day_before("2026-12-31", -1).as_deref(), Some("2027-01-01"));
        assert_eq!(day_before("2026-11-22", 0).as_deref(), Some("2026-11-22"));
        for bad in ["2026-02-30", "2026-13-01", "26-01-01", "2026-1-01", "yesterday", ""] {
            assert_eq!(day_before(bad, 0), None, "{bad}");
        }
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        for days in -200_000..200_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
