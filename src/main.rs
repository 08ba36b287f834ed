use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use irsa_webhook::cli::{go_flags, Cli, Command, TrustPolicyCommand};
use irsa_webhook::commands;

/// The static (musl) build's allocator: musl's own made each `/mutate` request ~20 % slower than the glibc build's
/// (docs/benchmarks.md, "The static build the image ships"). The glibc build keeps glibc's.
#[cfg(target_env = "musl")]
mod allocator {
    use libmimalloc_sys::{mi_option_set, mi_option_t};

    #[global_allocator]
    static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

    // mimalloc v3's numbers (`mi_option_e` in include/mimalloc.h; retired options keep theirs). The crate names
    // neither for v3, so libmimalloc-sys is pinned (Cargo.toml). Checked: the binary's memory with these equals
    // its memory with MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0 (docs/benchmarks.md).
    const ARENA_EAGER_COMMIT: mi_option_t = 4;
    const PURGE_DELAY: mi_option_t = 15;

    /// Freed memory goes back to the OS at once and arenas are committed as they are used. With mimalloc's
    /// defaults a burst of 3 MiB reviews kept its peak (144 MiB, against 46 MiB and then 10 MiB with musl's
    /// allocator); with these it is musl's (49 MiB, then 14 MiB), and the speed stays.
    pub fn configure() {
        // SAFETY: mi_option_set stores a number in mimalloc's option table; both options take any integer.
        unsafe {
            mi_option_set(ARENA_EAGER_COMMIT, 0);
            mi_option_set(PURGE_DELAY, 0);
        }
    }
}

fn main() -> ExitCode {
    #[cfg(target_env = "musl")]
    allocator::configure();
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
