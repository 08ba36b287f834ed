//! Embeds the repository's fixture pods' files (`tests/fixtures/**/*.yaml`, `examples/pod.yaml`,
//! `examples/admission-review.json`) into the `mutate` target, so a built target does not depend on the source
//! tree it was built from: the instrumented build is cached outside the repository and shared by checkouts at
//! other paths (CI's clean clone), and a path baked in at build time would point at a checkout that is gone.
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    yaml_files(&root.join("tests/fixtures"), &mut files);
    files.push(root.join("examples/pod.yaml"));
    files.push(root.join("examples/admission-review.json"));
    files.sort();
    let mut out = String::from("/// (path under the repository, contents), in path order.\npub const FIXTURE_FILES: &[(&str, &str)] = &[\n");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let name = file.strip_prefix(&root).unwrap_or(file).display().to_string();
        out.push_str(&format!("    ({name:?}, {text:?}),\n"));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("fixtures.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
    println!("cargo:rerun-if-changed=../tests/fixtures");
    println!("cargo:rerun-if-changed=../examples/pod.yaml");
    println!("cargo:rerun-if-changed=../examples/admission-review.json");
    println!("cargo:rerun-if-changed=build.rs");
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}
