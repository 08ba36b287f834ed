use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use irsa_webhook::cli::{Cli, Command, TrustPolicyCommand};
use irsa_webhook::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("irsa-webhook: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            commands::serve::init_logging(args.log_format, &args.log_level);
            commands::serve::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Mutate(args) => {
            let output = commands::mutate::run(&args, std::io::stdin().lock())?;
            emit(&output.stdout, &output.warnings)
        }
        Command::Oidc(args) => {
            let output = commands::oidc::run(&args)?;
            emit(&output.stdout, &output.warnings)
        }
        Command::TrustPolicy(args) => match &args.command {
            Some(TrustPolicyCommand::Check(check)) => Ok(commands::trust_policy::check_main(check)),
            None => {
                let output = commands::trust_policy::run(&args)?;
                emit(&output.stdout, &output.warnings)
            }
        },
        Command::Doctor(args) => Ok(commands::doctor::main(&args)),
    }
}

/// The offline commands' contract: warnings on stderr, the result on stdout, exit 0.
fn emit(stdout: &str, warnings: &[String]) -> anyhow::Result<ExitCode> {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    std::io::stdout().lock().write_all(stdout.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
