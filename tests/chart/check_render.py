#!/usr/bin/env python3
"""Assertions on one rendering of the irsa-webhook chart.

usage: helm template ... | kubectl label --local -f - -o json KEY- | check_render.py CASE [key=value ...]

stdin holds the rendered objects as a stream of JSON documents (kubectl's offline YAML->JSON conversion).
CASE names a set of checks (see CASES); key=value pairs say what the rendering was asked for:
  release=NAME namespace=NS kube=1.20|default mode=selfManaged|certManager|existingSecret
  secret=NAME caBundle=B64
Prints one line per check, `ok - ...` or `not ok - ...`, for test.sh to count. Standard library only.
"""
import json
import sys

FLAGS = {
    # irsa-webhook serve (from the brief the chart was written against); a flag outside this set is a typo.
    "port", "bind-address", "metrics-port", "kubeconfig", "tls-cert", "tls-key", "tls-min-version", "self-signed",
    "service-name", "namespace", "cert-secret", "webhook-config", "service-accounts",
    "service-account-lookup-grace-period", "watch-config-map", "log-format", "log-level", "shutdown-timeout",
    "shutdown-delay", "request-timeout", "max-requests-in-flight", "max-connections", "idle-timeout",
    "max-connection-age",
    "annotation-prefix", "token-audience", "token-mount-path", "token-expiration", "aws-default-region",
    "sts-regional-endpoint", "watch-container-credentials-config", "container-credentials-audience",
    "container-credentials-token-mount-path", "container-credentials-token-volume-name",
    "container-credentials-token-path", "container-credentials-full-uri", "compose-role-arn", "fs-group-fix",
    "default-fs-group", "inject-role-session-name", "aws-account-id", "aws-partition", "inject",
}
REFERENCE_DEFAULTS = {
    "annotation-prefix": "eks.amazonaws.com",
    "token-audience": "sts.amazonaws.com",
    "token-mount-path": "/var/run/secrets/eks.amazonaws.com/serviceaccount",
    "token-expiration": "86400",
    "container-credentials-audience": "pods.eks.amazonaws.com",
    "container-credentials-token-mount-path": "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount",
    "container-credentials-token-volume-name": "eks-pod-identity-token",
    "container-credentials-token-path": "eks-pod-identity-token",
    "container-credentials-full-uri": "http://169.254.170.23/v1/credentials",
    "service-account-lookup-grace-period": "100ms",
    "fs-group-fix": "auto",
    "inject": "full",
    "default-fs-group": "65534",
    "shutdown-timeout": "20s",
}


def read_objects(text):
    dec, i, out = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = dec.raw_decode(text, i)
        out.extend(obj.get("items", [])) if obj.get("kind") == "List" else out.append(obj)


class Checks:
    def __init__(self, case, objs, params):
        self.case, self.objs, self.p = case, objs, params
        self.failed = 0

    def ok(self, cond, what, detail=""):
        if cond:
            print(f"ok - {self.case}: {what}")
        else:
            self.failed += 1
            print(f"not ok - {self.case}: {what}" + (f" ({detail})" if detail else ""))
        return bool(cond)

    def all(self, kind, api_group=None):
        return [o for o in self.objs if o["kind"] == kind
                and (api_group is None or o["apiVersion"].split("/")[0] == api_group)]

    def one(self, kind, api_group=None):
        found = self.all(kind, api_group)
        self.ok(len(found) == 1, f"exactly one {kind}", f"found {len(found)}")
        return found[0] if found else {}


def args_of(container):
    """The container's flags as {name: value} (value True for bare switches); args[0] is the subcommand."""
    flags = {}
    for a in container.get("args", [])[1:]:
        name, _, value = a[2:].partition("=")
        flags[name] = value if "=" in a else True
    return flags


def rules_of(role):
    return [(tuple(r.get("apiGroups", [])), tuple(r.get("resources", [])), tuple(sorted(r.get("verbs", []))),
             tuple(r.get("resourceNames", []))) for r in role.get("rules", [])]


def check_common(c):
    """Facts that hold for every rendering."""
    p = c.p
    release_ns, mode = p["namespace"], p.get("mode", "selfManaged")
    dep = c.one("Deployment")
    svc = [s for s in c.all("Service") if not s["metadata"]["name"].endswith("-metrics")]
    c.ok(len(svc) == 1, "one webhook Service", f"found {len(svc)}")
    svc = svc[0] if svc else {}
    sa = c.one("ServiceAccount")
    mwc = c.one("MutatingWebhookConfiguration")
    pdb = c.one("PodDisruptionBudget")
    if not (dep and svc and mwc):
        return {}

    spec = dep["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    ann = spec["template"]["metadata"].get("annotations", {})
    (ctr,) = pod["containers"]
    flags = args_of(ctr)
    c.ok(ctr["args"][0] == "serve", "container runs `serve`", ctr["args"][:1])

    # Deployment shape.
    c.ok(spec["replicas"] == 2, "2 replicas by default", spec["replicas"])
    c.ok(pod.get("priorityClassName") == "system-cluster-critical", "priorityClassName system-cluster-critical")
    tsc = pod.get("topologySpreadConstraints", [])
    c.ok(any(t["topologyKey"] == "kubernetes.io/hostname" and t["whenUnsatisfiable"] == "ScheduleAnyway"
             and t["labelSelector"]["matchLabels"].items() <= pod_labels.items() for t in tsc),
         "topology spread across nodes, ScheduleAnyway, selecting its own pods", tsc)
    c.ok(spec["selector"]["matchLabels"].items() <= pod_labels.items(), "Deployment selector matches its pods")
    c.ok(pod["serviceAccountName"] == sa.get("metadata", {}).get("name"), "pod runs as the chart's ServiceAccount")

    # Hardening.
    psc, csc = pod.get("securityContext", {}), ctr.get("securityContext", {})
    c.ok(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532, "pod runAsNonRoot, runAsUser 65532", psc)
    c.ok(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccomp RuntimeDefault")
    c.ok(csc.get("runAsNonRoot") is True and csc.get("runAsUser") == 65532, "container runAsNonRoot, 65532")
    c.ok(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    c.ok(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    c.ok(csc.get("capabilities", {}).get("drop") == ["ALL"] and not csc["capabilities"].get("add"),
         "capabilities drop ALL, add none", csc.get("capabilities"))
    c.ok(csc.get("privileged") in (None, False), "not privileged")
    c.ok(csc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "container seccomp RuntimeDefault")
    res = ctr.get("resources", {})
    c.ok(all(k in res.get(x, {}) for x in ("requests", "limits") for k in ("cpu", "memory")),
         "resources: cpu+memory requests and limits", res)
    c.ok(not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), "no host namespaces")

    # Ports, probes, metrics.
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    c.ok(ports == {"https": 8443, "metrics": 9999}, "container ports https 8443, metrics 9999", ports)
    c.ok(flags.get("port") == "8443" and flags.get("metrics-port") == "9999", "--port=8443 --metrics-port=9999")
    lp, rp = ctr.get("livenessProbe", {}).get("httpGet", {}), ctr.get("readinessProbe", {}).get("httpGet", {})
    c.ok(lp.get("path") == "/healthz" and lp.get("port") in ("metrics", 9999), "liveness GET /healthz on metrics", lp)
    c.ok(rp.get("path") == "/readyz" and rp.get("port") in ("metrics", 9999), "readiness GET /readyz on metrics", rp)
    c.ok(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == "9999"
         and ann.get("prometheus.io/path") == "/metrics", "prometheus.io annotations point at 9999/metrics", ann)

    # Shutdown: the delay lives in the binary (--shutdown-delay, every Kubernetes version); no preStop hook by
    # default; grace period covers sleep + delay + shutdown timeout.
    sleep = ctr.get("lifecycle", {}).get("preStop", {}).get("sleep")
    c.ok(not ctr.get("lifecycle"), "no lifecycle hook by default (--shutdown-delay does it)", ctr.get("lifecycle"))
    c.ok("exec" not in ctr.get("lifecycle", {}).get("preStop", {}), "no exec preStop (distroless has no shell)")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    shutdown = int(str(flags.get("shutdown-timeout", "20s")).rstrip("s"))
    delay = int(str(flags.get("shutdown-delay", "0s")).rstrip("s"))
    c.ok(delay >= 5, "--shutdown-delay passed, long enough for endpoint propagation", flags.get("shutdown-delay"))
    c.ok(grace >= shutdown + delay + (sleep or {}).get("seconds", 0),
         "terminationGracePeriodSeconds covers preStop sleep + --shutdown-delay + --shutdown-timeout",
         (grace, delay, shutdown, sleep))

    # Flags: known names, reference defaults, namespace from the downward API.
    unknown = sorted(set(flags) - FLAGS)
    c.ok(not unknown, "every flag is one `serve` has", unknown)
    if p.get("defaults") == "1":
        wrong = {k: (flags.get(k), v) for k, v in REFERENCE_DEFAULTS.items() if flags.get(k) != v}
        c.ok(not wrong, "mutation flags carry the reference defaults", wrong)
        c.ok(not any(k in flags for k in ("sts-regional-endpoint", "compose-role-arn", "inject-role-session-name",
                                          "watch-config-map", "aws-default-region", "self-signed")),
             "off-by-default switches are off", flags)
    env = {e["name"]: e for e in ctr.get("env", [])}
    c.ok(env.get("IRSA_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
         == "metadata.namespace", "IRSA_NAMESPACE from the downward API")
    c.ok(flags.get("service-name") == svc["metadata"]["name"], "--service-name is the Service's name")

    # Service.
    (sp,) = svc["spec"]["ports"]
    c.ok(sp["name"] == "https" and sp["port"] == 443 and sp["targetPort"] in (8443, "https"),
         "Service https 443 -> 8443", sp)
    c.ok(svc["spec"]["selector"].items() <= pod_labels.items(), "Service selects the webhook pods")

    # PodDisruptionBudget.
    want_pdb = "policy/v1beta1" if p.get("kube") == "1.20" else "policy/v1"
    c.ok(pdb.get("apiVersion") == want_pdb, f"PDB is {want_pdb}", pdb.get("apiVersion"))
    c.ok(pdb.get("spec", {}).get("minAvailable") == 1, "PDB minAvailable 1")
    c.ok(pdb.get("spec", {}).get("selector", {}).get("matchLabels", {}).items() <= pod_labels.items(),
         "PDB selects the webhook pods")

    # MutatingWebhookConfiguration.
    (wh,) = mwc["webhooks"]
    c.ok(wh["name"] == "irsa-webhook.amazonaws.com", "webhook name irsa-webhook.amazonaws.com", wh["name"])
    c.ok(wh["failurePolicy"] == "Ignore", "failurePolicy Ignore", wh["failurePolicy"])
    c.ok(wh["sideEffects"] == "None", "sideEffects None")
    c.ok(wh["admissionReviewVersions"] == ["v1", "v1beta1"], "admissionReviewVersions v1, v1beta1")
    c.ok(wh["timeoutSeconds"] == 5, "timeoutSeconds 5")
    c.ok(wh["reinvocationPolicy"] == "IfNeeded", "reinvocationPolicy IfNeeded")
    (rule,) = wh["rules"]
    c.ok(rule["operations"] == ["CREATE"] and rule["apiGroups"] == [""] and rule["apiVersions"] == ["v1"]
         and rule["resources"] == ["pods"] and rule.get("scope", "*") in ("Namespaced", "*"),
         "rule: CREATE v1 pods only", rule)
    excluded = [e for e in wh.get("namespaceSelector", {}).get("matchExpressions", [])
                if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn"]
    values = excluded[0]["values"] if excluded else []
    c.ok("kube-system" in values and release_ns in values,
         f"namespaceSelector excludes kube-system and the release namespace {release_ns}", values)
    obj_sel = wh.get("objectSelector", {}).get("matchExpressions", [])
    c.ok({"key": "eks.amazonaws.com/skip-pod-identity-webhook", "operator": "DoesNotExist"} in obj_sel,
         "objectSelector skips pods labelled eks.amazonaws.com/skip-pod-identity-webhook", obj_sel)
    cs = wh["clientConfig"].get("service", {})
    c.ok(cs == {"name": svc["metadata"]["name"], "namespace": release_ns, "path": "/mutate", "port": 443},
         "clientConfig: the Service, /mutate, 443", cs)
    c.ok("url" not in wh["clientConfig"], "no url clientConfig")

    # RBAC: the webhook's ClusterRole reads ServiceAccounts, nothing else cluster-wide but its own config.
    (cr,) = c.all("ClusterRole") or [{}]
    crb = c.one("ClusterRoleBinding")
    want = [(("",), ("serviceaccounts",), ("get", "list", "watch"), ())]
    if mode == "selfManaged":
        want.append((("admissionregistration.k8s.io",), ("mutatingwebhookconfigurations",), ("get", "patch", "update"),
                     (mwc["metadata"]["name"],)))
    c.ok(rules_of(cr) == want, "ClusterRole rules are minimal", rules_of(cr))
    c.ok(crb.get("roleRef", {}).get("name") == cr.get("metadata", {}).get("name")
         and crb.get("subjects") == [{"kind": "ServiceAccount", "name": pod["serviceAccountName"],
                                      "namespace": release_ns}], "ClusterRoleBinding binds it to the ServiceAccount")
    wild = [r for role in c.all("Role") + c.all("ClusterRole") for r in role.get("rules", [])
            if "*" in r.get("verbs", []) + r.get("resources", []) + r.get("apiGroups", [])]
    c.ok(not wild, "no wildcard in any RBAC rule", wild)
    for role in c.all("Role"):
        c.ok(role["metadata"].get("namespace") == release_ns, "Role lives in the release namespace")
    for rb in c.all("RoleBinding"):
        c.ok(rb["metadata"].get("namespace") == release_ns and rb["subjects"][0]["name"] == pod["serviceAccountName"],
             "RoleBinding in the release namespace, to the ServiceAccount")

    # Certificate mode.
    cert_manager_objs = [o for o in c.objs if o["apiVersion"].startswith("cert-manager.io/")]
    inject = mwc["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from")
    mounts = {m["name"]: m for m in ctr.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    roles = c.all("Role")
    role_rules = rules_of(roles[0]) if roles else []
    secret_rules = [r for r in role_rules if "secrets" in r[1]]
    if mode == "selfManaged":
        c.ok(not cert_manager_objs, "selfManaged: no cert-manager objects", [o["kind"] for o in cert_manager_objs])
        c.ok(inject is None, "selfManaged: no inject-ca-from annotation")
        c.ok("caBundle" not in wh["clientConfig"], "selfManaged: caBundle left to the webhook (absent)")
        c.ok(flags.get("webhook-config") == mwc["metadata"]["name"], "--webhook-config names the configuration")
        secret = flags.get("cert-secret")
        c.ok(bool(secret), "--cert-secret set", secret)
        c.ok("tls-cert" not in flags and "tls-key" not in flags, "selfManaged: no --tls-cert/--tls-key")
        c.ok(sorted(secret_rules) == sorted([(("",), ("secrets",), ("create",), ()),
                                             (("",), ("secrets",), ("get", "update"), (secret,))]),
             "Role: create secrets; get/update only the certificate Secret", secret_rules)
        c.ok(not any(v.get("secret") for v in vols.values()), "selfManaged: no Secret volume")
    else:
        c.ok("cert-secret" not in flags and "webhook-config" not in flags,
             f"{mode}: no --cert-secret/--webhook-config")
        c.ok(not secret_rules, f"{mode}: no RBAC on Secrets", secret_rules)
        c.ok("mutatingwebhookconfigurations" not in json.dumps(cr), f"{mode}: no RBAC on webhook configurations")
        tls = vols.get("tls", {}).get("secret", {})
        mount = mounts.get("tls", {})
        c.ok(bool(tls) and mount.get("readOnly") is True, f"{mode}: TLS Secret mounted read-only", (tls, mount))
        c.ok(flags.get("tls-cert") == f"{mount.get('mountPath')}/tls.crt"
             and flags.get("tls-key") == f"{mount.get('mountPath')}/tls.key",
             f"{mode}: --tls-cert/--tls-key point into the mount", flags)
        if mode == "certManager":
            kinds = sorted((o["kind"], o["metadata"]["name"]) for o in cert_manager_objs)
            c.ok([k for k, _ in kinds] == ["Certificate", "Certificate", "Issuer", "Issuer"],
                 "certManager: self-signed Issuer, CA Certificate, CA Issuer, serving Certificate", kinds)
            issuers = {o["metadata"]["name"]: o["spec"] for o in c.all("Issuer", "cert-manager.io")}
            certs = {o["metadata"]["name"]: o["spec"] for o in c.all("Certificate", "cert-manager.io")}
            ca = [s for s in certs.values() if s.get("isCA")]
            serving = [(n, s) for n, s in certs.items() if not s.get("isCA")]
            c.ok(len(ca) == 1 and "selfSigned" in issuers.get(ca[0]["issuerRef"]["name"], {}),
                 "certManager: the CA certificate is self-signed", ca)
            if ca and serving:
                name, sv = serving[0]
                ca_issuer = issuers.get(sv["issuerRef"]["name"], {})
                c.ok(ca_issuer.get("ca", {}).get("secretName") == ca[0]["secretName"],
                     "certManager: the serving certificate is issued by the CA Issuer", sv["issuerRef"])
                svc_name = svc["metadata"]["name"]
                want_dns = [svc_name, f"{svc_name}.{release_ns}", f"{svc_name}.{release_ns}.svc",
                            f"{svc_name}.{release_ns}.svc.cluster.local"]
                c.ok(sv.get("dnsNames") == want_dns, "certManager: serving certificate DNS names", sv.get("dnsNames"))
                c.ok("server auth" in sv.get("usages", []), "certManager: usage server auth")
                c.ok(sv["secretName"] == tls.get("secretName"), "certManager: the Deployment mounts its Secret")
                c.ok(inject == f"{release_ns}/{name}", "certManager: inject-ca-from names the serving Certificate",
                     inject)
        else:
            c.ok(not cert_manager_objs, "existingSecret: no cert-manager objects")
            c.ok(inject is None, "existingSecret: no inject-ca-from annotation")
            c.ok(tls.get("secretName") == p.get("secret"), "existingSecret: mounts the given Secret", tls)
            c.ok(wh["clientConfig"].get("caBundle") == p.get("caBundle"), "existingSecret: caBundle from values")
    return {"dep": dep, "ctr": ctr, "flags": flags, "pod": pod, "roles": roles, "role_rules": role_rules,
            "mwc": mwc, "wh": wh}


def case_default(c):
    facts = check_common(c)
    kinds = sorted({o["kind"] for o in c.objs})
    want = ["ClusterRole", "ClusterRoleBinding", "Deployment", "MutatingWebhookConfiguration", "PodDisruptionBudget",
            "Service", "ServiceAccount"]
    if c.p.get("mode", "selfManaged") == "selfManaged":
        want += ["Role", "RoleBinding"]
    if c.p.get("mode") == "certManager":
        want += ["Certificate", "Issuer"]
    c.ok(kinds == sorted(want), "exactly the expected kinds (no ServiceMonitor, ConfigMap by default)", kinds)
    if facts:
        c.ok(not any("configmaps" in r[1] for r in facts["role_rules"]), "no ConfigMap RBAC unless ConfigMap mode")


def case_configmap(c):
    facts = check_common(c)
    if not facts:
        return
    c.ok(facts["flags"].get("watch-config-map") is True, "--watch-config-map passed")
    cm_rules = [r for r in facts["role_rules"] if "configmaps" in r[1]]
    c.ok(cm_rules == [(("",), ("configmaps",), ("get", "list", "watch"), ())], "Role: get/list/watch configmaps",
         cm_rules)
    c.ok(len(facts["roles"]) == 1, "one Role, in the release namespace")


def case_container_credentials(c):
    facts = check_common(c)
    if not facts:
        return
    cms = c.all("ConfigMap")
    c.ok(len(cms) == 1, "a ConfigMap for the container-credentials identities")
    if cms:
        cfg = json.loads(cms[0]["data"]["config.json"])
        c.ok(cfg == {"identities": [{"namespace": "app", "serviceAccount": "web"}]},
             "the ConfigMap holds the identities as JSON", cfg)
        vols = {v["name"]: v for v in facts["pod"].get("volumes", [])}
        mounts = {m["name"]: m for m in facts["ctr"].get("volumeMounts", [])}
        vol = vols.get("container-credentials", {}).get("configMap", {})
        mnt = mounts.get("container-credentials", {})
        c.ok(vol.get("name") == cms[0]["metadata"]["name"], "the ConfigMap is mounted")
        c.ok(facts["flags"].get("watch-container-credentials-config") == f"{mnt.get('mountPath')}/config.json",
             "--watch-container-credentials-config points at the mounted file", facts["flags"])
        ann = facts["dep"]["spec"]["template"]["metadata"].get("annotations", {})
        c.ok("checksum/container-credentials" in ann, "pods roll when the identities change")


def case_service_monitor(c):
    check_common(c)
    (sm,) = c.all("ServiceMonitor") or [{}]
    c.ok(bool(sm), "ServiceMonitor rendered when enabled")
    metrics = [s for s in c.all("Service") if s["metadata"]["name"].endswith("-metrics")]
    c.ok(len(metrics) == 1 and metrics[0]["spec"]["ports"][0]["port"] == 9999, "a metrics Service on 9999")
    if sm and metrics:
        c.ok(sm["spec"]["selector"]["matchLabels"].items() <= metrics[0]["metadata"]["labels"].items(),
             "the ServiceMonitor selects the metrics Service")
        c.ok(sm["spec"]["endpoints"][0]["port"] == "metrics" and sm["spec"]["endpoints"][0]["path"] == "/metrics",
             "it scrapes port metrics, /metrics")


# EKS's managed webhook, which a release in fs-group-only mode sits next to.
MANAGED_CONFIG, MANAGED_WEBHOOK = "pod-identity-webhook", "iam-for-pods.amazonaws.com"


def case_eks(c):
    """config.inject=fs-group-only: the flag, and a registration that leaves the managed webhook's alone."""
    facts = check_common(c)
    if not facts:
        return
    c.ok(facts["flags"].get("inject") == "fs-group-only", "--inject=fs-group-only passed", facts["flags"].get("inject"))
    name = facts["mwc"]["metadata"]["name"]
    c.ok(name != MANAGED_CONFIG, f"the configuration is not named {MANAGED_CONFIG}", name)
    c.ok(facts["wh"]["name"] != MANAGED_WEBHOOK, f"the webhook is not named {MANAGED_WEBHOOK}", facts["wh"]["name"])
    # Either order is safe; IfNeeded also gives the fix a second look after webhooks that add containers.
    c.ok(facts["wh"]["reinvocationPolicy"] == "IfNeeded", "reinvocationPolicy IfNeeded")
    # Otherwise the chart's defaults: a plain install with one value.
    wrong = {k: (facts["flags"].get(k), v) for k, v in REFERENCE_DEFAULTS.items()
             if k != "inject" and facts["flags"].get(k) != v}
    c.ok(not wrong, "every other flag keeps its default", wrong)


CASES = {
    "default": case_default,
    "configmap": case_configmap,
    "container-credentials": case_container_credentials,
    "service-monitor": case_service_monitor,
    "eks": case_eks,
}


def main():
    case = sys.argv[1]
    params = dict(a.split("=", 1) for a in sys.argv[2:])
    label = params.pop("label", case)
    try:
        objs = read_objects(sys.stdin.read())
    except ValueError as e:
        print(f"not ok - {label}: rendering is valid JSON ({e})")
        return 1
    c = Checks(label, objs, params)
    try:
        CASES[case](c)
    except Exception as e:  # a shape the checks did not expect is a failure, not a crash
        c.ok(False, "checks ran to the end", f"{type(e).__name__}: {e}")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
