//! The JSON Patch (RFC 6902), written straight from the changes into a byte buffer: no intermediate values.
//!
//! Only `add` is ever emitted: the webhook never replaces or removes what the pod already has. Pointers are made of
//! fixed field names, indices and the pod-identity label (escaped here), so they need no JSON escaping; every
//! value that comes from settings or annotations is escaped as serde_json escapes strings (`json::write_str`).

use super::{Change, ContainerRef, EnvValue, EnvVar, LabelAt, TokenVolume, POD_IDENTITY_LABEL};
use crate::json::write_str as string;

pub(super) fn write(changes: &[Change<'_>], out: &mut Vec<u8>) {
    let mut w = Writer { out, first: true };
    w.out.push(b'[');
    for change in changes {
        match change {
            Change::PodIdentityLabel { at } => w.label(*at),
            Change::TokenVolume { volume, create_list } => {
                w.op(|p| p.push_str("/spec/volumes"), *create_list, |out| volume_json(out, volume))
            }
            Change::Env { container, vars, create_list } => {
                if *create_list {
                    w.begin(|p| container_field(p, container, "env"));
                    w.out.push(b'[');
                    for (i, var) in vars.iter().enumerate() {
                        if i > 0 {
                            w.out.push(b',');
                        }
                        env_json(w.out, var);
                    }
                    w.out.extend_from_slice(b"]}");
                } else {
                    for var in vars {
                        w.begin(|p| {
                            container_field(p, container, "env");
                            p.push_str("/-");
                        });
                        env_json(w.out, var);
                        w.out.push(b'}');
                    }
                }
            }
            Change::Mount { container, volume, mount_path, create_list } => w.op(
                |p| container_field(p, container, "volumeMounts"),
                *create_list,
                |out| {
                    out.extend_from_slice(b"{\"name\":");
                    string(out, volume);
                    out.extend_from_slice(b",\"readOnly\":true,\"mountPath\":");
                    string(out, mount_path);
                    out.push(b'}');
                },
            ),
            Change::FsGroup { gid, change_policy, create_context } => {
                if *create_context {
                    w.begin(|p| p.push_str("/spec/securityContext"));
                    w.out.extend_from_slice(b"{\"fsGroup\":");
                    number(w.out, *gid);
                    w.out.extend_from_slice(b",\"fsGroupChangePolicy\":\"OnRootMismatch\"}}");
                } else {
                    w.begin(|p| p.push_str("/spec/securityContext/fsGroup"));
                    number(w.out, *gid);
                    w.out.push(b'}');
                    if *change_policy {
                        w.begin(|p| p.push_str("/spec/securityContext/fsGroupChangePolicy"));
                        w.out.extend_from_slice(b"\"OnRootMismatch\"}");
                    }
                }
            }
        }
    }
    w.out.push(b']');
}

struct Writer<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

/// A pointer under construction; written in place into the output.
struct Pointer<'o>(&'o mut Vec<u8>);

impl Pointer<'_> {
    fn push_str(&mut self, text: &str) {
        self.0.extend_from_slice(text.as_bytes());
    }

    fn push_index(&mut self, index: usize) {
        number(self.0, index);
    }

    /// One pointer token with `~` and `/` escaped (RFC 6901).
    fn push_key(&mut self, key: &str) {
        self.0.push(b'/');
        for byte in key.bytes() {
            match byte {
                b'~' => self.0.extend_from_slice(b"~0"),
                b'/' => self.0.extend_from_slice(b"~1"),
                b => self.0.push(b),
            }
        }
    }
}

impl Writer<'_> {
    /// Starts `{"op":"add","path":"<pointer>","value":`; the caller writes the value and the closing brace.
    fn begin(&mut self, pointer: impl FnOnce(&mut Pointer<'_>)) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(b"{\"op\":\"add\",\"path\":\"");
        pointer(&mut Pointer(self.out));
        self.out.extend_from_slice(b"\",\"value\":");
    }

    /// One item: appended at `<pointer>/-`, or as a new one-element array at `<pointer>`.
    fn op(&mut self, pointer: impl FnOnce(&mut Pointer<'_>), create_list: bool, value: impl FnOnce(&mut Vec<u8>)) {
        self.begin(|p| {
            pointer(p);
            if !create_list {
                p.push_str("/-");
            }
        });
        if create_list {
            self.out.push(b'[');
            value(self.out);
            self.out.push(b']');
        } else {
            value(self.out);
        }
        self.out.push(b'}');
    }

    fn label(&mut self, at: LabelAt) {
        match at {
            LabelAt::Metadata => {
                self.begin(|p| p.push_str("/metadata"));
                self.out.extend_from_slice(b"{\"labels\":{");
                string(self.out, POD_IDENTITY_LABEL);
                self.out.extend_from_slice(b":\"enabled\"}}}");
            }
            LabelAt::Labels => {
                self.begin(|p| p.push_str("/metadata/labels"));
                self.out.push(b'{');
                string(self.out, POD_IDENTITY_LABEL);
                self.out.extend_from_slice(b":\"enabled\"}}");
            }
            LabelAt::Key => {
                self.begin(|p| {
                    p.push_str("/metadata/labels");
                    p.push_key(POD_IDENTITY_LABEL);
                });
                self.out.extend_from_slice(b"\"enabled\"}");
            }
        }
    }
}

fn container_field(p: &mut Pointer<'_>, container: &ContainerRef<'_>, field: &str) {
    p.push_str("/spec/");
    p.push_str(container.list.field());
    p.push_str("/");
    p.push_index(container.index);
    p.push_str("/");
    p.push_str(field);
}

fn volume_json(out: &mut Vec<u8>, volume: &TokenVolume<'_>) {
    out.extend_from_slice(b"{\"name\":");
    string(out, volume.name);
    out.extend_from_slice(b",\"projected\":{\"sources\":[{\"serviceAccountToken\":{\"audience\":");
    string(out, volume.audience);
    out.extend_from_slice(b",\"expirationSeconds\":");
    number(out, volume.expiration_seconds);
    out.extend_from_slice(b",\"path\":");
    string(out, volume.path);
    out.extend_from_slice(b"}}]}}");
}

fn env_json(out: &mut Vec<u8>, var: &EnvVar<'_>) {
    out.extend_from_slice(b"{\"name\":\"");
    out.extend_from_slice(var.name.as_str().as_bytes());
    match &var.value {
        EnvValue::Literal(value) => {
            out.extend_from_slice(b"\",\"value\":");
            string(out, value);
        }
        EnvValue::TokenFile { mount_path, file, windows } => {
            out.extend_from_slice(b"\",\"value\":");
            token_file(out, mount_path, file, *windows);
        }
        EnvValue::FieldRef(path) => {
            out.extend_from_slice(b"\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":");
            string(out, path);
            out.extend_from_slice(b"}}");
        }
    }
    out.push(b'}');
}

/// `token_file_path(mount_path, file, windows)` as a JSON string, written in pieces: no intermediate `String`.
fn token_file(out: &mut Vec<u8>, mount_path: &str, file: &str, windows: bool) {
    let start = out.len();
    string(out, mount_path.trim_end_matches('/'));
    out.pop(); // the closing quote: the path goes on
    out.push(b'/');
    let middle = out.len();
    string(out, file);
    out.remove(middle); // the opening quote of the second piece
    if windows {
        // `C:` in front and backslashes for slashes; a backslash is escaped in JSON, so each `/` becomes `\\`.
        let mut windows_path = Vec::with_capacity(out.len() - start + 8);
        windows_path.extend_from_slice(b"\"C:");
        for &byte in &out[start + 1..] {
            if byte == b'/' {
                windows_path.extend_from_slice(b"\\\\");
            } else {
                windows_path.push(byte);
            }
        }
        out.truncate(start);
        out.extend_from_slice(&windows_path);
    }
}

fn number(out: &mut Vec<u8>, n: impl serde::Serialize) {
    let _ = serde_json::to_writer(&mut *out, &n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutate::{ContainerList, EnvName};

    fn written(changes: &[Change<'_>]) -> String {
        let mut out = Vec::new();
        write(changes, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn keys_are_escaped_and_values_quoted() {
        let text = written(&[
            Change::PodIdentityLabel { at: LabelAt::Key },
            Change::Env {
                container: ContainerRef { list: ContainerList::InitContainers, index: 3, name: "x" },
                vars: vec![EnvVar { name: EnvName::RoleArn, value: EnvValue::Literal("a\"b\\c") }],
                create_list: false,
            },
        ]);
        assert_eq!(
            text,
            r#"[{"op":"add","path":"/metadata/labels/eks.amazonaws.com~1pod-identity","value":"enabled"},{"op":"add","path":"/spec/initContainers/3/env/-","value":{"name":"AWS_ROLE_ARN","value":"a\"b\\c"}}]"#
        );
        let patch: json_patch::Patch = serde_json::from_str(&text).unwrap();
        assert_eq!(patch.0.len(), 2);
    }

    #[test]
    fn token_file_values_equal_the_path_the_core_names() {
        for (mount, file, windows) in [
            ("/var/run/secrets/eks.amazonaws.com/serviceaccount", "token", false),
            ("/var/run/secrets/eks.amazonaws.com/serviceaccount/", "token", true),
            ("/odd \"path\"\\/", "tök/en", true),
            ("/", "t", false),
        ] {
            let mut out = Vec::new();
            token_file(&mut out, mount, file, windows);
            let value: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(value, crate::mutate::token_file_path(mount, file, windows), "{mount} {file} {windows}");
        }
    }

    #[test]
    fn an_empty_change_list_is_an_empty_patch() {
        assert_eq!(written(&[]), "[]");
    }
}
