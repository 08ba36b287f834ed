"""boto3 client of tests/e2e_sdk.rs: STS GetCallerIdentity with boto3's default credential chain, configured by
nothing but the environment (a pod's container env). Prints one JSON line; exit 3 when boto3 finds no
credentials, 1 on any other error (traceback on stderr)."""

import collections
import collections.abc
import json
import os
import sys

# botocore before 1.13 (the release older than doctor's minimum) imports collections.Mapping and friends, which
# Python 3.10 removed. Restore the aliases; nothing of the SDK is changed.
for _name in ("Mapping", "MutableMapping", "MutableSet", "Sequence", "Callable", "Iterable"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))

import boto3  # noqa: E402
import botocore  # noqa: E402
import botocore.exceptions  # noqa: E402


def version(text):
    return tuple(int(part) for part in text.split(".")[:3])


# botocore reads AWS_ENDPOINT_URL_STS from 1.31.0 on. An older one would send its STS calls (the web-identity
# exchange of its credential provider, and GetCallerIdentity) to the real STS, which this machine cannot reach: give
# its STS clients that endpoint as the newer ones take it from the env. Where credentials come from is untouched.
if version(botocore.__version__) < (1, 31, 0) and os.environ.get("AWS_ENDPOINT_URL_STS"):
    import botocore.session  # noqa: E402

    _create_client = botocore.session.Session.create_client

    def _create_client_with_endpoint(self, service_name, *args, **kwargs):
        if service_name == "sts" and not kwargs.get("endpoint_url"):
            kwargs["endpoint_url"] = os.environ["AWS_ENDPOINT_URL_STS"]
        return _create_client(self, service_name, *args, **kwargs)

    botocore.session.Session.create_client = _create_client_with_endpoint

try:
    identity = boto3.client("sts").get_caller_identity()
except botocore.exceptions.NoCredentialsError as error:
    print(f"NoCredentialsError: {error}", file=sys.stderr)
    sys.exit(3)

print(
    json.dumps(
        {
            "Arn": identity["Arn"],
            "Account": identity["Account"],
            "UserId": identity["UserId"],
            "boto3": boto3.__version__,
            "botocore": botocore.__version__,
        }
    )
)
