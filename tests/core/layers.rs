//! The crate's layers name only themselves and the layers below them,
//! and its modules name one another in no cycle.
//!
//! Each top-level folder of `src/` (with its `<folder>.rs`, if any) is a
//! layer; [`PLACED`] puts the few files directly in `src/` into one. These
//! tests read every `.rs` file under `src/` and collect each `crate::` path
//! it names outside comments and strings (paths and `use` statements,
//! grouped ones included). A file that names a layer above its own fails
//! the first, with the file, the line and the path; two modules (a
//! layer's files and folders, `core::record`, `wire::exchange`...) that
//! name each other, directly or around a loop, fail the second. Inside
//! the crate a path starts with its layer (`crate::core::record`), not
//! with the names `lib.rs` re-exports for users. Unit tests are left out
//! (files `tests.rs` and `*_tests.rs`, and `#[cfg(test)] mod` blocks): they
//! are not part of the library, and may drive a layer from above. `lib.rs`
//! is left out too: it declares the layers and re-exports from them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first.
const ORDER: &[&str] = &[
    // The record and its rules: signing, the order (with `Version`), the
    // checks, validators, topics, range fingerprints, decode errors.
    "core",
    // Protobuf conversions, the fetch messages and their failures.
    "wire",
    // `RecordStore` and the stores.
    "store",
    // The sans-IO coordinator: replica, timers, penalties, asks, queries;
    // with the configuration and the events it emits.
    "coordinator",
    // Prometheus metrics, observing the coordinator.
    "metrics",
    // The libp2p shell: behaviour, handler, stream I/O, discovery.
    "behaviour",
    // The simulator: the coordinator over a model network.
    "sim",
    // Test utilities (the store conformance checks).
    "testing",
];

/// Names under `crate::` that are not a layer's folder, and their layer.
const PLACED: &[(&str, &str)] = &[
    // Files directly in `src/`.
    ("config", "coordinator"),
    ("event", "coordinator"),
    // Generated protobuf types, declared in `lib.rs`.
    ("proto", "wire"),
];

/// The rank of a layer, or of a name [`PLACED`] in one.
fn rank(name: &str) -> Option<usize> {
    let layer = PLACED
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(name, |(_, layer)| layer);
    ORDER.iter().position(|l| *l == layer)
}

/// A library file of `src/` and the `crate::` paths it names.
struct Source {
    /// Its path under `src/`.
    path: String,
    /// The first one or two names of its module: `core::record`,
    /// `wire` (for `wire.rs`), `coordinator` (for `coordinator/mod.rs`).
    module: String,
    /// Its layer's name (the first name of `module`, unless [`PLACED`]).
    top: String,
    /// Each path, with its line (from 1), as written, without `crate::`.
    paths: Vec<(usize, Vec<String>)>,
    text: String,
    /// `text` without comments, literals and unit tests.
    code: String,
}

impl Source {
    fn line(&self, line: usize) -> &str {
        self.text.lines().nth(line - 1).unwrap_or("").trim()
    }
}

/// Every library file of `src/`: `lib.rs` and unit tests left out.
fn sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found the sources: {}", files.len());
    let mut sources = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if relative == Path::new("lib.rs") || stem == "tests" || stem.ends_with("_tests") {
            continue;
        }
        let mut names: Vec<String> = relative
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_str().expect("utf-8").to_owned())
            .collect();
        if names.last().is_some_and(|n| n == "mod") {
            names.pop();
        }
        names.truncate(2);
        let text = fs::read_to_string(file).expect("readable");
        let code = library_code(&text);
        let paths = crate_paths(&code)
            .into_iter()
            .map(|(at, path)| (code[..at].matches('\n').count() + 1, path))
            .collect();
        sources.push(Source {
            path: format!("src/{}", relative.display()),
            module: names.join("::"),
            top: names[0].clone(),
            paths,
            text,
            code,
        });
    }
    sources
}

#[test]
fn each_layer_names_only_itself_and_the_layers_below() {
    let mut offences = Vec::new();
    for source in sources() {
        let Some(own) = rank(&source.top) else {
            offences.push(format!(
                "{}: `{}` is in no layer; add it to ORDER or PLACED",
                source.path, source.top
            ));
            continue;
        };
        for (line, path) in &source.paths {
            let shown = source.line(*line);
            let named = format!("crate::{}", path.join("::"));
            match rank(&path[0]) {
                Some(theirs) if theirs <= own => {}
                Some(theirs) => offences.push(format!(
                    "{}:{line}: layer `{}` names `{named}` of layer `{}`, above it: {shown}",
                    source.path, ORDER[own], ORDER[theirs],
                )),
                None => offences.push(format!(
                    "{}:{line}: `{named}` names no layer (write the path from its \
                     layer, or add the name to PLACED): {shown}",
                    source.path,
                )),
            }
        }
    }
    assert!(
        offences.is_empty(),
        "layers, lowest first: {}\n{}",
        ORDER.join(" < "),
        offences.join("\n")
    );
}

#[test]
fn no_modules_name_each_other_around_a_loop() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let sources = sources();
    // Module -> (module it names, where), the first place it names it.
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for source in &sources {
        for (line, path) in &source.paths {
            // `crate::a::b...` names the module `a::b` when `b` is one
            // (a file or folder of `src/a/`), else `a`.
            let mut target = path[0].clone();
            if let Some(second) = path.get(1) {
                let dir = src.join(&path[0]);
                if dir.join(format!("{second}.rs")).is_file() || dir.join(second).is_dir() {
                    target = format!("{}::{second}", path[0]);
                }
            }
            if target != source.module {
                edges
                    .entry(source.module.clone())
                    .or_default()
                    .entry(target)
                    .or_insert_with(|| format!("{}:{line}: {}", source.path, source.line(*line)));
            }
        }
    }
    // A depth-first search; a module met again on the current path closes
    // a loop.
    fn visit(
        module: &str,
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        loops: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut shown = Vec::new();
            for (i, from) in path[at..].iter().enumerate() {
                let to = path.get(at + i + 1).map_or(module, String::as_str);
                shown.push(format!("  {from} -> {to} ({})", edges[from][to]));
            }
            loops.push(shown.join("\n"));
            return;
        }
        if !done.insert(module.to_owned()) {
            return;
        }
        path.push(module.to_owned());
        for next in edges.get(module).into_iter().flat_map(BTreeMap::keys) {
            visit(next, edges, path, done, loops);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    let mut loops = Vec::new();
    for module in edges.keys() {
        visit(module, &edges, &mut Vec::new(), &mut done, &mut loops);
    }
    assert!(
        loops.is_empty(),
        "modules in a loop:\n{}",
        loops.join("\n\n")
    );
}

/// Files below the shell that may start threads, and why: none (the
/// threads that check an answer's signatures are the shell's,
/// `behaviour/parallel_verify.rs`).
const THREADS_BELOW_THE_SHELL: &[(&str, &str)] = &[];

#[test]
fn nothing_below_the_shell_names_swarm_types_or_starts_threads() {
    let shell = rank("behaviour").expect("a layer");
    let mut offences = Vec::new();
    for source in sources() {
        if rank(&source.top).is_none_or(|own| own >= shell) {
            continue;
        }
        let line_of = |at: usize| source.code[..at].matches('\n').count() + 1;
        for (at, path) in paths_after(&source.code, "libp2p::") {
            if ["swarm", "Swarm", "Stream", "StreamProtocol"].contains(&path[0].as_str()) {
                let line = line_of(at);
                offences.push(format!(
                    "{}:{line}: names `libp2p::{}` below the shell: {}",
                    source.path,
                    path.join("::"),
                    source.line(line)
                ));
            }
        }
        if THREADS_BELOW_THE_SHELL
            .iter()
            .any(|(p, _)| *p == source.path)
        {
            continue;
        }
        for call in ["thread::spawn", "thread::scope", "thread::Builder"] {
            let mut from = 0;
            while let Some(at) = source.code[from..].find(call) {
                let line = line_of(from + at);
                from += at + call.len();
                offences.push(format!(
                    "{}:{line}: starts threads below the shell ({call}): {}",
                    source.path,
                    source.line(line)
                ));
            }
        }
    }
    assert!(offences.is_empty(), "{}", offences.join("\n"));
}

/// The `.rs` files under `dir`, in a stable order.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .expect("readable dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `text` with comments, string and char literals, and `#[cfg(test)]`
/// modules blanked (newlines kept, so line numbers stay).
fn library_code(text: &str) -> String {
    let code = blank_comments_and_literals(text);
    let mut out: Vec<u8> = code.clone().into_bytes();
    let mut from = 0;
    while let Some(at) = code[from..].find("#[cfg(test)]") {
        let start = from + at;
        let rest = code[start + "#[cfg(test)]".len()..].trim_start();
        from = start + 1;
        if !rest.starts_with("mod ") && !rest.starts_with("pub mod ") {
            continue;
        }
        // A module with a body: blank up to its closing brace.
        let Some(open) = code[start..].find(['{', ';']).map(|i| start + i) else {
            continue;
        };
        if code.as_bytes()[open] == b';' {
            continue;
        }
        let mut depth = 0;
        let mut end = code.len();
        for (i, b) in code.bytes().enumerate().skip(open) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        for b in &mut out[start..end] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    }
    String::from_utf8(out).expect("ascii blanks keep utf-8")
}

/// Comments and the contents of string and char literals replaced by
/// spaces, byte for byte (multi-byte characters become several spaces).
fn blank_comments_and_literals(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                let mut j = i;
                while j < b.len() {
                    if b[j..].starts_with(b"/*") {
                        depth += 1;
                        j += 2;
                    } else if b[j..].starts_with(b"*/") {
                        depth -= 1;
                        j += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i, j);
                i = j;
            }
            b'r' if (b.get(i + 1) == Some(&b'#') || b.get(i + 1) == Some(&b'"'))
                && (i == 0 || !is_ident(b[i - 1])) =>
            {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let body = i + 2 + hashes;
                let end = text[body..]
                    .find(&close)
                    .map_or(b.len(), |n| body + n + close.len());
                blank(&mut out, body, end);
                i = end;
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                blank(&mut out, i + 1, j.min(b.len()));
                i = j + 1;
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
                if b.get(i + 1) == Some(&b'\\') {
                    let end = text[i + 2..].find('\'').map_or(b.len(), |n| i + 2 + n);
                    blank(&mut out, i + 1, end);
                    i = end + 1;
                } else if let Some(c) = text[i + 1..].chars().next() {
                    let after = i + 1 + c.len_utf8();
                    if b.get(after) == Some(&b'\'') {
                        blank(&mut out, i + 1, after);
                        i = after + 1;
                    } else {
                        i += 1;
                    }
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8(out).expect("ascii blanks keep utf-8")
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Each `crate::` path in `code`, with the offset where it starts, without
/// `crate::`; a group (`crate::core::{order, record::Record}`) gives one
/// path per item, at the item.
fn crate_paths(code: &str) -> Vec<(usize, Vec<String>)> {
    paths_after(code, "crate::")
}

/// Each path in `code` that starts with `root` (`"crate::"`, `"libp2p::"`),
/// as [`crate_paths`] reads them.
fn paths_after(code: &str, root: &str) -> Vec<(usize, Vec<String>)> {
    let b = code.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(root) {
        let start = from + at;
        from = start + root.len();
        if start > 0 && (is_ident(b[start - 1]) || b[start - 1] == b'$') {
            continue;
        }
        use_tree(code, from, start, Vec::new(), &mut found);
    }
    found
}

/// Reads the path (or group of paths) at `at`, after `prefix`; returns
/// where it ends.
fn use_tree(
    code: &str,
    mut at: usize,
    start: usize,
    prefix: Vec<String>,
    found: &mut Vec<(usize, Vec<String>)>,
) -> usize {
    let skip_space = |at: usize| at + (code.len() - at - code[at..].trim_start().len());
    if code[at..].starts_with('{') {
        at += 1;
        loop {
            at = skip_space(at);
            if at >= code.len() || code[at..].starts_with('}') {
                return at + 1;
            }
            let item = at;
            at = use_tree(code, at, item, prefix.clone(), found);
            at = skip_space(at);
            if code[at..].starts_with(',') {
                at += 1;
            } else if !code[at..].starts_with('}') {
                // Not a use tree after all.
                return at;
            }
        }
    }
    let name = leading_ident(&code[at..]);
    if name.is_empty() {
        if !prefix.is_empty() {
            found.push((start, prefix));
        }
        return at;
    }
    let mut path = prefix;
    path.push(name.to_owned());
    at += name.len();
    if code[at..].starts_with("::") {
        let next = &code[at + 2..];
        if next.starts_with('{') || !leading_ident(next).is_empty() {
            return use_tree(code, at + 2, start, path, found);
        }
    }
    found.push((start, path));
    at
}

fn leading_ident(s: &str) -> &str {
    let end = s.bytes().position(|c| !is_ident(c)).unwrap_or(s.len());
    &s[..end]
}
