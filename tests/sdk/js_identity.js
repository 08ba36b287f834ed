// AWS SDK for JavaScript v3 client of tests/e2e_sdk.rs: STS GetCallerIdentity with the Node.js default credential
// chain (fromNodeProviderChain), configured by nothing but the environment (a pod's container env). Prints one JSON
// line; on failure prints the error to stderr and exits 1.
//
// usage: node js_identity.js NODE_MODULES   (where tests/e2e/sdks.sh installed the SDK)
"use strict";
const path = require("node:path");
const { createRequire } = require("node:module");

const sdkRequire = createRequire(path.join(process.argv[2], "resolve-from-here.js"));
const { STSClient, GetCallerIdentityCommand } = sdkRequire("@aws-sdk/client-sts");
const { fromNodeProviderChain } = sdkRequire("@aws-sdk/credential-providers");

async function main() {
  const sts = new STSClient({ credentials: fromNodeProviderChain() });
  const identity = await sts.send(new GetCallerIdentityCommand({}));
  console.log(JSON.stringify({ Arn: identity.Arn, Account: identity.Account, UserId: identity.UserId }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
