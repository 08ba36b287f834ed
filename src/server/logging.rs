//! Logging for `serve`: text or JSON lines on stderr through a bounded, lossy, non-blocking writer, with every
//! field value of the text format escaped so that a pod name cannot forge a log line.
//!
//! Why non-blocking: a request must never wait on stderr (a container runtime that reads the pipe slowly would
//! otherwise stall the async workers). Why lossy and bounded: under a flood the buffer would otherwise grow
//! without limit; at most [`BUFFERED_LINES`] lines wait, the rest are dropped and counted
//! (`irsa_webhook_log_lines_dropped_total`).

use std::fmt;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{FormatFields, Writer};

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
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    let installed =
        if json { builder.json().flatten_event(true).try_init() } else { builder.fmt_fields(EscapedFields).try_init() };
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
        let mut visitor = FieldVisitor { writer: &mut writer, result: Ok(()), first: true };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct FieldVisitor<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
    first: bool,
}

impl FieldVisitor<'_, '_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        let name = field.name().strip_prefix("r#").unwrap_or(field.name());
        self.result = if name == "message" {
            write!(self.writer, "{separator}")
        } else {
            write!(self.writer, "{separator}{name}=")
        }
        .and_then(|()| fmt::write(&mut Escaping(&mut *self.writer), value));
    }
}

impl Visit for FieldVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            // Quoted like the default formatter; the quoting escapes too, and Escaping catches what it leaves.
            self.write(field, format_args!("{value:?}"));
        }
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
    use std::fmt::Write as _;
    use std::sync::Arc;

    #[test]
    fn control_characters_are_escaped() {
        let mut out = String::new();
        Escaping(&mut out).write_str("ok\r\nFAKE line\x1b[31m\u{9b}1m\x07\ttab é").unwrap();
        assert_eq!(out, "ok\\r\\nFAKE line\\u{1b}[31m\\u{9b}1m\\u{7}\\ttab é");
    }

    #[test]
    fn long_values_are_clipped_on_a_character_boundary() {
        let long = "é".repeat(MAX_VALUE_BYTES);
        let clipped = Clip(&long).to_string();
        assert!(clipped.len() < MAX_VALUE_BYTES + 32, "{}", clipped.len());
        assert!(clipped.ends_with(&format!("…({} bytes)", long.len())));
        assert_eq!(Clip("short").to_string(), "short");
    }

    /// The whole text line, as a hostile pod name would reach it: one line, nothing forged.
    #[test]
    fn a_pod_name_cannot_forge_a_log_line() {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let sink = sink.clone();
                move || sink.clone()
            })
            .with_ansi(false)
            .fmt_fields(EscapedFields)
            .finish();
        let pod = "web\n2030-01-01T00:00:00Z  INFO irsa_webhook: admission mutated=true\x1b[2J";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(pod = %pod, raw = pod, error = &std::io::Error::other("bad\rthing") as &dyn std::error::Error, "admission\nforged");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("admission\\nforged pod=web\\n2030-01-01"), "{text}");
        assert!(text.contains("\\u{1b}[2J"), "{text}");
        assert!(text.contains("raw=\"web\\n2030"), "{text}");
        assert!(text.contains("error=bad\\rthing"), "{text}");
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    }
}
