//! Asks STS who we are with the default credential chain of aws-config, configured by nothing but the environment
//! (what a pod's container gets). Prints the answer as one JSON line; on failure prints the whole error chain to
//! stderr and exits 1.

use std::process::ExitCode;

use aws_config::BehaviorVersion;
use aws_sdk_sts::error::DisplayErrorContext;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let sts = aws_sdk_sts::Client::new(&config);
    match sts.get_caller_identity().send().await {
        Ok(identity) => {
            let answer = serde_json::json!({
                "Arn": identity.arn(),
                "Account": identity.account(),
                "UserId": identity.user_id(),
            });
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("GetCallerIdentity failed: {}", DisplayErrorContext(&error));
            ExitCode::FAILURE
        }
    }
}
