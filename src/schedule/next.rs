//! The pure arithmetic of timed tasks: when the next tick of a schedule falls due, and which
//! delays are too long to schedule. No clocks are read except where a function says so, so
//! every rule here is unit-tested on its own.

use std::time::{Duration, Instant};

use super::error::ScheduleErrorKind;

/// The longest delay (or period) a timed task accepts: about 100 years. Longer ones are refused
/// with [`ScheduleErrorKind::DelayTooLarge`] rather than overflowing a clock.
///
/// ```
/// use std::time::Duration;
/// use uberpool::{MAX_DELAY, SchedulerService};
///
/// let service = SchedulerService::builder().build()?;
/// let io = service.io();
/// assert!(io.schedule(MAX_DELAY, || ()).is_ok());
/// assert!(io.schedule(MAX_DELAY + Duration::from_secs(1), || ()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_DELAY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `Some(error kind)` if `delay` is too long to schedule from `now`.
pub(crate) fn check_delay(delay: Duration, now: Instant) -> Option<ScheduleErrorKind> {
    (delay > MAX_DELAY || now.checked_add(delay).is_none()).then_some(
        ScheduleErrorKind::DelayTooLarge {
            delay,
            max: MAX_DELAY,
        },
    )
}

/// The next fixed-rate tick after the one due at `due`, skipping ticks already in the past
/// (returned as the number missed) so that a late timer or a slow run never causes a burst of
/// catch-up runs. `None` if the next tick does not fit an [`Instant`].
pub(crate) fn next_rate_tick(
    due: Instant,
    period: Duration,
    now: Instant,
) -> Option<(Instant, u64)> {
    let next = due.checked_add(period)?;
    if next > now {
        return Some((next, 0));
    }
    let behind = now.duration_since(next).as_nanos();
    let missed = behind / period.as_nanos().max(1) + 1;
    let missed_u32 = u32::try_from(missed).unwrap_or(u32::MAX);
    let skip = period.checked_mul(missed_u32)?;
    Some((next.checked_add(skip)?, u64::from(missed_u32)))
}

#[cfg(feature = "cron")]
pub(crate) use cron_time::{NextFire, cron_next, instant_of, parse_cron};

#[cfg(feature = "cron")]
mod cron_time {
    use std::str::FromStr;
    use std::time::{Duration, Instant};

    use chrono::{DateTime, TimeZone, Utc};

    use super::MAX_DELAY;

    /// The next fire time strictly after a UTC instant, if there is one.
    pub(crate) type NextFire =
        Box<dyn Fn(DateTime<Utc>) -> Option<DateTime<Utc>> + Send + Sync + 'static>;

    /// Parses a cron line: the 6- or 7-field form with seconds (`sec min hour dom month dow
    /// [year]`), or the standard 5-field crontab form (`min hour dom month dow`), read as firing
    /// at second 0.
    pub(crate) fn parse_cron(expression: &str) -> Result<cron::Schedule, String> {
        let fields = expression.split_whitespace().count();
        let text = if fields == 5 {
            format!("0 {}", expression.trim())
        } else {
            expression.to_owned()
        };
        cron::Schedule::from_str(&text).map_err(|error| error.to_string())
    }

    /// The next fire time of `schedule` read in `zone`, strictly after a UTC instant.
    pub(crate) fn cron_next<Z>(schedule: cron::Schedule, zone: Z) -> NextFire
    where
        Z: TimeZone + Send + Sync + 'static,
        Z::Offset: Send + Sync,
    {
        Box::new(move |after: DateTime<Utc>| {
            schedule
                .after(&after.with_timezone(&zone))
                .next()
                .map(|at| at.with_timezone(&Utc))
        })
    }

    /// The monotonic instant of wall-clock time `at` (`now` if it is in the past), given the
    /// wall clock and the monotonic clock read at the same moment. `None` beyond
    /// [`MAX_DELAY`](super::MAX_DELAY).
    pub(crate) fn instant_of(
        at: DateTime<Utc>,
        wall_now: DateTime<Utc>,
        now: Instant,
    ) -> Option<Instant> {
        let delay = (at - wall_now).to_std().unwrap_or(Duration::ZERO);
        if delay > MAX_DELAY {
            return None;
        }
        now.checked_add(delay)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_late_fixed_rate_tick_skips_to_the_next_future_tick() {
        let start = Instant::now();
        let period = Duration::from_millis(100);
        assert_eq!(
            next_rate_tick(start, period, start),
            Some((start + period, 0))
        );
        let now = start + Duration::from_millis(350);
        let (next, missed) = next_rate_tick(start, period, now).unwrap();
        assert_eq!(next, start + Duration::from_millis(400));
        assert_eq!(missed, 3);
        assert!(next > now);
    }

    #[test]
    fn a_tick_beyond_the_clock_is_none() {
        let now = Instant::now();
        assert_eq!(next_rate_tick(now, Duration::MAX, now), None);
    }

    #[test]
    fn delays_beyond_max_delay_are_refused() {
        let now = Instant::now();
        assert!(check_delay(MAX_DELAY, now).is_none());
        assert!(check_delay(MAX_DELAY + Duration::from_secs(1), now).is_some());
        assert!(check_delay(Duration::MAX, now).is_some());
    }

    #[cfg(feature = "cron")]
    mod cron_rules {
        use super::super::*;
        use chrono::{TimeZone, Utc};

        fn at(h: u32, m: u32, s: u32) -> chrono::DateTime<Utc> {
            Utc.with_ymd_and_hms(2026, 1, 1, h, m, s).unwrap()
        }

        #[test]
        fn a_wall_clock_time_in_the_past_is_due_now() {
            let now = Instant::now();
            let wall = at(12, 0, 0);
            assert_eq!(instant_of(at(11, 0, 0), wall, now), Some(now));
            assert_eq!(
                instant_of(at(12, 0, 5), wall, now),
                Some(now + Duration::from_secs(5))
            );
        }

        #[test]
        fn the_time_zone_reaches_the_cron_schedule() {
            let nightly = || parse_cron("0 0 2 * * *").unwrap();
            let utc = cron_next(nightly(), Utc);
            assert_eq!(utc(at(0, 0, 0)), Some(at(2, 0, 0)));
            // 02:00 at UTC+03:00 is 23:00 UTC the day before.
            let moscow = cron_next(nightly(), chrono::FixedOffset::east_opt(3 * 3600).unwrap());
            assert_eq!(moscow(at(0, 0, 0)), Some(at(23, 0, 0)));
            let new_york = cron_next(nightly(), chrono::FixedOffset::west_opt(5 * 3600).unwrap());
            assert_eq!(new_york(at(0, 0, 0)), Some(at(7, 0, 0)));
        }

        #[test]
        fn cron_next_fire_is_strictly_after_the_given_time() {
            let every_two = cron_next(parse_cron("0/2 * * * * ?").unwrap(), Utc);
            assert_eq!(every_two(at(0, 0, 2)), Some(at(0, 0, 4)));
        }

        #[test]
        fn a_five_field_crontab_line_fires_at_second_zero() {
            let nightly = cron_next(parse_cron("30 2 * * *").unwrap(), Utc);
            assert_eq!(nightly(at(0, 0, 0)), Some(at(2, 30, 0)));
            let every_five = cron_next(parse_cron(" */5 * * * * ").unwrap(), Utc);
            assert_eq!(every_five(at(0, 1, 0)), Some(at(0, 5, 0)));
        }

        #[test]
        fn a_bad_line_says_why() {
            assert!(parse_cron("every night").is_err());
            assert!(parse_cron("61 * * * *").is_err());
        }
    }
}
