//! The calendar of the figures: a period of the store's business days in its
//! local time, and its split into days, ISO weeks (from Monday) or months.

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// The longest period a query may ask for, in days.
pub const MAX_PERIOD_DAYS: i64 = 400;

/// `from..=to`, both business days in the store's local time (`offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub offset: FixedOffset,
}

impl Period {
    pub fn new(from: NaiveDate, to: NaiveDate, offset: FixedOffset) -> Period {
        Period { from, to, offset }
    }

    /// The business day an instant falls on.
    pub fn day_of(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.offset).date_naive()
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let d = self.day_of(at);
        d >= self.from && d <= self.to
    }

    /// The first instant of the period.
    pub fn start(&self) -> DateTime<Utc> {
        local_midnight(self.from, self.offset)
    }

    /// The first instant after the period.
    pub fn end(&self) -> DateTime<Utc> {
        local_midnight(
            self.to.checked_add_days(Days::new(1)).unwrap_or(self.to),
            self.offset,
        )
    }

    /// Days in the period (0 when `to` is before `from`).
    pub fn days(&self) -> i64 {
        ((self.to - self.from).num_days() + 1).max(0)
    }
}

fn local_midnight(d: NaiveDate, offset: FixedOffset) -> DateTime<Utc> {
    offset
        .from_local_datetime(&d.and_time(NaiveTime::MIN))
        .single()
        .map(|t| t.to_utc())
        .unwrap_or_default()
}

/// How a period is split into the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    Day,
    /// ISO weeks, Monday first.
    Week,
    Month,
}

impl By {
    pub fn parse(s: &str) -> Option<By> {
        match s {
            "day" => Some(By::Day),
            "week" => Some(By::Week),
            "month" => Some(By::Month),
            _ => None,
        }
    }
}

/// The series' buckets of `p`: each labelled by its first day (a week by
/// its Monday, a month by its 1st, even when the period starts later), and
/// clipped to the period.
pub fn buckets(p: &Period, by: By) -> Vec<(NaiveDate, Period)> {
    let mut out = Vec::new();
    let mut day = p.from;
    while day <= p.to {
        let label = match by {
            By::Day => day,
            By::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            By::Month => day.with_day(1).unwrap_or(day),
        };
        let next = match by {
            By::Day => label.checked_add_days(Days::new(1)),
            By::Week => label.checked_add_days(Days::new(7)),
            By::Month => label.checked_add_months(chrono::Months::new(1)),
        };
        let Some(next) = next else { break };
        let last = next.pred_opt().unwrap_or(next).min(p.to);
        out.push((label, Period::new(day, last, p.offset)));
        day = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_shanghai_business_day_starts_at_16_00_utc_the_day_before() {
        let p = Period::new(
            d("2026-11-01"),
            d("2026-11-30"),
            FixedOffset::east_opt(8 * 3600).unwrap(),
        );
        assert_eq!(p.start().to_rfc3339(), "2026-10-31T16:00:00+00:00");
        assert_eq!(p.end().to_rfc3339(), "2026-11-30T16:00:00+00:00");
        let late: DateTime<Utc> = "2026-11-30T15:59:59Z".parse().unwrap();
        assert!(p.contains(late));
        assert!(!p.contains("2026-11-30T16:00:00Z".parse().unwrap()));
        assert_eq!(p.days(), 30);
    }

    #[test]
    fn weeks_are_labelled_by_their_monday_and_clipped() {
        let p = Period::new(
            d("2026-11-01"),
            d("2026-11-10"),
            FixedOffset::east_opt(0).unwrap(),
        );
        let b = buckets(&p, By::Week);
        // 2026-11-01 is a Sunday
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].0, d("2026-10-26"));
        assert_eq!((b[0].1.from, b[0].1.to), (d("2026-11-01"), d("2026-11-01")));
        assert_eq!((b[1].1.from, b[1].1.to), (d("2026-11-02"), d("2026-11-08")));
        assert_eq!((b[2].1.from, b[2].1.to), (d("2026-11-09"), d("2026-11-10")));
        let m = buckets(
            &Period::new(d("2026-11-15"), d("2027-01-02"), p.offset),
            By::Month,
        );
        let labels: Vec<_> = m.iter().map(|b| b.0.to_string()).collect();
        assert_eq!(labels, ["2026-11-01", "2026-12-01", "2027-01-01"]);
        assert_eq!(buckets(&p, By::Day).len(), 10);
    }
}
