//! What the benches share: the webhook's `Admission` over the example ServiceAccounts, as `serve
//! --service-accounts examples/serviceaccounts.yaml` builds it.

use std::sync::Arc;

use irsa_webhook::admission::Admission;
use irsa_webhook::manifest::parse_service_accounts;
use irsa_webhook::settings::MutationSettings;
use irsa_webhook::store::file::FileSource;

pub fn admission() -> Admission {
    let settings = Arc::new(MutationSettings::default());
    let service_accounts =
        parse_service_accounts(include_str!("../../examples/serviceaccounts.yaml")).expect("examples");
    Admission {
        source: Arc::new(FileSource::from_manifests(service_accounts, &settings)),
        settings,
        container_credentials: None,
    }
}
