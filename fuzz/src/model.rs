//! A small pod model for the `mutate` target that can express everything the rules read: containers, init and
//! ephemeral containers with names from a tiny alphabet (so names collide), env that sometimes sets AWS_* names,
//! mounts at or near the token paths, volumes named like the token volumes, security contexts with out-of-range
//! numbers and wrong kinds, the pod annotations (skip-containers, fs-group, token-expiration, typos, other
//! prefixes), labels, node selectors and `spec.os`, nulls, and arbitrary JSON in unknown fields. Every field can
//! also be absent, null or of the wrong kind. Plus an identity and settings as the rules get them.

use arbitrary::{Arbitrary, Result, Unstructured};
use irsa_webhook::identity::{FsGroupRequest, ServiceAccountConfig, MAX_GID};
use irsa_webhook::settings::{clamp_token_expiration, FsGroupFix, InjectMode, MutationSettings};
use serde_json::{json, Map, Value};

use crate::{Json, Word};

/// A field: mostly set, sometimes absent, null, or any other JSON value.
#[derive(Debug)]
pub enum Field<T> {
    Absent,
    Null,
    Wrong(Json),
    Set(T),
}

impl<'a, T: Arbitrary<'a>> Arbitrary<'a> for Field<T> {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=15u8)? {
            0 | 1 => Field::Absent,
            2 => Field::Null,
            3 => Field::Wrong(Json::arbitrary(u)?),
            _ => Field::Set(T::arbitrary(u)?),
        })
    }
}

pub trait ToJson {
    fn to_json(&self) -> Value;
}

impl<T: ToJson> ToJson for Field<T> {
    fn to_json(&self) -> Value {
        match self {
            Field::Absent | Field::Null => Value::Null,
            Field::Wrong(json) => json.0.clone(),
            Field::Set(value) => value.to_json(),
        }
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(ToJson::to_json).collect())
    }
}

impl ToJson for bool {
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
}

impl ToJson for Word {
    fn to_json(&self) -> Value {
        Value::String(self.text())
    }
}

fn put<T: ToJson>(map: &mut Map<String, Value>, key: &str, field: &Field<T>) {
    if !matches!(field, Field::Absent) {
        map.insert(key.to_owned(), field.to_json());
    }
}

fn extra(map: &mut Map<String, Value>, extra: &Option<(Word, Json)>) {
    if let Some((key, value)) = extra {
        map.insert(key.text(), value.0.clone());
    }
}

#[derive(Debug, Arbitrary)]
pub struct PodModel {
    kind: Kind,
    metadata: Field<Metadata>,
    spec: Field<Spec>,
    extra: Option<(Word, Json)>,
}

impl ToJson for PodModel {
    fn to_json(&self) -> Value {
        let mut pod = Map::new();
        pod.insert("apiVersion".into(), json!("v1"));
        match &self.kind {
            Kind::Pod => {
                pod.insert("kind".into(), json!("Pod"));
            }
            Kind::Absent => {}
            Kind::Other(word) => {
                pod.insert("kind".into(), word.to_json());
            }
            Kind::NotAString(json) => {
                pod.insert("kind".into(), json.0.clone());
            }
        }
        put(&mut pod, "metadata", &self.metadata);
        put(&mut pod, "spec", &self.spec);
        extra(&mut pod, &self.extra);
        Value::Object(pod)
    }
}

#[derive(Debug)]
enum Kind {
    Pod,
    Absent,
    Other(Word),
    NotAString(Json),
}

impl<'a> Arbitrary<'a> for Kind {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        // Most pods say they are one.
        Ok(match u.int_in_range(0..=15u8)? {
            0 => Kind::Absent,
            1 => Kind::Other(Word::arbitrary(u)?),
            2 => Kind::NotAString(Json::arbitrary(u)?),
            _ => Kind::Pod,
        })
    }
}

#[derive(Debug, Arbitrary)]
struct Metadata {
    name: Option<Word>,
    generate_name: Option<Word>,
    namespace: Option<Word>,
    annotations: Field<Pairs<AnnotationKey, AnnotationValue>>,
    labels: Field<Pairs<LabelKey, Field<Word>>>,
}

impl ToJson for Metadata {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (key, value) in
            [("name", &self.name), ("generateName", &self.generate_name), ("namespace", &self.namespace)]
        {
            if let Some(value) = value {
                m.insert(key.into(), value.to_json());
            }
        }
        put(&mut m, "annotations", &self.annotations);
        put(&mut m, "labels", &self.labels);
        Value::Object(m)
    }
}

/// Key-value pairs, written as a JSON object.
#[derive(Debug, Arbitrary)]
struct Pairs<K, V>(Vec<(K, V)>);

impl<K: ToKey, V: ToJson> ToJson for Pairs<K, V> {
    fn to_json(&self) -> Value {
        Value::Object(self.0.iter().map(|(k, v)| (k.key(), v.to_json())).collect())
    }
}

pub trait ToKey {
    fn key(&self) -> String;
}

#[derive(Debug, Arbitrary)]
enum AnnotationKey {
    Known(Prefix, PodKey),
    Other(Word),
}

impl ToKey for AnnotationKey {
    fn key(&self) -> String {
        match self {
            AnnotationKey::Known(prefix, key) => format!("{}/{}", prefix.text(), key.text()),
            AnnotationKey::Other(word) => word.text(),
        }
    }
}

#[derive(Debug)]
enum Prefix {
    Default,
    Custom,
    Near,
}

impl<'a> Arbitrary<'a> for Prefix {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=7u8)? {
            0 => Prefix::Custom,
            1 => Prefix::Near,
            _ => Prefix::Default,
        })
    }
}

impl Prefix {
    fn text(&self) -> &'static str {
        match self {
            Prefix::Default => "eks.amazonaws.com",
            Prefix::Custom => CUSTOM_PREFIX,
            Prefix::Near => "eks.amazonaws.co",
        }
    }
}

const CUSTOM_PREFIX: &str = "example.com";

#[derive(Debug, Arbitrary)]
enum PodKey {
    SkipContainers,
    TokenExpiration,
    FsGroup,
    RoleArn,
    SkipTypo,
    FsGroupTypo,
    Other(Word),
}

impl PodKey {
    fn text(&self) -> String {
        match self {
            PodKey::SkipContainers => "skip-containers".into(),
            PodKey::TokenExpiration => "token-expiration".into(),
            PodKey::FsGroup => "fs-group".into(),
            PodKey::RoleArn => "role-arn".into(),
            PodKey::SkipTypo => "Skip_Containers".into(),
            PodKey::FsGroupTypo => "fsgroup".into(),
            PodKey::Other(word) => word.text(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum AnnotationValue {
    SkipList(Vec<(ContainerName, Separator)>),
    Number(i64),
    Gid(u32),
    Off,
    Text(Word),
    NotAString(Json),
}

impl ToJson for AnnotationValue {
    fn to_json(&self) -> Value {
        match self {
            AnnotationValue::SkipList(names) => {
                Value::String(names.iter().map(|(name, sep)| format!("{}{}", name.text(), sep.text())).collect())
            }
            AnnotationValue::Number(n) => Value::String(n.to_string()),
            AnnotationValue::Gid(n) => Value::String(format!(" {n} ")),
            AnnotationValue::Off => Value::String("OFF".into()),
            AnnotationValue::Text(word) => word.to_json(),
            AnnotationValue::NotAString(json) => json.0.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Separator {
    Comma,
    CommaSpace,
    Spaces,
    Double,
}

impl Separator {
    fn text(&self) -> &'static str {
        match self {
            Separator::Comma => ",",
            Separator::CommaSpace => ", ",
            Separator::Spaces => " , ",
            Separator::Double => ",,",
        }
    }
}

#[derive(Debug, Arbitrary)]
enum LabelKey {
    PodIdentity,
    App,
    Other(Word),
}

impl ToKey for LabelKey {
    fn key(&self) -> String {
        match self {
            LabelKey::PodIdentity => irsa_webhook::mutate::POD_IDENTITY_LABEL.into(),
            LabelKey::App => "app".into(),
            LabelKey::Other(word) => word.text(),
        }
    }
}

/// Container names from a tiny alphabet, so that lists and the skip list collide.
#[derive(Debug, Arbitrary)]
enum ContainerName {
    A,
    B,
    C,
    App,
    Empty,
}

impl ContainerName {
    fn text(&self) -> &'static str {
        match self {
            ContainerName::A => "a",
            ContainerName::B => "b",
            ContainerName::C => "c",
            ContainerName::App => "app",
            ContainerName::Empty => "",
        }
    }
}

impl ToJson for ContainerName {
    fn to_json(&self) -> Value {
        json!(self.text())
    }
}

#[derive(Debug, Arbitrary)]
struct Spec {
    service_account_name: Option<Word>,
    containers: Field<Vec<Container>>,
    init_containers: Field<Vec<Container>>,
    ephemeral_containers: Field<Vec<Container>>,
    volumes: Field<Vec<Volume>>,
    security_context: Field<PodSecurityContext>,
    node_selector: Field<Pairs<NodeKey, Field<OsName>>>,
    os: Field<Os>,
    extra: Option<(Word, Json)>,
}

impl ToJson for Spec {
    fn to_json(&self) -> Value {
        let mut s = Map::new();
        if let Some(name) = &self.service_account_name {
            s.insert("serviceAccountName".into(), name.to_json());
        }
        put(&mut s, "containers", &self.containers);
        put(&mut s, "initContainers", &self.init_containers);
        put(&mut s, "ephemeralContainers", &self.ephemeral_containers);
        put(&mut s, "volumes", &self.volumes);
        put(&mut s, "securityContext", &self.security_context);
        put(&mut s, "nodeSelector", &self.node_selector);
        put(&mut s, "os", &self.os);
        extra(&mut s, &self.extra);
        Value::Object(s)
    }
}

#[derive(Debug, Arbitrary)]
enum NodeKey {
    Os,
    BetaOs,
    Other(Word),
}

impl ToKey for NodeKey {
    fn key(&self) -> String {
        match self {
            NodeKey::Os => "kubernetes.io/os".into(),
            NodeKey::BetaOs => "beta.kubernetes.io/os".into(),
            NodeKey::Other(word) => word.text(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum OsName {
    Windows,
    Linux,
    WindowsCapitalized,
}

impl ToJson for OsName {
    fn to_json(&self) -> Value {
        json!(match self {
            OsName::Windows => "windows",
            OsName::Linux => "linux",
            OsName::WindowsCapitalized => "Windows",
        })
    }
}

#[derive(Debug, Arbitrary)]
struct Os {
    name: Field<OsName>,
}

impl ToJson for Os {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        put(&mut m, "name", &self.name);
        Value::Object(m)
    }
}

#[derive(Debug, Arbitrary)]
struct Container {
    name: Field<ContainerName>,
    env: Field<Vec<Env>>,
    volume_mounts: Field<Vec<Mount>>,
    security_context: Field<ContainerSecurityContext>,
    restart_policy_always: bool,
    extra: Option<(Word, Json)>,
}

impl ToJson for Container {
    fn to_json(&self) -> Value {
        let mut c = Map::new();
        put(&mut c, "name", &self.name);
        c.insert("image".into(), json!("busybox"));
        put(&mut c, "env", &self.env);
        put(&mut c, "volumeMounts", &self.volume_mounts);
        put(&mut c, "securityContext", &self.security_context);
        if self.restart_policy_always {
            c.insert("restartPolicy".into(), json!("Always"));
        }
        extra(&mut c, &self.extra);
        Value::Object(c)
    }
}

#[derive(Debug, Arbitrary)]
struct Env {
    name: Field<EnvName>,
    value: Option<Word>,
    value_from: bool,
}

impl ToJson for Env {
    fn to_json(&self) -> Value {
        let mut e = Map::new();
        put(&mut e, "name", &self.name);
        if let Some(value) = &self.value {
            e.insert("value".into(), value.to_json());
        }
        if self.value_from {
            e.insert("valueFrom".into(), json!({"fieldRef": {"fieldPath": "metadata.name"}}));
        }
        Value::Object(e)
    }
}

#[derive(Debug, Arbitrary)]
enum EnvName {
    Aws(u8),
    AwsUnknown,
    Home,
    Other(Word),
}

impl ToJson for EnvName {
    fn to_json(&self) -> Value {
        let all = irsa_webhook::mutate::EnvName::ALL;
        json!(match self {
            EnvName::Aws(i) => all[usize::from(*i) % all.len()].as_str().to_owned(),
            EnvName::AwsUnknown => "AWS_ROLE_ARN_X".into(),
            EnvName::Home => "HOME".into(),
            EnvName::Other(word) => word.text(),
        })
    }
}

#[derive(Debug, Arbitrary)]
struct Mount {
    name: Field<VolumeName>,
    mount_path: Field<MountPath>,
    read_only: Option<bool>,
}

impl ToJson for Mount {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        put(&mut m, "name", &self.name);
        put(&mut m, "mountPath", &self.mount_path);
        if let Some(read_only) = self.read_only {
            m.insert("readOnly".into(), json!(read_only));
        }
        Value::Object(m)
    }
}

#[derive(Debug, Arbitrary)]
enum VolumeName {
    AwsIamToken,
    PodIdentityToken,
    Data,
    Other(Word),
}

impl ToJson for VolumeName {
    fn to_json(&self) -> Value {
        match self {
            VolumeName::AwsIamToken => json!("aws-iam-token"),
            VolumeName::PodIdentityToken => json!("eks-pod-identity-token"),
            VolumeName::Data => json!("data"),
            VolumeName::Other(word) => word.to_json(),
        }
    }
}

pub const TOKEN_PATH: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
pub const CC_PATH: &str = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount";
pub const CUSTOM_PATH: &str = "/custom/token/path";

#[derive(Debug, Arbitrary)]
enum MountPath {
    Token,
    TokenSlash,
    TokenParent,
    TokenChild,
    ContainerCredentials,
    ContainerCredentialsSlash,
    Custom,
    CustomSlashes,
    Root,
    Other(Word),
}

impl ToJson for MountPath {
    fn to_json(&self) -> Value {
        json!(match self {
            MountPath::Token => TOKEN_PATH.to_owned(),
            MountPath::TokenSlash => format!("{TOKEN_PATH}/"),
            MountPath::TokenParent => "/var/run/secrets/eks.amazonaws.com".to_owned(),
            MountPath::TokenChild => format!("{TOKEN_PATH}/token"),
            MountPath::ContainerCredentials => CC_PATH.to_owned(),
            MountPath::ContainerCredentialsSlash => format!("{CC_PATH}/"),
            MountPath::Custom => CUSTOM_PATH.to_owned(),
            MountPath::CustomSlashes => format!("{CUSTOM_PATH}//"),
            MountPath::Root => "/".to_owned(),
            MountPath::Other(word) => word.text(),
        })
    }
}

#[derive(Debug, Arbitrary)]
struct Volume {
    name: Field<VolumeName>,
    source: VolumeSource,
}

#[derive(Debug, Arbitrary)]
enum VolumeSource {
    ProjectedToken,
    ProjectedOther,
    ProjectedSources(Field<Vec<Json>>),
    EmptyDir,
    HostPath,
    Other(Word, Json),
}

impl ToJson for Json {
    fn to_json(&self) -> Value {
        self.0.clone()
    }
}

impl ToJson for Volume {
    fn to_json(&self) -> Value {
        let mut v = Map::new();
        put(&mut v, "name", &self.name);
        let token = json!({"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 3600, "path": "token"}});
        match &self.source {
            VolumeSource::ProjectedToken => {
                v.insert("projected".into(), json!({"sources": [{"configMap": {"name": "x"}}, token]}));
            }
            VolumeSource::ProjectedOther => {
                v.insert("projected".into(), json!({"sources": [{"configMap": {"name": "x"}}]}));
            }
            VolumeSource::ProjectedSources(sources) => {
                let mut p = Map::new();
                put(&mut p, "sources", sources);
                v.insert("projected".into(), Value::Object(p));
            }
            VolumeSource::EmptyDir => {
                v.insert("emptyDir".into(), json!({}));
            }
            VolumeSource::HostPath => {
                v.insert("hostPath".into(), json!({"path": "/token"}));
            }
            VolumeSource::Other(key, value) => {
                v.insert(key.text(), value.0.clone());
            }
        }
        Value::Object(v)
    }
}

/// Numbers where the rules read integers: in range, at and past the int32 edge, negative, huge, fractional, text.
#[derive(Debug, Arbitrary)]
enum Number {
    Small(u16),
    Any(i64),
    Huge(u64),
    Fraction(u8),
    Edge(u8),
    Text(u16),
}

impl ToJson for Number {
    fn to_json(&self) -> Value {
        match self {
            Number::Small(n) => json!(n),
            Number::Any(n) => json!(n),
            Number::Huge(n) => json!(n),
            Number::Fraction(n) => json!(f64::from(*n) + 0.5),
            Number::Edge(i) => json!([0i64, -1, MAX_GID, MAX_GID + 1, 65534, i64::MIN][usize::from(*i) % 6]),
            Number::Text(n) => json!(n.to_string()),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct PodSecurityContext {
    fs_group: Field<Number>,
    fs_group_change_policy: Field<Word>,
    run_as_user: Field<Number>,
    run_as_group: Field<Number>,
    run_as_non_root: Field<bool>,
}

impl ToJson for PodSecurityContext {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        put(&mut m, "fsGroup", &self.fs_group);
        put(&mut m, "fsGroupChangePolicy", &self.fs_group_change_policy);
        put(&mut m, "runAsUser", &self.run_as_user);
        put(&mut m, "runAsGroup", &self.run_as_group);
        put(&mut m, "runAsNonRoot", &self.run_as_non_root);
        Value::Object(m)
    }
}

#[derive(Debug, Arbitrary)]
struct ContainerSecurityContext {
    run_as_user: Field<Number>,
    run_as_non_root: Field<bool>,
}

impl ToJson for ContainerSecurityContext {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        put(&mut m, "runAsUser", &self.run_as_user);
        put(&mut m, "runAsNonRoot", &self.run_as_non_root);
        Value::Object(m)
    }
}

/// An arbitrary JSON value put anywhere in the pod: replacing a node, as a new key of an object, or appended to an
/// array (the node is picked among all nodes of the pod, by index).
#[derive(Debug, Arbitrary)]
pub struct Graft {
    at: u16,
    how: GraftHow,
    value: Json,
}

#[derive(Debug, Arbitrary)]
enum GraftHow {
    Replace,
    Insert(Word),
    Push,
}

impl Graft {
    pub fn apply(&self, pod: &mut Value) {
        let nodes = crate::pointers(pod);
        if nodes.is_empty() {
            return;
        }
        let at = &nodes[usize::from(self.at) % nodes.len()];
        let Some(node) = pod.pointer_mut(at) else {
            return;
        };
        match (&self.how, node) {
            (GraftHow::Insert(key), Value::Object(map)) => {
                map.insert(key.text(), self.value.0.clone());
            }
            (GraftHow::Push, Value::Array(items)) => items.push(self.value.0.clone()),
            (_, node) => *node = self.value.0.clone(),
        }
    }
}

/// What a ServiceAccount (or a ConfigMap entry) can say, and whether container credentials apply.
#[derive(Debug, Arbitrary)]
pub struct IdentityModel {
    pub container_credentials: bool,
    role_arn: RoleArn,
    audience: Option<Word>,
    regional_sts: Option<bool>,
    token_expiration: Option<i64>,
    fs_group: Option<Option<u32>>,
}

#[derive(Debug, Arbitrary)]
enum RoleArn {
    Valid,
    China,
    NotAnArn,
    Escapes,
    Other(Word),
}

impl IdentityModel {
    /// The config `identity::resolve` reads; container credentials need no role, web identity always has one.
    pub fn config(&self) -> ServiceAccountConfig {
        let role_arn = match &self.role_arn {
            RoleArn::Valid => "arn:aws:iam::111122223333:role/app".to_owned(),
            RoleArn::China => "arn:aws-cn:iam::111122223333:role/path/app".to_owned(),
            RoleArn::NotAnArn => "not-an-arn".to_owned(),
            RoleArn::Escapes => "arn:aws:iam::111122223333:role/a\"b\\c\u{1}\u{2028}é".to_owned(),
            RoleArn::Other(word) => word.text(),
        };
        ServiceAccountConfig {
            role_arn: Some(role_arn),
            audience: self.audience.as_ref().map(Word::text),
            regional_sts: self.regional_sts,
            token_expiration: self.token_expiration,
            // As `FsGroupRequest::parse` gives it: a GID in range, or off.
            fs_group: self.fs_group.map(|gid| match gid {
                Some(gid) => FsGroupRequest::Gid(i64::from(gid) % (MAX_GID + 1)),
                None => FsGroupRequest::Off,
            }),
            warnings: Vec::new(),
        }
    }
}

/// Settings as `cli.rs` produces them (validated: mount paths absolute, fsGroup in range, expiration clamped).
#[derive(Debug, Arbitrary)]
pub struct SettingsModel {
    custom_prefix: bool,
    fs_group_fix: u8,
    region: Option<Word>,
    sts_regional_endpoint: bool,
    inject_role_session_name: bool,
    mount_path: u8,
    default_fs_group: u32,
    token_expiration: i64,
    fs_group_only: bool,
    audience: Option<Word>,
}

impl SettingsModel {
    pub fn settings(&self) -> MutationSettings {
        let defaults = MutationSettings::default();
        MutationSettings {
            annotation_prefix: if self.custom_prefix { CUSTOM_PREFIX.into() } else { defaults.annotation_prefix },
            fs_group_fix: [FsGroupFix::Auto, FsGroupFix::Always, FsGroupFix::Never][usize::from(self.fs_group_fix % 3)],
            aws_default_region: self.region.as_ref().map(Word::text),
            sts_regional_endpoint: self.sts_regional_endpoint,
            inject_role_session_name: self.inject_role_session_name,
            token_mount_path: [TOKEN_PATH, CUSTOM_PATH, "/custom/token/path/", CC_PATH]
                [usize::from(self.mount_path % 4)]
            .to_owned(),
            default_fs_group: i64::from(self.default_fs_group) % (MAX_GID + 1),
            token_expiration: clamp_token_expiration(self.token_expiration),
            inject: if self.fs_group_only { InjectMode::FsGroupOnly } else { InjectMode::Full },
            token_audience: self.audience.as_ref().map_or(defaults.token_audience, Word::text),
            ..MutationSettings::default()
        }
    }
}
