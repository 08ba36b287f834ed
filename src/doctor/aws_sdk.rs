//! `aws-sdk`: images cannot be inspected from the API, so the minimum SDK versions are always a hint.

use super::{Finding, CHECK_AWS_SDK};
use crate::identity::{Credentials, Identity};

/// Minimum AWS SDK versions that read `AWS_WEB_IDENTITY_TOKEN_FILE`, from the AWS EKS documentation
/// "Use IRSA with the AWS SDK" (docs.aws.amazon.com/eks/latest/userguide/iam-roles-for-service-accounts-minimum-sdk.html),
/// except boto3: the docs say 1.9.220, but 1.9.200 is the first boto3 that requires botocore 1.12.200 (the first
/// botocore that reads the token file), which `tests/e2e_sdk.rs` proves against the real releases.
pub const MINIMUM_SDK_VERSIONS: &[(&str, &str)] = &[
    ("Java v2", "2.10.11"),
    ("Java v1", "1.12.782"),
    ("Go v1", "1.23.13"),
    ("Go v2", "all"),
    ("Python boto3", "1.9.200"),
    ("botocore", "1.12.200"),
    ("AWS CLI", "1.16.232"),
    ("Node.js v2", "2.525.0"),
    ("Node.js v3", "3.27.0"),
    ("Ruby aws-sdk-core", "3.58.0"),
    ("C++", "1.7.174"),
    (".NET", "3.3.659.1"),
    ("PHP", "3.110.7"),
];

pub(super) fn hint(identity: &Identity) -> Finding {
    match identity.credentials {
        Credentials::WebIdentity { .. } => {
            let versions: Vec<String> = MINIMUM_SDK_VERSIONS.iter().map(|(sdk, v)| format!("{sdk} {v}")).collect();
            Finding::hint(
                CHECK_AWS_SDK,
                format!(
                    "images cannot be inspected from the API; web-identity credentials need at least {} (AWS EKS docs, \
                     \"Use IRSA with the AWS SDK\")",
                    versions.join(", ")
                ),
                Some("upgrade the SDK in the image if it is older (Java also needs the sts module, .NET AWSSDK.SecurityToken)".to_owned()),
            )
        }
        Credentials::ContainerCredentials => Finding::hint(
            CHECK_AWS_SDK,
            "images cannot be inspected from the API; EKS Pod Identity needs SDKs that read \
             AWS_CONTAINER_CREDENTIALS_FULL_URI with an authorization token file (AWS EKS docs, \"Use pod identity with the AWS SDK\")",
            Some("upgrade the SDK in the image if it is older".to_owned()),
        ),
    }
}
