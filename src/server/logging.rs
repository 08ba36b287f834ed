//! Logging for `serve`: text or JSON lines on stderr through a bounded, lossy, non-blocking writer, with every
//! field value of the text format escaped so that a pod name cannot forge a log line.
//!
//! Why non-blocking: a request must never wait on stderr (a container runtime that reads the pipe slowly would
//! otherwise stall the async workers). Why lossy and bounded: under a flood the buffer would otherwise grow
//! without limit; at most [`BUFFERED_LINES`] lines wait, the rest are dropped and counted
//! (`irsa_webhook_log_lines_dropped_total`).

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{Format, FormatEvent, FormatFields, Full, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

/// Lines held while stderr is slower than the log rate. Lines are short (an admission line is ~300 bytes, values
/// are clipped to [`MAX_VALUE_BYTES`]), so the buffer stays within a few MiB.
pub const BUFFERED_LINES: usize = 4096;
/// Longest field value written; longer ones (only a hostile client sends a 3 MiB pod name) are cut.
pub const MAX_VALUE_BYTES: usize = 512;

static GUARD: Mutex<Option<WorkerGuard>> = Mutex::new(None);
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Installs the global subscriber. `filter` is a tracing filter (`info`, `irsa_webhook=debug`); RUST_LOG wins.
pub fn init(json: bool, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(BUFFERED_LINES)
        .lossy(true)
        .thread_name("irsa-webhook-log")
        .finish(std::io::stderr());
    let counter = writer.error_counter();
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi).with_timer(Timestamp);
    let installed = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.fmt_fields(EscapedFields).event_format(TextLine::new(Timestamp)).try_init()
    };
    // A second init (tests) keeps the first subscriber; its writer and counter stay the live ones.
    if installed.is_ok() {
        let _ = DROPPED.set(counter);
        *GUARD.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
    }
}

/// Log lines dropped so far because the writer's buffer was full.
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
}

/// Writes out the buffered lines; call before the process exits (a `process::exit` skips destructors).
pub fn flush() {
    drop(GUARD.lock().unwrap_or_else(|e| e.into_inner()).take());
}

/// The time of a line as tracing-subscriber's default timer writes it (RFC 3339, UTC, microseconds:
/// `2026-12-02T10:34:38.123456Z`), with the date and time of day formatted once per second per thread instead of
/// on every line: that formatting was a tenth of an admission line's cost.
#[derive(Clone, Copy)]
pub struct Timestamp;

thread_local! {
    /// The last second formatted on this thread, and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: Cell<Option<(u64, [u8; 19])>> = const { Cell::new(None) };
}

impl FormatTime for Timestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok();
        match since_epoch.and_then(|d| Some((second_prefix(d.as_secs())?, d.subsec_micros()))) {
            Some((prefix, micros)) => write_timestamp(w, &prefix, micros),
            // Before 1970 or after 9999: the default timer, with its own signs and widths.
            None => tracing_subscriber::fmt::time::SystemTime.format_time(w),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of `seconds` since the epoch, from this thread's cache when it is the same second; `None`
/// for years past 9999.
fn second_prefix(seconds: u64) -> Option<[u8; 19]> {
    if let Some((_, prefix)) = SECOND.get().filter(|(cached, _)| *cached == seconds) {
        return Some(prefix);
    }
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).ok()?).ok()?;
    let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
    let mut prefix = [0; 19];
    let mut put = |at: usize, value: u32, width: u32| {
        for i in 0..width {
            prefix[at + i as usize] = b'0' + (value / 10u32.pow(width - 1 - i) % 10) as u8;
        }
    };
    put(0, year, 4);
    put(5, u32::from(u8::from(at.month())), 2);
    put(8, u32::from(at.day()), 2);
    put(11, u32::from(at.hour()), 2);
    put(14, u32::from(at.minute()), 2);
    put(17, u32::from(at.second()), 2);
    for (at, separator) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        prefix[at] = separator;
    }
    SECOND.set(Some((seconds, prefix)));
    Some(prefix)
}

/// The prefix, then `.` and six digits of microseconds, then `Z`.
fn write_timestamp(w: &mut impl fmt::Write, prefix: &[u8; 19], micros: u32) -> fmt::Result {
    let mut out = [0; 27];
    out[..19].copy_from_slice(prefix);
    out[19] = b'.';
    for i in 0..6 {
        out[20 + i] = b'0' + (micros / 10u32.pow(5 - i as u32) % 10) as u8;
    }
    out[26] = b'Z';
    // Only ASCII digits and separators were written.
    w.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
}

/// The text format's line, as tracing-subscriber's default (`Full`) format writes it without colours:
/// `{time} {LEVEL:>5} {target}: {fields}`. The webhook's own events outside any span (the admission line among
/// them) are written with plain string writes; the default format's `write!`s were ~1,000 instructions a line.
/// Everything else (colours on a terminal, spans, records from the `log` crate) goes to the default format.
pub struct TextLine<T> {
    timer: T,
    fallback: Format<Full, T>,
}

impl<T: FormatTime + Clone> TextLine<T> {
    pub fn new(timer: T) -> Self {
        TextLine { fallback: Format::default().with_timer(timer.clone()), timer }
    }
}

impl<S, N, T> FormatEvent<S, N> for TextLine<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let own = meta.target().starts_with(concat!(env!("CARGO_CRATE_NAME"), "::"))
            || meta.target() == env!("CARGO_CRATE_NAME");
        if !own || writer.has_ansi_escapes() || ctx.lookup_current().is_some() {
            return self.fallback.format_event(ctx, writer, event);
        }
        if self.timer.format_time(&mut writer).is_err() {
            writer.write_str("<unknown time>")?;
        }
        writer.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// A value written at most [`MAX_VALUE_BYTES`] long, for fields a client controls (pod names, uids, errors).
pub struct Clip<'a>(pub &'a str);

impl fmt::Display for Clip<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() <= MAX_VALUE_BYTES {
            return f.write_str(self.0);
        }
        let mut end = MAX_VALUE_BYTES;
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}…({} bytes)", &self.0[..end], self.0.len())
    }
}

/// The text format's field formatter: `name=value` pairs like tracing-subscriber's default, but every value
/// (and the message) goes through [`Escaping`], so CR, LF, ESC and the other C0/C1 controls cannot start a new
/// line or drive a terminal.
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = FieldVisitor { writer: Batch::new(&mut writer), result: Ok(()), first: true };
        fields.record(&mut visitor);
        visitor.result.and_then(|()| visitor.writer.flush())
    }
}

struct FieldVisitor<'a, 'w> {
    writer: Batch<'a, Writer<'w>>,
    result: fmt::Result,
    first: bool,
}

/// The many short writes of a line's fields (a space, a name, `=`, a value) gathered on the stack and passed on
/// in one write: each write to the line's writer is a call through its vtable, and they were a third of the
/// fields' cost.
struct Batch<'a, W: fmt::Write> {
    out: &'a mut W,
    buf: [u8; 512],
    len: usize,
}

impl<'a, W: fmt::Write> Batch<'a, W> {
    fn new(out: &'a mut W) -> Self {
        Batch { out, buf: [0; 512], len: 0 }
    }

    /// Appends bytes that are valid UTF-8 only together with what else is written (checked when passed on).
    fn write_bytes(&mut self, bytes: &[u8]) -> fmt::Result {
        if let Some(room) = self.buf.get_mut(self.len..self.len + bytes.len()) {
            room.copy_from_slice(bytes);
            self.len += bytes.len();
            return Ok(());
        }
        self.flush()?;
        match self.buf.get_mut(..bytes.len()) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len = bytes.len();
                Ok(())
            }
            None => self.out.write_str(std::str::from_utf8(bytes).map_err(|_| fmt::Error)?),
        }
    }

    /// Passes on what was gathered. Only whole `&str`s and ASCII digits were gathered, so it is UTF-8.
    fn flush(&mut self) -> fmt::Result {
        let text = std::str::from_utf8(&self.buf[..self.len]).map_err(|_| fmt::Error)?;
        self.len = 0;
        if text.is_empty() {
            Ok(())
        } else {
            self.out.write_str(text)
        }
    }
}

impl<W: fmt::Write> fmt::Write for Batch<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes())
    }
}

impl FieldVisitor<'_, '_> {
    /// The separator and `name=` (nothing for the message); false when the field is not to be written.
    fn start(&mut self, field: &Field) -> bool {
        if self.result.is_err() || field.name().starts_with("log.") {
            return false;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        let name = field.name().strip_prefix("r#").unwrap_or(field.name());
        self.result = self.writer.write_str(separator).and_then(|()| match name {
            "message" => Ok(()),
            name => self.writer.write_str(name).and_then(|()| self.writer.write_char('=')),
        });
        self.result.is_ok()
    }

    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.start(field) {
            self.result = fmt::write(&mut Escaping(&mut self.writer), value);
        }
    }

    /// `value` in decimal, without the formatting machinery.
    fn write_integer(&mut self, field: &Field, negative: bool, mut value: u64) {
        if self.start(field) {
            // Twenty digits at most (u64::MAX), then room for the sign.
            let mut digits = [b'-'; 21];
            let mut at = digits.len();
            for slot in digits.iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
                at -= 1;
                if value == 0 {
                    break;
                }
            }
            let text = digits.get(at.saturating_sub(usize::from(negative))..).unwrap_or_default();
            self.result = self.writer.write_bytes(text);
        }
    }
}

impl Visit for FieldVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            if self.start(field) {
                self.result = Escaping(&mut self.writer).write_str(value);
            }
        } else {
            // Quoted like the default formatter; the quoting escapes too, and Escaping catches what it leaves.
            self.write(field, format_args!("{value:?}"));
        }
    }

    // Written as they are, without the formatting machinery: nothing in them to escape.
    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field) {
            self.result = self.writer.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write_integer(field, false, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write_integer(field, value < 0, value.unsigned_abs());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.write(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

/// Passes text through, writing control characters as escapes: `\n`, `\r`, `\t`, and `\u{..}` for the rest of
/// C0, DEL and C1 (U+0080–U+009F, which some terminals read as escape sequences).
pub struct Escaping<'a, W: fmt::Write + ?Sized>(pub &'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Most text has no control character: one pass over the bytes (no early exit, so the compiler can take
        // them many at a time) for the bytes a control character starts with. C0 and DEL are one byte each, and
        // C1 (U+0080–U+009F) is 0xC2 then 0x80–0x9F in UTF-8.
        if !s.bytes().fold(false, |found, b| found | (b < 0x20) | (b == 0x7f) | (b == 0xc2)) {
            return self.0.write_str(s);
        }
        let mut rest = s;
        while let Some(at) = rest.find(|c: char| c.is_control()) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().ok_or(fmt::Error)?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Sink {
        /// A writer maker for a subscriber that writes here.
        fn maker(&self) -> impl Fn() -> Sink + Send + Sync + 'static {
            let sink = self.clone();
            move || sink.clone()
        }
        fn text(&self) -> String {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes).unwrap()
        }
    }
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut out = String::new();
        Escaping(&mut out).write_str("ok\r\nFAKE line\x1b[31m\u{9b}1m\x07\ttab é\x7f").unwrap();
        assert_eq!(out, "ok\\r\\nFAKE line\\u{1b}[31m\\u{9b}1m\\u{7}\\ttab é\\u{7f}");
        // One at a time, each alone in its text (no other byte to make the text take the careful path).
        for (raw, escaped) in [("\u{85}", "\\u{85}"), ("\u{9f}", "\\u{9f}"), ("\x7f", "\\u{7f}"), ("\x1f", "\\u{1f}")] {
            let mut out = String::new();
            Escaping(&mut out).write_str(raw).unwrap();
            assert_eq!(out, escaped);
        }
        let mut out = String::new();
        Escaping(&mut out).write_str("plain ¢ text \u{a0}").unwrap();
        assert_eq!(out, "plain ¢ text \u{a0}");
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let at = |seconds: u64, micros: u32| {
            let mut out = String::new();
            write_timestamp(&mut out, &second_prefix(seconds).unwrap(), micros).unwrap();
            out
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_796_207_678, 123_456), "2026-12-02T10:34:38.123456Z");
        // The same second again comes from the cache; the next one does not.
        assert_eq!(at(1_796_207_678, 999_999), "2026-12-02T10:34:38.999999Z");
        assert_eq!(at(1_796_207_679, 10), "2026-12-02T10:34:39.000010Z");
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
        assert_eq!(second_prefix(253_402_300_800), None);
    }

    /// The line's time reads as tracing-subscriber's default timer writes it.
    #[test]
    fn timestamps_read_as_the_default_timer_writes_them() {
        let now = |timer: &dyn FormatTime| {
            let mut out = String::new();
            timer.format_time(&mut Writer::new(&mut out)).unwrap();
            out
        };
        // Retried when a second ends between the two readings.
        let (ours, default) = (0..5)
            .map(|_| (now(&Timestamp), now(&tracing_subscriber::fmt::time::SystemTime)))
            .find(|(ours, default)| ours[..19] == default[..19])
            .unwrap();
        assert_eq!((ours.len(), &ours[19..20], &ours[26..]), (default.len(), &default[19..20], &default[26..]));
    }

    #[test]
    fn long_values_are_clipped_on_a_character_boundary() {
        let long = "é".repeat(MAX_VALUE_BYTES);
        let clipped = Clip(&long).to_string();
        assert!(clipped.len() < MAX_VALUE_BYTES + 32, "{}", clipped.len());
        assert!(clipped.ends_with(&format!("…({} bytes)", long.len())));
        assert_eq!(Clip("short").to_string(), "short");
    }

    /// Without control characters to escape, the text line is tracing-subscriber's default line (its event format
    /// and its field formatter), byte for byte: on the fast path and off it, with lines longer than the field
    /// formatter's batch.
    #[test]
    fn text_lines_read_as_the_default_format_writes_them() {
        #[derive(Clone)]
        struct Fixed;
        impl FormatTime for Fixed {
            fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
                w.write_str("2026-12-02T10:34:38.123456Z")
            }
        }
        let long = "x".repeat(700);
        let lines = |ours: bool| {
            let sink = Sink::default();
            let builder = tracing_subscriber::fmt()
                .with_writer(sink.maker())
                .with_ansi(false)
                .with_max_level(tracing::Level::TRACE);
            let events = || {
                tracing::info!(uid = %"0d2b", mutated = true, warnings = 2usize, "admission");
                tracing::warn!(error = %"bad thing", "cannot read");
                tracing::error!("no fields");
                tracing::debug!(r#type = "x", "raw name");
                tracing::trace!(neg = -42i64, big = u64::MAX, min = i64::MIN, zero = 0u64, "numbers");
                tracing::info!(a = %long, b = %long[..300], c = long.as_str(), "long");
                tracing::info!(target: "elsewhere", n = 1, "another target");
                tracing::info_span!("span", id = 7).in_scope(|| tracing::info!(k = "v", "in a span"));
            };
            if ours {
                let subscriber = builder.fmt_fields(EscapedFields).event_format(TextLine::new(Fixed)).finish();
                tracing::subscriber::with_default(subscriber, events);
            } else {
                tracing::subscriber::with_default(builder.with_timer(Fixed).finish(), events);
            }
            sink.text()
        };
        let (ours, default) = (lines(true), lines(false));
        assert_eq!(ours.lines().count(), 8, "{ours}");
        assert!(
            ours.contains("  INFO irsa_webhook::server::logging::tests: admission uid=0d2b mutated=true warnings=2\n")
        );
        assert!(ours.contains(" numbers neg=-42 big=18446744073709551615 min=-9223372036854775808 zero=0\n"));
        assert_eq!(ours, default);
    }

    /// The whole text line, as a hostile pod name would reach it: one line, nothing forged.
    #[test]
    fn a_pod_name_cannot_forge_a_log_line() {
        let sink = Sink::default();
        let subscriber =
            tracing_subscriber::fmt().with_writer(sink.maker()).with_ansi(false).fmt_fields(EscapedFields).finish();
        let pod = "web\n2030-01-01T00:00:00Z  INFO irsa_webhook: admission mutated=true\x1b[2J";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(pod = %pod, raw = pod, ok = true, error = &std::io::Error::other("bad\rthing") as &dyn std::error::Error, "admission\nforged");
        });
        let text = sink.text();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("admission\\nforged pod=web\\n2030-01-01"), "{text}");
        assert!(text.contains("\\u{1b}[2J"), "{text}");
        assert!(text.contains("raw=\"web\\n2030"), "{text}");
        assert!(text.contains("error=bad\\rthing"), "{text}");
        assert!(text.contains(" ok=true "), "{text}");
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    }
}
