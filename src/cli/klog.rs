//! klog's flags, as the reference accepts them (it adds klog's flag set to its own) and as Go programs spell them:
//! `-v`/`--v=N`, `--logtostderr`, `--vmodule`, `--log_dir`, ... Deployments of the reference pass them (`--v=5`,
//! `--logtostderr`), so every one is accepted with klog's value syntax and default.
//!
//! What they do here: `--v` sets the log level (0–3 info, 4–5 debug, 6 and above trace) unless `--log-level` or
//! `RUST_LOG` says otherwise. Logs always go to stderr, which is what `--logtostderr` (klog's default, true) and
//! `--alsologtostderr` ask for. The others are about klog's log files, header format and Go source files; they
//! have no meaning here, and those given are named once in a startup warning ([`KlogArgs::unsupported`]).

use std::fmt;

use clap::Args;

use super::go_flags::parse_bool;

/// klog's flags. Values are checked as klog checks them; `None` means "not given".
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "klog flags (the reference's logging flags)")]
pub struct KlogArgs {
    /// klog's verbosity: 0–3 info, 4–5 debug, 6+ trace. --log-level and RUST_LOG win when set.
    #[arg(short = 'v', long = "v", value_name = "N", value_parser = parse_level)]
    pub v: Option<i32>,
    /// Log to stderr (always done; false is accepted and warned about).
    #[arg(long = "logtostderr", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool)]
    pub logtostderr: Option<bool>,
    /// Also log to stderr (always done).
    #[arg(long = "alsologtostderr", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool)]
    pub alsologtostderr: Option<bool>,
    /// klog: severity from which file logs are copied to stderr. No meaning here.
    #[arg(long = "stderrthreshold", value_name = "SEVERITY", value_parser = parse_severity)]
    pub stderrthreshold: Option<Severity>,
    /// klog: directory for log files. No meaning here: logs go to stderr.
    #[arg(long = "log_dir", value_name = "DIR")]
    pub log_dir: Option<String>,
    /// klog: log file. No meaning here: logs go to stderr.
    #[arg(long = "log_file", value_name = "FILE")]
    pub log_file: Option<String>,
    /// klog: largest log file in MB. No meaning here.
    #[arg(long = "log_file_max_size", value_name = "MB")]
    pub log_file_max_size: Option<u64>,
    /// klog: no header prefix on log lines. No meaning here (see --log-format).
    #[arg(long = "skip_headers", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool)]
    pub skip_headers: Option<bool>,
    /// klog: no headers when opening log files. No meaning here.
    #[arg(long = "skip_log_headers", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool)]
    pub skip_log_headers: Option<bool>,
    /// klog: the Go source directory in the header. No meaning here.
    #[arg(long = "add_dir_header", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool)]
    pub add_dir_header: Option<bool>,
    /// klog: write each line only to its own severity's file. No meaning here.
    #[arg(long = "one_output", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool)]
    pub one_output: Option<bool>,
    /// klog: per-Go-file verbosity, pattern=N,... No meaning here (use --log-level with module filters).
    #[arg(long = "vmodule", value_name = "PATTERN=N,...", value_parser = parse_vmodule)]
    pub vmodule: Option<String>,
    /// klog: a stack trace when logging at a Go file:line. No meaning here.
    #[arg(long = "log_backtrace_at", value_name = "FILE:N", value_parser = parse_trace_location)]
    pub log_backtrace_at: Option<String>,
}

/// klog's severities, for `--stderrthreshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Error,
    Fatal,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        })
    }
}

/// klog's `Level.Set`: a base-10 32-bit integer.
fn parse_level(text: &str) -> Result<i32, String> {
    text.parse().map_err(|_| format!("{text:?} is not a verbosity level (a whole number, e.g. 2 or 5)"))
}

/// klog's `severityValue.Set`: a name (any case) or its number, 0 (INFO) to 3 (FATAL).
fn parse_severity(text: &str) -> Result<Severity, String> {
    match text.to_ascii_uppercase().as_str() {
        "INFO" | "0" => Ok(Severity::Info),
        "WARNING" | "1" => Ok(Severity::Warning),
        "ERROR" | "2" => Ok(Severity::Error),
        "FATAL" | "3" => Ok(Severity::Fatal),
        _ => Err(format!("{text:?} is not a severity (INFO, WARNING, ERROR, FATAL or 0-3)")),
    }
}

/// klog's `moduleSpec.Set`: comma-separated `pattern=N`, empty allowed.
fn parse_vmodule(text: &str) -> Result<String, String> {
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let valid =
            part.split_once('=').is_some_and(|(pattern, level)| !pattern.is_empty() && level.parse::<i32>().is_ok());
        if !valid {
            return Err(format!("{part:?}: expect comma-separated list of filename=N"));
        }
    }
    Ok(text.to_owned())
}

/// klog's `traceLocation.Set`: empty, or `file:N`.
fn parse_trace_location(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Ok(String::new());
    }
    match text.rsplit_once(':') {
        Some((file, line)) if !file.is_empty() && line.parse::<u32>().is_ok() => Ok(text.to_owned()),
        _ => Err(format!("{text:?}: expect file.go:234")),
    }
}

impl KlogArgs {
    /// The tracing filter for `--log-level` and `--v`: an explicit `--log-level` wins, then `--v`, then the
    /// `--log-level` default. (`RUST_LOG` wins over both where the filter is built.)
    pub fn log_filter(&self, log_level: &str, log_level_given: bool) -> String {
        match self.v {
            Some(v) if !log_level_given => level_for_verbosity(v).to_owned(),
            _ => log_level.to_owned(),
        }
    }

    /// The klog flags given that change nothing here, each with why; for one startup warning.
    pub fn unsupported(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut note = |given: bool, text: String| {
            if given {
                found.push(text);
            }
        };
        note(self.logtostderr == Some(false), "--logtostderr=false (logs always go to stderr)".into());
        note(self.stderrthreshold.is_some(), "--stderrthreshold (everything goes to stderr)".into());
        note(self.log_dir.is_some(), "--log_dir (logs go to stderr, never to files)".into());
        note(self.log_file.is_some(), "--log_file (logs go to stderr, never to files)".into());
        note(self.log_file_max_size.is_some(), "--log_file_max_size (no log files)".into());
        note(self.skip_headers.is_some(), "--skip_headers (the line format is --log-format's)".into());
        note(self.skip_log_headers.is_some(), "--skip_log_headers (no log files)".into());
        note(self.add_dir_header.is_some(), "--add_dir_header (the line format is --log-format's)".into());
        note(self.one_output.is_some(), "--one_output (no log files)".into());
        note(
            self.vmodule.is_some(),
            "--vmodule (per-Go-file levels; use --log-level=info,irsa_webhook::store=debug)".into(),
        );
        note(self.log_backtrace_at.is_some(), "--log_backtrace_at (Go source locations)".into());
        found
    }
}

/// klog's verbosity as a tracing level: the reference logs its details at V(4) and V(5) and little above.
pub fn level_for_verbosity(v: i32) -> &'static str {
    match v {
        i32::MIN..=3 => "info",
        4..=5 => "debug",
        _ => "trace",
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        klog: KlogArgs,
    }

    fn parse(args: &[&str]) -> Result<KlogArgs, String> {
        let argv = std::iter::once("probe").chain(args.iter().copied());
        Probe::try_parse_from(argv).map(|p| p.klog).map_err(|e| e.to_string())
    }

    fn ok(args: &[&str]) -> KlogArgs {
        parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn v_in_every_spelling() {
        for args in [&["--v=5"][..], &["--v", "5"], &["-v", "5"], &["-v=5"], &["-v5"]] {
            assert_eq!(ok(args).v, Some(5), "{args:?}");
        }
        assert_eq!(ok(&[]).v, None);
        assert!(parse(&["--v=high"]).unwrap_err().contains("verbosity"));
    }

    #[test]
    fn v_sets_the_level_unless_log_level_is_given() {
        let cases = [(0, "info"), (2, "info"), (3, "info"), (4, "debug"), (5, "debug"), (6, "trace"), (10, "trace")];
        for (v, level) in cases {
            let klog = ok(&[&format!("--v={v}")]);
            assert_eq!(klog.log_filter("info", false), level, "--v={v}");
            assert_eq!(klog.log_filter("warn", true), "warn", "--v={v} with --log-level");
        }
        assert_eq!(ok(&[]).log_filter("info", false), "info");
        assert_eq!(level_for_verbosity(-1), "info");
    }

    #[test]
    fn logtostderr_and_alsologtostderr() {
        assert_eq!(ok(&["--logtostderr"]).logtostderr, Some(true));
        assert_eq!(ok(&["--logtostderr=false"]).logtostderr, Some(false));
        assert_eq!(ok(&["--logtostderr=0"]).logtostderr, Some(false));
        assert_eq!(ok(&["--alsologtostderr=T"]).alsologtostderr, Some(true));
        assert!(ok(&["--logtostderr", "--alsologtostderr"]).unsupported().is_empty(), "both are what we do");
        assert_eq!(ok(&["--logtostderr=false"]).unsupported().len(), 1);
        assert!(parse(&["--logtostderr=yes"]).is_err());
    }

    #[test]
    fn stderrthreshold_takes_names_and_numbers() {
        assert_eq!(ok(&["--stderrthreshold=warning"]).stderrthreshold, Some(Severity::Warning));
        assert_eq!(ok(&["--stderrthreshold=ERROR"]).stderrthreshold, Some(Severity::Error));
        assert_eq!(ok(&["--stderrthreshold=3"]).stderrthreshold, Some(Severity::Fatal));
        assert_eq!(ok(&["--stderrthreshold", "0"]).stderrthreshold, Some(Severity::Info));
        assert!(parse(&["--stderrthreshold=debug"]).is_err());
        assert_eq!(Severity::Warning.to_string(), "WARNING");
    }

    #[test]
    fn file_flags() {
        let klog = ok(&["--log_dir=/var/log", "--log_file", "/tmp/w.log", "--log_file_max_size=10"]);
        assert_eq!(klog.log_dir.as_deref(), Some("/var/log"));
        assert_eq!(klog.log_file.as_deref(), Some("/tmp/w.log"));
        assert_eq!(klog.log_file_max_size, Some(10));
        assert_eq!(klog.unsupported().len(), 3);
        assert!(parse(&["--log_file_max_size=-1"]).is_err());
    }

    #[test]
    fn header_and_output_booleans() {
        let klog = ok(&["--skip_headers", "--skip_log_headers=true", "--add_dir_header=1", "--one_output=F"]);
        assert_eq!(
            (klog.skip_headers, klog.skip_log_headers, klog.add_dir_header, klog.one_output),
            (Some(true), Some(true), Some(true), Some(false))
        );
        assert_eq!(klog.unsupported().len(), 4);
    }

    #[test]
    fn vmodule_and_log_backtrace_at_are_checked_like_klog() {
        assert_eq!(ok(&["--vmodule=cache*=5,handler=3"]).vmodule.as_deref(), Some("cache*=5,handler=3"));
        assert_eq!(ok(&["--vmodule="]).vmodule.as_deref(), Some(""));
        assert!(parse(&["--vmodule=cache"]).unwrap_err().contains("filename=N"));
        assert!(parse(&["--vmodule=cache=x"]).is_err());
        assert_eq!(ok(&["--log_backtrace_at=handler.go:123"]).log_backtrace_at.as_deref(), Some("handler.go:123"));
        assert!(parse(&["--log_backtrace_at=handler.go"]).unwrap_err().contains("file.go:234"));
        let klog = ok(&["--vmodule=a=1", "--log_backtrace_at=a.go:1"]);
        assert_eq!(klog.unsupported().len(), 2);
        assert!(klog.unsupported()[0].starts_with("--vmodule"));
    }
}
