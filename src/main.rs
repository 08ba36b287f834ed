use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use irsa_webhook::cli::{Cli, Command};
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
            for warning in &output.warnings {
                eprintln!("warning: {warning}");
            }
            std::io::stdout().lock().write_all(output.stdout.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Oidc(args) => {
            let output = commands::oidc::run(&args)?;
            for warning in &output.warnings {
                eprintln!("warning: {warning}");
            }
            std::io::stdout().lock().write_all(output.stdout.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::TrustPolicy(args) => {
            let output = commands::trust_policy::run(&args)?;
            for warning in &output.warnings {
                eprintln!("warning: {warning}");
            }
            std::io::stdout().lock().write_all(output.stdout.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor(args) => Ok(commands::doctor::main(&args)),
    }
}
