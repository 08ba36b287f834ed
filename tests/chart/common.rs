//! One rendering of a case, and the facts that hold for every rendering.

use super::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    SelfManaged,
    CertManager,
    ExistingSecret,
}

impl Mode {
    pub fn args(self) -> Vec<String> {
        match self {
            Mode::SelfManaged => vec![],
            Mode::CertManager => vec!["--set".into(), "certificates.mode=certManager".into()],
            Mode::ExistingSecret => vec![
                "--set".into(),
                "certificates.mode=existingSecret".into(),
                "--set".into(),
                format!("certificates.existingSecret.name={EXISTING_SECRET}"),
                "--set".into(),
                format!("certificates.existingSecret.caBundle={CA_BUNDLE}"),
            ],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::SelfManaged => "selfManaged",
            Mode::CertManager => "certManager",
            Mode::ExistingSecret => "existingSecret",
        }
    }
}

pub struct Case {
    pub label: String,
    pub release: &'static str,
    pub namespace: &'static str,
    pub kube_120: bool,
    pub mode: Mode,
    /// The chart's default values apart from the mode: the flags must be the binary's defaults.
    pub defaults: bool,
    pub extra: Vec<&'static str>,
}

impl Case {
    pub fn new(label: impl Into<String>, namespace: &'static str, mode: Mode) -> Self {
        Case {
            label: label.into(),
            release: "irsa-webhook",
            namespace,
            kube_120: false,
            mode,
            defaults: false,
            extra: vec![],
        }
    }

    /// Renders the case and runs the checks common to every rendering; None (with the failure recorded) when it
    /// does not render.
    pub fn render(&self, helm: &Path, c: &mut Checks) -> Option<Rendering> {
        let mut args: Vec<String> = self.mode.args();
        if self.kube_120 {
            args.extend(["--kube-version".into(), "1.20.2".into()]);
        }
        args.extend(self.extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match template(helm, self.release, self.namespace, &args) {
            Ok(r) => Some(r),
            Err(e) => {
                c.ok(false, "helm template", e);
                None
            }
        }
    }
}

/// What the case-specific checks need from the common ones.
pub struct Facts<'a> {
    pub dep: &'a Value,
    pub ctr: &'a Value,
    pub pod: &'a Value,
    pub flags: BTreeMap<String, Option<String>>,
    pub roles: Vec<&'a Value>,
    pub role_rules: Vec<Rule>,
    pub mwc: &'a Value,
    pub wh: &'a Value,
}

/// Facts that hold for every rendering.
pub fn check_common<'a>(c: &mut Checks, case: &Case, objs: &'a [Value]) -> Option<Facts<'a>> {
    let (release_ns, mode) = (case.namespace, case.mode);
    let dep = one(c, objs, "Deployment");
    let svcs: Vec<&Value> = all(objs, "Service").into_iter().filter(|s| !name(s).ends_with("-metrics")).collect();
    c.ok(svcs.len() == 1, "one webhook Service", format!("found {}", svcs.len()));
    let svc = svcs.first().copied().unwrap_or(&NULL);
    let sa = one(c, objs, "ServiceAccount");
    let mwc = one(c, objs, "MutatingWebhookConfiguration");
    let pdb = one(c, objs, "PodDisruptionBudget");
    if dep.is_null() || svc.is_null() || mwc.is_null() {
        return None;
    }

    let spec = &dep["spec"];
    let pod = &spec["template"]["spec"];
    let pod_labels = &spec["template"]["metadata"]["labels"];
    let ann = &spec["template"]["metadata"]["annotations"];
    let containers = pod["containers"].as_array().map(Vec::as_slice).unwrap_or_default();
    if !c.ok(containers.len() == 1, "one container", containers.len()) {
        return None;
    }
    let ctr = &containers[0];
    let flags = flags_of(ctr);
    c.ok(ctr["args"][0] == "serve", "container runs `serve`", &ctr["args"][0]);

    // Deployment shape.
    c.ok(spec["replicas"] == 2, "2 replicas by default", &spec["replicas"]);
    c.ok(
        pod["priorityClassName"] == "system-cluster-critical",
        "priorityClassName system-cluster-critical",
        &pod["priorityClassName"],
    );
    let tsc = &pod["topologySpreadConstraints"];
    let spread = tsc.as_array().is_some_and(|t| {
        t.iter().any(|t| {
            t["topologyKey"] == "kubernetes.io/hostname"
                && t["whenUnsatisfiable"] == "ScheduleAnyway"
                && subset(&t["labelSelector"]["matchLabels"], pod_labels)
        })
    });
    c.ok(spread, "topology spread across nodes, ScheduleAnyway, selecting its own pods", tsc);
    c.ok(
        subset(&spec["selector"]["matchLabels"], pod_labels),
        "Deployment selector matches its pods",
        &spec["selector"],
    );
    c.ok(
        pod["serviceAccountName"] == sa["metadata"]["name"],
        "pod runs as the chart's ServiceAccount",
        &pod["serviceAccountName"],
    );

    // Hardening.
    let (psc, csc) = (&pod["securityContext"], &ctr["securityContext"]);
    c.ok(psc["runAsNonRoot"] == true && psc["runAsUser"] == 65532, "pod runAsNonRoot, runAsUser 65532", psc);
    c.ok(psc["seccompProfile"]["type"] == "RuntimeDefault", "pod seccomp RuntimeDefault", psc);
    c.ok(csc["runAsNonRoot"] == true && csc["runAsUser"] == 65532, "container runAsNonRoot, 65532", csc);
    c.ok(csc["readOnlyRootFilesystem"] == true, "readOnlyRootFilesystem", csc);
    c.ok(csc["allowPrivilegeEscalation"] == false, "allowPrivilegeEscalation false", csc);
    let caps = &csc["capabilities"];
    c.ok(caps["drop"] == json!(["ALL"]) && strings(&caps["add"]).is_empty(), "capabilities drop ALL, add none", caps);
    c.ok(csc["privileged"].is_null() || csc["privileged"] == false, "not privileged", &csc["privileged"]);
    c.ok(csc["seccompProfile"]["type"] == "RuntimeDefault", "container seccomp RuntimeDefault", csc);
    let res = &ctr["resources"];
    let sized = ["requests", "limits"].iter().all(|x| ["cpu", "memory"].iter().all(|k| !res[x][k].is_null()));
    c.ok(sized, "resources: cpu+memory requests and limits", res);
    let host = ["hostNetwork", "hostPID", "hostIPC"].iter().any(|k| pod[k] == true);
    c.ok(!host, "no host namespaces", ());

    // Ports, probes, metrics.
    let ports: BTreeMap<String, Value> = ctr["ports"]
        .as_array()
        .map(|p| {
            p.iter().map(|p| (p["name"].as_str().unwrap_or_default().to_owned(), p["containerPort"].clone())).collect()
        })
        .unwrap_or_default();
    let want_ports: BTreeMap<String, Value> =
        [("https".to_owned(), json!(8443)), ("metrics".to_owned(), json!(9999))].into();
    c.ok(ports == want_ports, "container ports https 8443, metrics 9999", &ports);
    c.ok(
        flags.get("port") == Some(&Some("8443".into())) && flags.get("metrics-port") == Some(&Some("9999".into())),
        "--port=8443 --metrics-port=9999",
        (flags.get("port"), flags.get("metrics-port")),
    );
    let on_metrics = |p: &Value| p == "metrics" || p == 9999;
    let (lp, rp) = (&ctr["livenessProbe"]["httpGet"], &ctr["readinessProbe"]["httpGet"]);
    c.ok(lp["path"] == "/healthz" && on_metrics(&lp["port"]), "liveness GET /healthz on metrics", lp);
    c.ok(rp["path"] == "/readyz" && on_metrics(&rp["port"]), "readiness GET /readyz on metrics", rp);
    c.ok(
        ann["prometheus.io/scrape"] == "true"
            && ann["prometheus.io/port"] == "9999"
            && ann["prometheus.io/path"] == "/metrics",
        "prometheus.io annotations point at 9999/metrics",
        ann,
    );

    // Shutdown: the delay lives in the binary (--shutdown-delay, every Kubernetes version); no preStop hook by
    // default; the grace period covers sleep + delay + shutdown timeout.
    let lifecycle = &ctr["lifecycle"];
    c.ok(
        lifecycle.as_object().is_none_or(|l| l.is_empty()),
        "no lifecycle hook by default (--shutdown-delay does it)",
        lifecycle,
    );
    c.ok(lifecycle["preStop"]["exec"].is_null(), "no exec preStop (distroless has no shell)", lifecycle);
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    let flag = |name: &str| flags.get(name).cloned().flatten();
    let shutdown = seconds(flag("shutdown-timeout").as_deref().or(Some("20s")));
    let delay = seconds(flag("shutdown-delay").as_deref().or(Some("0s")));
    let sleep = lifecycle["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0);
    c.ok(
        delay.is_some_and(|d| d >= 5),
        "--shutdown-delay passed, long enough for endpoint propagation",
        flag("shutdown-delay"),
    );
    c.ok(
        matches!((shutdown, delay), (Some(s), Some(d)) if grace >= s + d + sleep),
        "terminationGracePeriodSeconds covers preStop sleep + --shutdown-delay + --shutdown-timeout",
        (grace, delay, shutdown, sleep),
    );

    // Flags: every one is what `serve` accepts; with default values, the binary's defaults.
    check_parses(c, &strings(&ctr["args"]));
    if case.defaults {
        check_defaults(c, &flags, &[]);
    }
    let env = ctr["env"].as_array().cloned().unwrap_or_default();
    let ns_env = env.iter().find(|e| e["name"] == "IRSA_NAMESPACE").unwrap_or(&NULL);
    c.ok(
        ns_env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace",
        "IRSA_NAMESPACE from the downward API",
        ns_env,
    );
    c.ok(
        flag("service-name").as_deref() == Some(name(svc)),
        "--service-name is the Service's name",
        flag("service-name"),
    );

    // Service.
    let sps = svc["spec"]["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    let sp = sps.first().unwrap_or(&NULL);
    c.ok(
        sps.len() == 1
            && sp["name"] == "https"
            && sp["port"] == 443
            && (sp["targetPort"] == 8443 || sp["targetPort"] == "https"),
        "Service https 443 -> 8443",
        sps,
    );
    c.ok(subset(&svc["spec"]["selector"], pod_labels), "Service selects the webhook pods", &svc["spec"]["selector"]);

    // PodDisruptionBudget.
    let want_pdb = if case.kube_120 { "policy/v1beta1" } else { "policy/v1" };
    c.ok(pdb["apiVersion"] == want_pdb, format!("PDB is {want_pdb}"), &pdb["apiVersion"]);
    c.ok(pdb["spec"]["minAvailable"] == 1, "PDB minAvailable 1", &pdb["spec"]);
    c.ok(subset(&pdb["spec"]["selector"]["matchLabels"], pod_labels), "PDB selects the webhook pods", &pdb["spec"]);

    // MutatingWebhookConfiguration.
    let whs = mwc["webhooks"].as_array().map(Vec::as_slice).unwrap_or_default();
    if !c.ok(whs.len() == 1, "one webhook in the configuration", whs.len()) {
        return None;
    }
    let wh = &whs[0];
    c.ok(wh["name"] == "irsa-webhook.amazonaws.com", "webhook name irsa-webhook.amazonaws.com", &wh["name"]);
    c.ok(wh["failurePolicy"] == "Ignore", "failurePolicy Ignore", &wh["failurePolicy"]);
    c.ok(wh["sideEffects"] == "None", "sideEffects None", &wh["sideEffects"]);
    c.ok(
        wh["admissionReviewVersions"] == json!(["v1", "v1beta1"]),
        "admissionReviewVersions v1, v1beta1",
        &wh["admissionReviewVersions"],
    );
    c.ok(wh["timeoutSeconds"] == 5, "timeoutSeconds 5", &wh["timeoutSeconds"]);
    c.ok(wh["reinvocationPolicy"] == "IfNeeded", "reinvocationPolicy IfNeeded", &wh["reinvocationPolicy"]);
    let rules = wh["rules"].as_array().map(Vec::as_slice).unwrap_or_default();
    let r = rules.first().unwrap_or(&NULL);
    c.ok(
        rules.len() == 1
            && r["operations"] == json!(["CREATE"])
            && r["apiGroups"] == json!([""])
            && r["apiVersions"] == json!(["v1"])
            && r["resources"] == json!(["pods"])
            && (r["scope"].is_null() || r["scope"] == "Namespaced" || r["scope"] == "*"),
        "rule: CREATE v1 pods only",
        rules,
    );
    let excluded = wh["namespaceSelector"]["matchExpressions"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["key"] == "kubernetes.io/metadata.name" && e["operator"] == "NotIn"))
        .map(|e| strings(&e["values"]))
        .unwrap_or_default();
    c.ok(
        excluded.iter().any(|v| v == "kube-system") && excluded.iter().any(|v| v == release_ns),
        format!("namespaceSelector excludes kube-system and the release namespace {release_ns}"),
        &excluded,
    );
    let obj_sel = &wh["objectSelector"]["matchExpressions"];
    let skip = json!({"key": "eks.amazonaws.com/skip-pod-identity-webhook", "operator": "DoesNotExist"});
    c.ok(
        obj_sel.as_array().is_some_and(|e| e.contains(&skip)),
        "objectSelector skips pods labelled eks.amazonaws.com/skip-pod-identity-webhook",
        obj_sel,
    );
    let cs = &wh["clientConfig"]["service"];
    c.ok(
        *cs == json!({"name": name(svc), "namespace": release_ns, "path": "/mutate", "port": 443}),
        "clientConfig: the Service, /mutate, 443",
        cs,
    );
    c.ok(wh["clientConfig"]["url"].is_null(), "no url clientConfig", &wh["clientConfig"]);

    // RBAC: the webhook's ClusterRole reads ServiceAccounts, nothing else cluster-wide but its own config.
    let crs = all(objs, "ClusterRole");
    let cr = crs.first().copied().unwrap_or(&NULL);
    c.ok(crs.len() == 1, "one ClusterRole", crs.len());
    let crb = one(c, objs, "ClusterRoleBinding");
    let mut want = vec![rule(&[""], &["serviceaccounts"], &["get", "list", "watch"], &[])];
    if mode == Mode::SelfManaged {
        want.push(rule(
            &["admissionregistration.k8s.io"],
            &["mutatingwebhookconfigurations"],
            &["get", "patch", "update"],
            &[name(mwc)],
        ));
    }
    c.ok(rules_of(cr) == want, "ClusterRole rules are minimal", rules_of(cr));
    let subject = json!([{"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": release_ns}]);
    c.ok(
        crb["roleRef"]["name"] == cr["metadata"]["name"] && crb["subjects"] == subject,
        "ClusterRoleBinding binds it to the ServiceAccount",
        crb,
    );
    let roles = all(objs, "Role");
    let wild: Vec<&Value> = roles
        .iter()
        .chain(crs.iter())
        .flat_map(|role| role["rules"].as_array().map(Vec::as_slice).unwrap_or_default())
        .filter(|r| ["verbs", "resources", "apiGroups"].iter().any(|k| strings(&r[k]).iter().any(|s| s == "*")))
        .collect();
    c.ok(wild.is_empty(), "no wildcard in any RBAC rule", wild);
    for role in &roles {
        c.ok(role["metadata"]["namespace"] == release_ns, "Role lives in the release namespace", &role["metadata"]);
    }
    for rb in all(objs, "RoleBinding") {
        c.ok(
            rb["metadata"]["namespace"] == release_ns && rb["subjects"][0]["name"] == pod["serviceAccountName"],
            "RoleBinding in the release namespace, to the ServiceAccount",
            rb,
        );
    }

    // Certificate mode.
    let cm_objs: Vec<&Value> =
        objs.iter().filter(|o| o["apiVersion"].as_str().is_some_and(|v| v.starts_with("cert-manager.io/"))).collect();
    let inject = mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].as_str();
    let by_name = |list: &'a Value| -> BTreeMap<&'a str, &'a Value> {
        list.as_array()
            .map(|l| l.iter().map(|v| (v["name"].as_str().unwrap_or_default(), v)).collect())
            .unwrap_or_default()
    };
    let mounts = by_name(&ctr["volumeMounts"]);
    let vols = by_name(&pod["volumes"]);
    let role_rules = roles.first().map(|r| rules_of(r)).unwrap_or_default();
    let secret_rules: Vec<Rule> = role_rules.iter().filter(|r| r.1.iter().any(|s| s == "secrets")).cloned().collect();
    let m = mode.name();
    if mode == Mode::SelfManaged {
        c.ok(cm_objs.is_empty(), "selfManaged: no cert-manager objects", cm_objs.len());
        c.ok(inject.is_none(), "selfManaged: no inject-ca-from annotation", inject);
        c.ok(
            wh["clientConfig"]["caBundle"].is_null(),
            "selfManaged: caBundle left to the webhook (absent)",
            &wh["clientConfig"],
        );
        c.ok(
            flag("webhook-config").as_deref() == Some(name(mwc)),
            "--webhook-config names the configuration",
            flag("webhook-config"),
        );
        let secret = flag("cert-secret").unwrap_or_default();
        c.ok(!secret.is_empty(), "--cert-secret set", &secret);
        c.ok(
            !flags.contains_key("tls-cert") && !flags.contains_key("tls-key"),
            "selfManaged: no --tls-cert/--tls-key",
            (),
        );
        let mut got = secret_rules.clone();
        got.sort();
        let mut want = vec![
            rule(&[""], &["secrets"], &["create"], &[]),
            rule(&[""], &["secrets"], &["get", "update"], &[&secret]),
        ];
        want.sort();
        c.ok(got == want, "Role: create secrets; get/update only the certificate Secret", &got);
        c.ok(!vols.values().any(|v| !v["secret"].is_null()), "selfManaged: no Secret volume", &pod["volumes"]);
    } else {
        c.ok(
            !flags.contains_key("cert-secret") && !flags.contains_key("webhook-config"),
            format!("{m}: no --cert-secret/--webhook-config"),
            (),
        );
        c.ok(secret_rules.is_empty(), format!("{m}: no RBAC on Secrets"), &secret_rules);
        c.ok(
            !cr.to_string().contains("mutatingwebhookconfigurations"),
            format!("{m}: no RBAC on webhook configurations"),
            cr,
        );
        let tls = vols.get("tls").map(|v| &v["secret"]).unwrap_or(&NULL);
        let mount = mounts.get("tls").copied().unwrap_or(&NULL);
        c.ok(tls.is_object() && mount["readOnly"] == true, format!("{m}: TLS Secret mounted read-only"), (tls, mount));
        let dir = mount["mountPath"].as_str().unwrap_or_default();
        c.ok(
            flag("tls-cert") == Some(format!("{dir}/tls.crt")) && flag("tls-key") == Some(format!("{dir}/tls.key")),
            format!("{m}: --tls-cert/--tls-key point into the mount"),
            (flag("tls-cert"), flag("tls-key")),
        );
        if mode == Mode::CertManager {
            let mut kinds: Vec<(&str, &str)> =
                cm_objs.iter().map(|o| (o["kind"].as_str().unwrap_or_default(), name(o))).collect();
            kinds.sort();
            c.ok(
                kinds.iter().map(|k| k.0).collect::<Vec<_>>() == ["Certificate", "Certificate", "Issuer", "Issuer"],
                "certManager: self-signed Issuer, CA Certificate, CA Issuer, serving Certificate",
                &kinds,
            );
            let issuers: BTreeMap<&str, &Value> =
                all_in_group(objs, "Issuer", "cert-manager.io").into_iter().map(|o| (name(o), &o["spec"])).collect();
            let certs: Vec<(&str, &Value)> = all_in_group(objs, "Certificate", "cert-manager.io")
                .into_iter()
                .map(|o| (name(o), &o["spec"]))
                .collect();
            let ca: Vec<&Value> = certs.iter().filter(|(_, s)| s["isCA"] == true).map(|(_, s)| *s).collect();
            let serving: Vec<(&str, &Value)> = certs.iter().filter(|(_, s)| s["isCA"] != true).copied().collect();
            let issuer_of = |spec: &Value| {
                issuers.get(spec["issuerRef"]["name"].as_str().unwrap_or_default()).copied().unwrap_or(&NULL)
            };
            c.ok(
                ca.len() == 1 && !issuer_of(ca[0])["selfSigned"].is_null(),
                "certManager: the CA certificate is self-signed",
                &ca,
            );
            if let (Some(ca), Some((serving_name, sv))) = (ca.first(), serving.first()) {
                c.ok(
                    issuer_of(sv)["ca"]["secretName"] == ca["secretName"],
                    "certManager: the serving certificate is issued by the CA Issuer",
                    &sv["issuerRef"],
                );
                let s = name(svc);
                let want_dns = json!([
                    s,
                    format!("{s}.{release_ns}"),
                    format!("{s}.{release_ns}.svc"),
                    format!("{s}.{release_ns}.svc.cluster.local")
                ]);
                c.ok(sv["dnsNames"] == want_dns, "certManager: serving certificate DNS names", &sv["dnsNames"]);
                c.ok(
                    strings(&sv["usages"]).iter().any(|u| u == "server auth"),
                    "certManager: usage server auth",
                    &sv["usages"],
                );
                c.ok(
                    sv["secretName"] == tls["secretName"],
                    "certManager: the Deployment mounts its Secret",
                    &sv["secretName"],
                );
                let want_inject = format!("{release_ns}/{serving_name}");
                c.ok(
                    inject == Some(want_inject.as_str()),
                    "certManager: inject-ca-from names the serving Certificate",
                    inject,
                );
            }
        } else {
            c.ok(cm_objs.is_empty(), "existingSecret: no cert-manager objects", cm_objs.len());
            c.ok(inject.is_none(), "existingSecret: no inject-ca-from annotation", inject);
            c.ok(tls["secretName"] == EXISTING_SECRET, "existingSecret: mounts the given Secret", tls);
            c.ok(
                wh["clientConfig"]["caBundle"] == CA_BUNDLE,
                "existingSecret: caBundle from values",
                &wh["clientConfig"]["caBundle"],
            );
        }
    }
    Some(Facts { dep, ctr, pod, flags, roles, role_rules, mwc, wh })
}
