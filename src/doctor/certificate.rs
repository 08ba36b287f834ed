//! `certificate`: the caBundle the API server verifies the webhook's serving certificate with.

use serde_json::Value;

use super::{Finding, CHECK_CERTIFICATE};

/// A caBundle CA closer than this to its end earns a hint.
pub const CA_EXPIRY_WARNING_SECONDS: i64 = 30 * 86400;

/// The API server verifies the webhook's serving certificate with `clientConfig.caBundle` (or, for a URL without
/// one, the system roots). An empty bundle or an expired CA makes every call fail, and with failurePolicy Ignore
/// every pod is admitted unmutated. The serving certificate itself is not visible from the API.
pub(super) fn check_ca_bundle(label: &str, webhook: &Value, now: i64) -> Finding {
    use base64::Engine as _;
    let bundle = webhook.pointer("/clientConfig/caBundle").and_then(Value::as_str).unwrap_or_default();
    let renew = "self-managed certificates: the webhook renews them and patches the caBundle (check its logs and \
                 --webhook-config); cert-manager: kubectl get certificate -A; own certificates: certs/gen-certs.sh, \
                 then update caBundle";
    if bundle.trim().is_empty() {
        if webhook.pointer("/clientConfig/url").is_some() {
            return Finding::hint(
                CHECK_CERTIFICATE,
                format!("{label} has no caBundle: the API server trusts its system roots for the webhook's URL"),
                None,
            );
        }
        return Finding::problem(
            CHECK_CERTIFICATE,
            format!("{label} has no caBundle: the API server cannot verify the webhook (x509: certificate signed by unknown authority)"),
            format!("fill caBundle — {renew}"),
        );
    }
    let pem = match base64::engine::general_purpose::STANDARD.decode(bundle.trim()) {
        Ok(pem) => pem,
        Err(error) => {
            return Finding::problem(
                CHECK_CERTIFICATE,
                format!("{label}: caBundle is not base64 ({error})"),
                format!("set caBundle to base64 of the CA's PEM — {renew}"),
            )
        }
    };
    let not_after = crate::x509::not_afters(&pem);
    // During a CA rotation the bundle holds old and new: the newest one is what keeps calls working.
    let Some(latest) = not_after.iter().copied().max() else {
        return Finding::problem(
            CHECK_CERTIFICATE,
            format!("{label}: caBundle holds no PEM certificate"),
            format!("set caBundle to base64 of the CA's PEM — {renew}"),
        );
    };
    let date = unix_date(latest);
    if latest <= now {
        Finding::problem(
            CHECK_CERTIFICATE,
            format!("the caBundle CA of {label} expired on {date}: every call fails (x509: certificate has expired)"),
            renew,
        )
    } else if latest - now < CA_EXPIRY_WARNING_SECONDS {
        Finding::hint(
            CHECK_CERTIFICATE,
            format!("the caBundle CA of {label} expires on {date}, in {} days", (latest - now) / 86400),
            Some(renew.to_owned()),
        )
    } else {
        Finding::ok(CHECK_CERTIFICATE, format!("the caBundle CA of {label} is valid until {date}"))
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time: days to the proleptic Gregorian calendar (H. Hinnant's civil_from_days).
pub(crate) fn unix_date(seconds: i64) -> String {
    let days = seconds.div_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
