use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use irsa_webhook::cli::{go_flags, Cli, Command, TrustPolicyCommand};
use irsa_webhook::commands;

fn main() -> ExitCode {
    let mut command = Cli::command();
    // Go's flag syntax for serve, and the reference's binary name (`webhook`) meaning `serve`.
    let args = match command.find_subcommand("serve") {
        Some(serve) => go_flags::command_line(std::env::args_os().collect(), serve),
        None => std::env::args_os().collect(),
    };
    let matches = command.try_get_matches_from_mut(args).unwrap_or_else(|error| error.exit());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.format(&mut command).exit());
    // `--v` sets the level unless --log-level was given (on the command line or as IRSA_LOG_LEVEL).
    let log_level_given = matches
        .subcommand_matches("serve")
        .and_then(|serve| serve.value_source("log_level"))
        .is_some_and(|source| source != ValueSource::DefaultValue);
    match run(cli, log_level_given) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("irsa-webhook: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, log_level_given: bool) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            if args.reference.version {
                println!("irsa-webhook {}", env!("CARGO_PKG_VERSION"));
                return Ok(ExitCode::SUCCESS);
            }
            commands::serve::init_logging(args.log_format, &args.klog.log_filter(&args.log_level, log_level_given));
            commands::serve::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Mutate(args) => emit(commands::mutate::run(&args, std::io::stdin().lock())?),
        Command::Oidc(args) => emit(commands::oidc::run(&args)?),
        Command::TrustPolicy(args) => match &args.command {
            Some(TrustPolicyCommand::Check(check)) => Ok(commands::trust_policy::check_main(check)),
            None => emit(commands::trust_policy::run(&args)?),
        },
        Command::Doctor(args) => Ok(commands::doctor::main(&args)),
    }
}

/// The offline commands' contract: warnings on stderr, the result on stdout, exit 0.
fn emit(output: commands::Output) -> anyhow::Result<ExitCode> {
    output.emit()?;
    Ok(ExitCode::SUCCESS)
}
