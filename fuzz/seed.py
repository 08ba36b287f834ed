#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora from the repository's fixtures: fuzz/seeds/<target>/ (not committed).

    python3 fuzz/seed.py            # tests/fuzz.sh runs it before every run

- review:   every fixture pod (tests/fixtures/**, examples/) wrapped in an AdmissionReview (v1 and v1beta1), plus
            examples/admission-review.json as it is;
- mutate:   `F` + a little-endian u16 for each fixture pod the target loads itself (fuzz/src/lib.rs, fixture_pods);
- manifest: every fixture file as it is, each fixture case as `pod NUL serviceAccounts NUL containerCredentials`
            (the offline mutate pipeline), and a few ConfigMap `config` entries.
Needs PyYAML (python3-yaml).
"""
import json
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "seeds")


def files(top, ext):
    out = []
    for base, _, names in os.walk(os.path.join(ROOT, top)):
        out.extend(os.path.join(base, n) for n in names if n.endswith(ext))
    return sorted(out)


def write(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def review(pod, version, namespace="default", operation="CREATE"):
    return json.dumps({
        "apiVersion": version, "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace, "operation": operation,
            "object": pod, "dryRun": False,
        },
    }, separators=(",", ":"))


def main():
    cases = []
    for path in files("tests/fixtures", ".yaml"):
        rel = os.path.relpath(path, ROOT).replace("/", "_")
        with open(path) as f:
            text = f.read()
        write("manifest", rel, text)
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
        for doc in docs:
            if isinstance(doc, dict) and isinstance(doc.get("pod"), dict):
                cases.append((rel, doc))
    pods = 0
    for rel, case in cases:
        pod = case["pod"]
        for i, version in enumerate(["admission.k8s.io/v1", "admission.k8s.io/v1beta1"]):
            write("review", f"{rel}.{i}.json", review(pod, version))
        sas = yaml.safe_dump_all(case.get("serviceAccounts") or [])
        cc = json.dumps({"identities": case.get("containerCredentials") or []})
        write("manifest", f"{rel}.pipeline", yaml.safe_dump(pod) + "\0" + sas + "\0" + cc)
        pods += 1
    with open(os.path.join(ROOT, "examples", "admission-review.json")) as f:
        example = f.read()
    write("review", "example-admission-review.json", example)
    write("review", "example-update.json", review(json.loads(example)["request"]["object"], "admission.k8s.io/v1",
                                                  operation="UPDATE"))
    for name in ["pod.yaml", "serviceaccounts.yaml", "admission-review.json"]:
        with open(os.path.join(ROOT, "examples", name)) as f:
            write("manifest", "example-" + name, f.read())
    config_map = {
        "default/app": {"RoleARN": "arn:aws:iam::111122223333:role/app", "Audience": "sts.amazonaws.com",
                        "UseRegionalSTS": True, "TokenExpiration": 3600},
        "team-*/*": {"roleArn": "reader"}, "*/build": {"rolearn": 7}, "bad": {}, "a/b/c": {"RoleARN": ""},
    }
    write("manifest", "config-map.json", json.dumps(config_map))
    write("manifest", "container-credentials.json",
          json.dumps({"identities": [{"namespace": "default", "serviceAccount": "app"}]}))
    # The mutate target loads the fixture pods itself and picks one by index (modulo their number): the fixture
    # cases' pods and expected pods and the examples' pods, more than there are cases, so go past the case count.
    for i in range(2 * pods + 8):
        write("mutate", f"fixture-{i:03}", b"F" + i.to_bytes(2, "little"))
    print(f"seeds: {', '.join(f'{t} {len(os.listdir(os.path.join(OUT, t)))}' for t in sorted(os.listdir(OUT)))}")


if __name__ == "__main__":
    sys.exit(main())
