//! The crate's layers name only themselves and the layers below them.
//!
//! Each top-level folder of `src/` (with its `<folder>.rs`, if any) is a
//! layer; [`PLACED`] puts the few files directly in `src/` into one. This
//! test reads every `.rs` file under `src/`, collects each `crate::<name>`
//! it names outside comments and strings (paths and `use` statements,
//! grouped ones included), and fails when a file names a layer above its
//! own, giving the file, the line and the path. Unit tests are left out
//! (files `tests.rs` and `*_tests.rs`, and `#[cfg(test)] mod` blocks): they
//! are not part of the library, and may drive a layer from above. `lib.rs`
//! is left out too: it declares the layers and re-exports from all of them.

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
    // Modules re-exported at the root under their older paths.
    ("accept", "core"),
    ("order", "core"),
    ("reconcile", "core"),
    ("record", "core"),
    ("topic", "core"),
    ("validator", "core"),
    ("exchange", "wire"),
    ("misbehaviour", "coordinator"),
    ("replica", "coordinator"),
    ("discovery", "behaviour"),
    ("protocol", "behaviour"),
    // Types re-exported at the root.
    ("Author", "core"),
    ("AllowList", "core"),
    ("DecodeError", "core"),
    ("KeyRefused", "core"),
    ("Op", "core"),
    ("Open", "core"),
    ("OwnedKeys", "core"),
    ("Record", "core"),
    ("Topic", "core"),
    ("TOPIC_PREFIX", "core"),
    ("Validator", "core"),
    ("InboundFailure", "wire"),
    ("OutboundFailure", "wire"),
    ("MemoryStore", "store"),
    ("MemoryStoreConfig", "store"),
    ("RecordStore", "store"),
    ("RedbStore", "store"),
    ("RedbStoreConfig", "store"),
    ("Config", "coordinator"),
    ("ConfigBuilder", "coordinator"),
    ("ConfigError", "coordinator"),
    ("Event", "coordinator"),
    ("GetOutcome", "coordinator"),
    ("Misbehaviour", "coordinator"),
    ("PointerEvent", "coordinator"),
    ("QueryId", "coordinator"),
    ("Refusal", "coordinator"),
    ("Source", "coordinator"),
    ("WriteError", "coordinator"),
    ("Behaviour", "behaviour"),
    ("BuildError", "behaviour"),
    ("Pointer", "behaviour"),
];

/// The rank of a layer, or of a name [`PLACED`] in one.
fn rank(name: &str) -> Option<usize> {
    let layer = PLACED
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(name, |(_, layer)| layer);
    ORDER.iter().position(|l| *l == layer)
}

#[test]
fn each_layer_names_only_itself_and_the_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found the sources: {}", files.len());
    let mut offences = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if relative == Path::new("lib.rs") || stem == "tests" || stem.ends_with("_tests") {
            continue;
        }
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a path")
            .trim_end_matches(".rs");
        let Some(own) = rank(top) else {
            offences.push(format!(
                "src/{}: `{top}` is in no layer; add it to ORDER or PLACED",
                relative.display()
            ));
            continue;
        };
        let text = fs::read_to_string(file).expect("readable");
        for (line, name) in crate_paths(&library_code(&text)) {
            let shown = text.lines().nth(line).unwrap_or("").trim();
            match rank(&name) {
                Some(theirs) if theirs <= own => {}
                Some(theirs) => offences.push(format!(
                    "src/{}:{}: layer `{}` names `crate::{name}` of layer `{}`, above it: {shown}",
                    relative.display(),
                    line + 1,
                    ORDER[own],
                    ORDER[theirs],
                )),
                None => offences.push(format!(
                    "src/{}:{}: `crate::{name}` is in no layer; add it to PLACED: {shown}",
                    relative.display(),
                    line + 1,
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

/// Each `crate::<name>` in `code`, with its line (from 0): the name after
/// `crate::`, or each first name of a `crate::{a::.., b, ..}` group.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let b = code.as_bytes();
    let line_of = |at: usize| code[..at].matches('\n').count();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        if start > 0 && (is_ident(b[start - 1]) || b[start - 1] == b'$') {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group at its top-level commas.
            let mut depth = 0;
            let mut item_start = 0;
            let mut items = Vec::new();
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        items.push(&group[item_start..i]);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&group[item_start..i]);
                        item_start = i + 1;
                    }
                    _ => {}
                }
            }
            for item in items {
                let name = leading_ident(item.trim_start());
                if !name.is_empty() {
                    found.push((line_of(start), name.to_owned()));
                }
            }
        } else {
            let name = leading_ident(rest);
            if !name.is_empty() {
                found.push((line_of(start), name.to_owned()));
            }
        }
    }
    found
}

fn leading_ident(s: &str) -> &str {
    let end = s.bytes().position(|c| !is_ident(c)).unwrap_or(s.len());
    &s[..end]
}
