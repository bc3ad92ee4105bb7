//! The crate's layering, checked: `docs/architecture.md` draws it, this
//! test holds the code to it.
//!
//! Every top-level module of `src/` sits in one layer. A module may use
//! modules of its own layer or of layers below, never one above; no two
//! top-level modules may import each other, directly or round a circle;
//! and the pure layers (the domain, the wire codec, the rules) may not name
//! an I/O crate. The check reads `crate::…` paths in the code (comments and
//! strings stripped), so it needs nothing but the source tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top. Keep in step with `docs/architecture.md`.
const LAYERS: &[(&str, &[&str])] = &[
    ("foundation", &["domain", "clock", "secret"]),
    ("wire codec", &["crypto", "message"]),
    ("pure logic", &["rules", "security"]),
    ("infrastructure", &["store", "metrics", "token", "outbound"]),
    ("conversation", &["conversation"]),
    ("agent", &["agent"]),
    ("configuration", &["config", "telemetry", "reload"]),
    ("platforms", &["platform"]),
    ("server", &["server"]),
    ("application", &["app"]),
    ("command line", &["cli"]),
];

/// Modules that must not touch the network, the runtime or a database.
const PURE: &[&str] = &["domain", "crypto", "message", "rules"];
/// The I/O crates the pure layers must not name.
const IO_CRATES: &[&str] = &[
    "axum",
    "hyper",
    "hyper_util",
    "reqwest",
    "redis",
    "tokio",
    "tower",
    "tower_http",
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`None` for the crate root and the binary).
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src_dir()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_owned()),
    }
}

/// The code with comments, string and char literals blanked out.
fn strip(code: &str) -> String {
    let b = code.as_bytes();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) {
            // raw string: r"…", r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\''
            && b.get(i + 2) == Some(&b'\'')
            && b.get(i + 1).is_some_and(|c| c.is_ascii())
        {
            i += 3;
            out.push_str("' '");
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            // '\n', '\'', '\u{..}'
            let mut j = i + 2;
            while j < b.len() && b[j] != b'\'' {
                j += 1;
            }
            i = j + 1;
            out.push_str("' '");
        } else {
            let c = code[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a piece of code names through `crate::`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `$crate::`, `foo_crate::`
        }
        let tail = rest.trim_start();
        if let Some(group) = tail.strip_prefix('{') {
            // use crate::{a, b::c, d::{e, f}};
            let mut depth = 1;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if depth == 1 && item_start && !c.is_whitespace() => {
                        item_start = false;
                        let name = ident_at(&group[i..]);
                        if !name.is_empty() && name != "self" {
                            refs.insert(name.to_owned());
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident_at(tail);
            if !name.is_empty() {
                refs.insert(name.to_owned());
            }
        }
    }
    refs
}

/// External crates a piece of code names at the start of a path.
fn names_crate(code: &str, krate: &str) -> bool {
    let needle = format!("{krate}::");
    code.match_indices(&needle).any(|(at, _)| {
        !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    })
}

struct Scan {
    /// module → (module it uses → a file that does it)
    edges: BTreeMap<String, BTreeMap<String, PathBuf>>,
    /// (file, I/O crate) pairs found in pure modules
    impure: Vec<(PathBuf, &'static str)>,
    modules: BTreeSet<String>,
}

fn scan() -> Scan {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files.sort();
    let mut scan = Scan {
        edges: BTreeMap::new(),
        impure: Vec::new(),
        modules: BTreeSet::new(),
    };
    for file in files {
        let Some(module) = module_of(&file) else {
            continue;
        };
        scan.modules.insert(module.clone());
        let code = strip(&std::fs::read_to_string(&file).expect("source is UTF-8"));
        for used in crate_refs(&code) {
            if used != module {
                scan.edges
                    .entry(module.clone())
                    .or_default()
                    .entry(used)
                    .or_insert_with(|| file.clone());
            }
        }
        if PURE.contains(&module.as_str()) {
            for krate in IO_CRATES {
                if names_crate(&code, krate) {
                    scan.impure.push((file.clone(), krate));
                }
            }
        }
    }
    scan
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn rel(path: &Path) -> String {
    path.strip_prefix(src_dir().parent().expect("src has a parent"))
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_module_has_a_layer() {
    let scan = scan();
    let homeless: Vec<_> = scan
        .modules
        .iter()
        .filter(|m| layer_of(m).is_none())
        .collect();
    assert!(
        homeless.is_empty(),
        "top-level modules with no layer in tests/layering.rs (and docs/architecture.md): {homeless:?}"
    );
}

#[test]
fn dependencies_point_down() {
    let scan = scan();
    let mut upward = Vec::new();
    for (from, uses) in &scan.edges {
        for (to, file) in uses {
            let (Some(a), Some(b)) = (layer_of(from), layer_of(to)) else {
                continue;
            };
            if b > a {
                upward.push(format!(
                    "{from} ({}) uses {to} ({}), in {}",
                    LAYERS[a].0,
                    LAYERS[b].0,
                    rel(file)
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that point up the layering:\n  {}",
        upward.join("\n  ")
    );
}

#[test]
fn no_import_cycles_between_modules() {
    let scan = scan();
    // Depth-first search for a back edge, reporting the circle it closes.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeMap<String, PathBuf>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(pos) = stack.iter().position(|n| n == node) {
            let mut circle = stack[pos..].to_vec();
            circle.push(node.to_owned());
            cycles.push(circle.join(" → "));
            return;
        }
        stack.push(node.to_owned());
        if let Some(next) = edges.get(node) {
            for to in next.keys() {
                visit(to, edges, stack, done, cycles);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for module in &scan.modules {
        visit(module, &scan.edges, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules:\n  {}",
        cycles.join("\n  ")
    );
}

#[test]
fn pure_layers_name_no_io_crate() {
    let scan = scan();
    let found: Vec<_> = scan
        .impure
        .iter()
        .map(|(file, krate)| format!("{} names {krate}", rel(file)))
        .collect();
    assert!(
        found.is_empty(),
        "the domain, the wire codec and the rules must stay free of I/O:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_scanner_sees_what_it_must() {
    // The check itself must be able to fail: these are the shapes it reads.
    let code = strip(
        "use crate::{store::Store, rules, self};\n\
         // use crate::server;\n\
         let s = \"crate::app\";\n\
         fn f() -> crate::metrics::Metrics { todo!() }\n\
         use crate::{\n    agent::{A, B},\n    config,\n};\n\
         let c = '\"'; let d = crate::token::X;",
    );
    let refs = crate_refs(&code);
    let want: BTreeSet<String> = ["store", "rules", "metrics", "agent", "config", "token"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(refs, want);
    assert!(names_crate("tokio::spawn(x)", "tokio"));
    assert!(!names_crate("my_tokio::spawn(x)", "tokio"));
    assert!(!names_crate("crate::tokio::x", "tokio"));
}
