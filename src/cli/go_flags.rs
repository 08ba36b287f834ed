//! Go's command-line conventions on top of clap, so the reference webhook's command lines parse unchanged.
//!
//! The reference parses with spf13/pflag (klog's flags added from Go's `flag` package). What its users write, and
//! what this module makes clap accept:
//! - booleans: bare `--flag` is true; `--flag=V` with every spelling of Go's `strconv.ParseBool` ([`parse_bool`]);
//!   a boolean never takes the next argument as its value (`--flag false` is `--flag` and a stray `false`);
//! - durations in Go's `time.ParseDuration` syntax: `300ms`, `1.5h`, `2h45m`, `0` ([`parse_duration`]);
//! - a single leading dash for long names, as Go's `flag` package allows: `-logtostderr`, `-v=5`, `-in-cluster=false`,
//!   and pflag's one-letter form `-v5` ([`command_line`] rewrites them to `--name...` before clap sees them);
//! - a flag given twice: the last one wins (set on the `serve` command with `args_override_self`).
//!
//! [`command_line`] also makes the binary answer to the reference's name: started as `webhook` (the file name, as
//! the reference image's `/webhook`), or handed `/webhook` as its first argument (the reference image's CMD under
//! its entrypoint), it runs `serve` with the given arguments.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Duration;

/// The file name under which the binary behaves as `irsa-webhook serve`: the reference image's `/webhook`.
pub const REFERENCE_BINARY_NAME: &str = "webhook";

/// Go's `strconv.ParseBool`, exactly: anything else is an error, as in the reference.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "{text:?} is not a boolean (Go's spellings: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False)"
        )),
    }
}

/// Go's `time.ParseDuration` (`300ms`, `1.5h`, `2h45m`, `0`, units ns us µs ms s m h), and also the humantime forms
/// this project's own duration flags always took (`30days`, `1m 30s`). Negative durations are refused: none of the
/// flags that use this has a meaning for them.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match go_duration(text) {
        Ok(duration) => Ok(duration),
        Err(GoDurationError::Negative) => Err(format!("{text:?}: a negative duration has no meaning here")),
        Err(GoDurationError::Invalid) => humantime::parse_duration(text)
            .map_err(|_| format!("{text:?} is not a duration (Go's syntax: 300ms, 1.5h, 2h45m, 0)")),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum GoDurationError {
    Invalid,
    Negative,
}

/// `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` or `0`, each number with a unit, overflow refused.
fn go_duration(text: &str) -> Result<Duration, GoDurationError> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(GoDurationError::Invalid);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(GoDurationError::Invalid);
        }
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let nanos_per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(GoDurationError::Invalid),
        };
        let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| GoDurationError::Invalid)? };
        // Go keeps the fraction's precision down to the nanosecond and truncates the rest.
        let mut fraction_nanos: u128 = 0;
        let mut scale: u128 = nanos_per_unit;
        for digit in fraction.bytes().take(30) {
            scale /= 10;
            fraction_nanos += u128::from(digit - b'0') * scale;
        }
        total = whole
            .checked_mul(nanos_per_unit)
            .and_then(|n| n.checked_add(fraction_nanos))
            .and_then(|n| n.checked_add(total))
            .filter(|n| *n <= i64::MAX as u128)
            .ok_or(GoDurationError::Invalid)?;
        rest = next;
    }
    if negative && total > 0 {
        return Err(GoDurationError::Negative);
    }
    let nanos = u64::try_from(total).map_err(|_| GoDurationError::Invalid)?;
    Ok(Duration::from_nanos(nanos))
}

/// The process's arguments as clap should see them: `serve` inserted when the binary runs as
/// [`REFERENCE_BINARY_NAME`], and the arguments of `serve` rewritten by [`normalize`] (Go's single-dash long
/// flags). Other subcommands are passed through untouched.
pub fn command_line(args: Vec<OsString>, serve: &clap::Command) -> Vec<OsString> {
    let mut args = args;
    if args.is_empty() {
        return args;
    }
    let is_reference_binary = |arg: &OsString| Path::new(arg).file_name() == Some(OsStr::new(REFERENCE_BINARY_NAME));
    if is_reference_binary(&args[0]) {
        args.insert(1, OsString::from("serve"));
    } else if args.get(1).is_some_and(|arg| arg.to_string_lossy().starts_with('/') && is_reference_binary(arg)) {
        // The reference image runs `/go-runner /webhook ...`: a manifest that sets only `args: [/webhook, ...]`
        // hands our entrypoint that path first.
        args[1] = OsString::from("serve");
    }
    if args.get(1).map(OsString::as_os_str) != Some(OsStr::new("serve")) {
        return args;
    }
    let rest = args.split_off(2);
    args.extend(normalize(rest, serve));
    args
}

/// Rewrites Go's spellings of `command`'s long flags into clap's: `-name[=value]` → `--name[=value]` when `name` is
/// one of its long flags, and `-v5` → `--v=5`. Values (the argument after a flag that takes one separately) and
/// everything after `--` are left alone, as are arguments clap will reject with its own message.
pub fn normalize(args: Vec<OsString>, command: &clap::Command) -> Vec<OsString> {
    let mut command = command.clone();
    command.build();
    let takes_separate_value = |name: &str| {
        command.get_arguments().find(|a| a.get_long() == Some(name)).map(|arg| {
            let min = arg.get_num_args().map_or(1, |range| range.min_values());
            arg.get_action().takes_values() && !arg.is_require_equals_set() && min > 0
        })
    };
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(args.by_ref());
            break;
        }
        let (long, rewritten) = if let Some(body) = text.strip_prefix("--") {
            (body.split('=').next().unwrap_or_default().to_owned(), None)
        } else if let Some(body) = text.strip_prefix('-').filter(|b| !b.is_empty()) {
            let name = body.split('=').next().unwrap_or_default();
            if takes_separate_value(name).is_some() {
                (name.to_owned(), Some(format!("--{body}")))
            } else if let Some(level) = body.strip_prefix('v').filter(|l| is_integer(l)) {
                // pflag's one-letter form: -v5 is -v=5.
                ("v".to_owned(), Some(format!("--v={level}")))
            } else {
                (String::new(), None)
            }
        } else {
            (String::new(), None)
        };
        let has_inline_value = rewritten.as_deref().unwrap_or(text).contains('=');
        out.push(rewritten.map_or(arg, OsString::from));
        if !has_inline_value && takes_separate_value(&long) == Some(true) {
            if let Some(value) = args.next() {
                out.push(value);
            }
        }
    }
    out
}

fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_go_boolean_spelling() {
        for text in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(text), Ok(true), "{text}");
        }
        for text in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(text), Ok(false), "{text}");
        }
        for text in ["", "yes", "no", "on", "tRUE", "2", " true"] {
            let error = parse_bool(text).unwrap_err();
            assert!(error.contains("Go's spellings"), "{text}: {error}");
        }
    }

    #[test]
    fn go_durations() {
        let cases = [
            ("0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("300ms", Duration::from_millis(300)),
            ("60s", Duration::from_secs(60)),
            ("1.5h", Duration::from_secs(5400)),
            ("2h45m", Duration::from_secs(9900)),
            ("1h0m0s", Duration::from_secs(3600)),
            (".5s", Duration::from_millis(500)),
            ("1.s", Duration::from_secs(1)),
            ("10us", Duration::from_micros(10)),
            ("10\u{b5}s", Duration::from_micros(10)),
            ("10\u{3bc}s", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("1.0000000019s", Duration::from_nanos(1_000_000_001)),
        ];
        for (text, expected) in cases {
            assert_eq!(go_duration(text), Ok(expected), "{text}");
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
        for text in ["", "1", "s", ".s", "1.2.3s", "1d", "1 s", "ms1", "3000000h"] {
            assert_eq!(go_duration(text), Err(GoDurationError::Invalid), "{text}");
        }
        assert_eq!(go_duration("-1s"), Err(GoDurationError::Negative));
        assert!(parse_duration("-1s").unwrap_err().contains("negative"));
    }

    #[test]
    fn humantime_forms_still_parse() {
        assert_eq!(parse_duration("30days"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").unwrap_err().contains("Go's syntax"));
    }

    fn serve_like() -> clap::Command {
        clap::Command::new("serve")
            .arg(clap::Arg::new("v").long("v").num_args(1))
            .arg(clap::Arg::new("namespace").long("namespace").num_args(1))
            .arg(
                clap::Arg::new("logtostderr")
                    .long("logtostderr")
                    .num_args(0..=1)
                    .require_equals(true)
                    .default_missing_value("true"),
            )
    }

    fn normalized(args: &[&str]) -> Vec<String> {
        let args = args.iter().map(OsString::from).collect();
        normalize(args, &serve_like()).into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(normalized(&["-v=5"]), ["--v=5"]);
        assert_eq!(normalized(&["-v", "5"]), ["--v", "5"]);
        assert_eq!(normalized(&["-v5"]), ["--v=5"]);
        assert_eq!(normalized(&["--v=5", "--v", "6"]), ["--v=5", "--v", "6"]);
        assert_eq!(normalized(&["-logtostderr"]), ["--logtostderr"]);
        assert_eq!(normalized(&["-logtostderr=false"]), ["--logtostderr=false"]);
        assert_eq!(normalized(&["-namespace", "kube-system"]), ["--namespace", "kube-system"]);
    }

    #[test]
    fn values_unknown_flags_and_the_rest_are_left_alone() {
        // A value that looks like a flag stays a value.
        assert_eq!(normalized(&["--namespace", "-v=5"]), ["--namespace", "-v=5"]);
        assert_eq!(normalized(&["-namespace", "-logtostderr"]), ["--namespace", "-logtostderr"]);
        // A boolean never takes the next argument.
        assert_eq!(normalized(&["-logtostderr", "-v=1"]), ["--logtostderr", "--v=1"]);
        // clap reports these itself.
        assert_eq!(normalized(&["-x", "-nope=1", "-", "plain"]), ["-x", "-nope=1", "-", "plain"]);
        assert_eq!(normalized(&["--", "-v=5"]), ["--", "-v=5"]);
    }

    #[test]
    fn the_reference_binary_name_runs_serve() {
        let line = |args: &[&str]| -> Vec<String> {
            let args = args.iter().map(OsString::from).collect();
            command_line(args, &serve_like()).into_iter().map(|a| a.into_string().unwrap()).collect()
        };
        assert_eq!(line(&["/webhook", "-v=5", "--logtostderr"]), ["/webhook", "serve", "--v=5", "--logtostderr"]);
        assert_eq!(line(&["webhook"]), ["webhook", "serve"]);
        assert_eq!(line(&["/usr/bin/irsa-webhook", "serve", "-v5"]), ["/usr/bin/irsa-webhook", "serve", "--v=5"]);
        // Only serve's arguments are Go-style; other commands and names are untouched.
        assert_eq!(line(&["irsa-webhook", "mutate", "-v=5"]), ["irsa-webhook", "mutate", "-v=5"]);
        assert_eq!(line(&["/bin/webhooks", "-v=5"]), ["/bin/webhooks", "-v=5"]);
        // The image's entrypoint handed the reference's CMD, as the reference's go-runner entrypoint would be.
        assert_eq!(line(&["/irsa-webhook", "/webhook", "-v=5"]), ["/irsa-webhook", "serve", "--v=5"]);
        assert_eq!(line(&["irsa-webhook", "webhook"]), ["irsa-webhook", "webhook"], "a bare word is not a path");
    }
}
