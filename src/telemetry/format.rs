//! The text log format: tracing-subscriber's `Full` format, with a shorter
//! path for the access line and a timestamp that is formatted once a second.
//!
//! The access line is written on every request, so its cost matters: the
//! general formatter styles every part through `nu_ansi_term` (even with
//! colours off) and formats the date afresh each time. [`TextFormat`] writes
//! the access line's parts directly, byte for byte as `Full` would, and hands
//! every other line (and every line on a terminal, where colours are on) to
//! `Full` itself.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::ACCESS_TARGET;

/// UTC timestamps as `2026-11-21T18:22:12.985081Z`, the same text as
/// tracing-subscriber's `SystemTime` timer. The date and time of day are
/// formatted once per second and thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct UtcMicros;

impl UtcMicros {
    fn write(&self, w: &mut Writer<'_>, now: SystemTime) -> fmt::Result {
        thread_local! {
            /// The last second formatted, and its text up to the seconds.
            static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
        }
        // Before 1970 only with a broken clock; shown as the epoch.
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        SECOND.with(|cell| {
            let mut second = cell.borrow_mut();
            if second.0 != secs {
                second.1.clear();
                write_second(&mut second.1, secs)?;
                second.0 = secs;
            }
            write!(w, "{}.{:06}Z", second.1, since.subsec_micros())
        })
    }
}

impl FormatTime for UtcMicros {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        self.write(w, SystemTime::now())
    }
}

/// `YYYY-MM-DDTHH:MM:SS` for Unix seconds.
fn write_second(out: &mut String, secs: u64) -> fmt::Result {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`, for days ≥ 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The text format (see the module docs).
pub struct TextFormat {
    full: Format<Full, UtcMicros>,
}

impl Default for TextFormat {
    fn default() -> Self {
        TextFormat {
            full: tracing_subscriber::fmt::format().with_timer(UtcMicros),
        }
    }
}

impl<S, N> FormatEvent<S, N> for TextFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let plain = meta.target() == ACCESS_TARGET
            && !writer.has_ansi_escapes()
            && ctx.lookup_current().is_none()
            && meta.fields().iter().all(|f| plain_field(f.name()));
        if !plain {
            return self.full.format_event(ctx, writer, event);
        }
        UtcMicros.write(&mut writer, SystemTime::now())?;
        // As `Full` lays it out without colours: level right-aligned in five.
        write!(writer, " {:>5} {}: ", meta.level().as_str(), meta.target())?;
        let mut fields = Fields {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// Fields that `Full` writes as `name=value` with the value's `Debug`
/// (`message`, raw identifiers and `log.` fields have their own rules).
fn plain_field(name: &str) -> bool {
    name != "message" && !name.starts_with("r#") && !name.starts_with("log.")
}

/// Writes `name=value` pairs separated by spaces, values by `Debug`.
struct Fields<'w, 'a> {
    writer: &'w mut Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn name(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        self.writer.write_str(field.name())?;
        self.writer.write_char('=')
    }
}

impl Visit for Fields<'_, '_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.result.is_ok() {
            self.result = self
                .name(field)
                .and_then(|()| write!(self.writer, "{value}"));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.result.is_ok() {
            self.result = self
                .name(field)
                .and_then(|()| write!(self.writer, "{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = self
                .name(field)
                .and_then(|()| write!(self.writer, "{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[test]
    fn dates_match_the_calendar() {
        let day = |y, m, d| (y, m, d);
        assert_eq!(civil_from_days(0), day(1970, 1, 1));
        assert_eq!(civil_from_days(11_016), day(2000, 2, 29));
        assert_eq!(civil_from_days(11_017), day(2000, 3, 1));
        assert_eq!(civil_from_days(20_413), day(2025, 11, 21));
        assert_eq!(civil_from_days(47_541), day(2100, 3, 1));
        let mut s = String::new();
        write_second(&mut s, 1_763_700_000 + 86_399).unwrap();
        assert_eq!(s, "2025-11-22T04:39:59");
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// The access line's fields, logged under a subscriber using `format`.
    fn access_line<F>(format: F) -> String
    where
        F: FormatEvent<
                tracing_subscriber::Registry,
                tracing_subscriber::fmt::format::DefaultFields,
            > + Send
            + Sync
            + 'static,
    {
        let out = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .event_format(format)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let method = axum::http::Method::POST;
            tracing::info!(
                target: ACCESS_TARGET,
                id = %"1f",
                %method,
                path = "/weixin",
                status = 200u16,
                latency_us = 171u64,
                msg_type = Some("text"),
                outcome = None::<&str>,
                signed = -3i64,
                quoted = "a \"b\"",
            );
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn access_line_is_what_full_writes() {
        let ours = access_line(TextFormat::default());
        let theirs = access_line(tracing_subscriber::fmt::format().with_timer(UtcMicros));
        // Same text after the timestamp (the two lines were written at
        // different microseconds).
        let after_time = |s: &str| s.split_once(' ').unwrap().1.to_owned();
        assert_eq!(after_time(&ours), after_time(&theirs));
        assert!(ours.ends_with(
            " INFO wxgate::access: id=1f method=POST path=\"/weixin\" status=200 latency_us=171 \
             msg_type=\"text\" signed=-3 quoted=\"a \\\"b\\\"\"\n"
        ));
    }

    #[test]
    fn timestamps_are_what_the_default_timer_writes() {
        let at = UNIX_EPOCH + Duration::new(1_763_700_000, 985_081_999);
        let mut text = String::new();
        UtcMicros.write(&mut Writer::new(&mut text), at).unwrap();
        assert_eq!(text, "2025-11-21T04:40:00.985081Z");
        // The cached second is reused, the microseconds are not.
        text.clear();
        UtcMicros
            .write(&mut Writer::new(&mut text), at + Duration::from_micros(7))
            .unwrap();
        assert_eq!(text, "2025-11-21T04:40:00.985088Z");
    }
}
