//! The binary's CLI definition (`Cli::command()`): which flags `serve` has, their defaults, and parsing.

use super::*;

pub fn subcommand(name: &str) -> clap::Command {
    let mut cli = Cli::command();
    cli.build();
    cli.find_subcommand(name).cloned().unwrap_or_else(|| panic!("the CLI has no `{name}` subcommand"))
}

/// `serve`'s arguments by long name.
pub fn serve_args() -> BTreeMap<String, clap::Arg> {
    subcommand("serve").get_arguments().filter_map(|a| Some((a.get_long()?.to_owned(), a.clone()))).collect()
}

/// The mutation flags: those `serve` shares with `mutate` (both flatten the same mutation arguments).
pub fn mutation_flags() -> BTreeSet<String> {
    let serve = serve_args();
    subcommand("mutate")
        .get_arguments()
        .filter(|a| !matches!(a.get_action(), clap::ArgAction::Help | clap::ArgAction::Version))
        .filter_map(|a| a.get_long().filter(|l| serve.contains_key(*l)).map(str::to_owned))
        .collect()
}

pub fn default_of(arg: &clap::Arg) -> Option<String> {
    let values = arg.get_default_values();
    (!values.is_empty()).then(|| values.iter().map(|v| v.to_string_lossy()).collect::<Vec<_>>().join(","))
}

/// A default that turns nothing on: a false switch or an empty value.
pub fn is_off(default: &str) -> bool {
    default.is_empty() || default == "false"
}

/// Equal as text, or as durations written differently (`2m` and `120s`).
pub fn same_value(a: &str, b: &str) -> bool {
    a == b || matches!((humantime::parse_duration(a), humantime::parse_duration(b)), (Ok(x), Ok(y)) if x == y)
}

/// Parses the container's arguments as the binary does (Go-style flags normalised, then clap).
pub fn check_parses(c: &mut Checks, args: &[String]) -> bool {
    let mut cli = Cli::command();
    let serve = subcommand("serve");
    let argv: Vec<OsString> =
        std::iter::once(OsString::from("irsa-webhook")).chain(args.iter().map(OsString::from)).collect();
    let result = cli.try_get_matches_from_mut(go_flags::command_line(argv, &serve));
    let serve_given = result.as_ref().is_ok_and(|m| m.subcommand_name() == Some("serve"));
    c.ok(
        serve_given,
        format!("all {} arguments parse as `irsa-webhook serve` (Cli::command())", args.len()),
        result.err().map(|e| e.to_string()),
    )
}

/// With the chart's default values: the mutation flags carry the binary's defaults, every other flag is the
/// binary's default too unless it is one the chart chooses for its Deployment, and off-by-default switches are off.
/// `except` names flags a case sets on purpose.
pub fn check_defaults(c: &mut Checks, flags: &BTreeMap<String, Option<String>>, except: &[&str]) {
    let serve = serve_args();
    let mut wrong = BTreeMap::new();
    for long in mutation_flags().iter().filter(|l| !except.contains(&l.as_str())) {
        let Some(default) = serve.get(long).and_then(default_of).filter(|d| !is_off(d)) else { continue };
        let rendered = flags.get(long).cloned().flatten();
        if !rendered.as_deref().is_some_and(|v| same_value(v, &default)) {
            wrong.insert(long.clone(), (rendered, default));
        }
    }
    c.ok(wrong.is_empty(), "mutation flags are rendered with the binary's defaults", &wrong);

    let mut wrong = BTreeMap::new();
    for (long, value) in flags {
        if CHART_CHOICES.contains(&long.as_str()) || except.contains(&long.as_str()) {
            continue;
        }
        let default = serve.get(long).and_then(default_of);
        let same = match (value, &default) {
            (Some(v), Some(d)) => same_value(v, d),
            _ => false,
        };
        if !same {
            wrong.insert(long.clone(), (value.clone(), default));
        }
    }
    c.ok(
        wrong.is_empty(),
        format!("every other flag is the binary's default (the chart's own: {CHART_CHOICES:?})"),
        &wrong,
    );

    let on: Vec<&String> = serve
        .iter()
        .filter(|(long, arg)| default_of(arg).is_some_and(|d| is_off(&d)) && flags.contains_key(*long))
        .map(|(long, _)| long)
        .collect();
    c.ok(on.is_empty(), "off-by-default switches and empty values are not rendered", on);
}
