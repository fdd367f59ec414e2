//! The engine's floor plan has no import cycles: among the module files of `src/mesh`, no file
//! reaches itself through the paths it names (`use crate::mesh::…`, `super::…`, `self::…`, and
//! paths that start at a child module). A module using its own ancestors (a child using what
//! `mod.rs` or a parent defines) is not counted: that is what a parent is for.
//!
//! The scan reads source text, not the compiler's view: it strips comments and literals,
//! follows `use` trees and path expressions, resolves each path to the deepest module file it
//! names, and looks for a cycle in the graph of files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path from the crate root, e.g. `["mesh", "consensus", "pbft"]`.
type ModPath = Vec<String>;

/// An edge's evidence: the file that names the path and the path as written.
type Edges = BTreeMap<ModPath, BTreeMap<ModPath, String>>;

fn mesh_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join("mesh")
}

/// Every `.rs` file under `dir`, with its module path.
fn module_files(dir: &Path, prefix: &ModPath, out: &mut BTreeMap<ModPath, PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read src/mesh").map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut sub = prefix.clone();
            sub.push(name);
            module_files(&path, &sub, out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            let mut module = prefix.clone();
            if stem != "mod" {
                module.push(stem.to_string());
            }
            out.insert(module, path);
        }
    }
}

/// The source with comments, string literals and char literals blanked out.
fn strip(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_char(chars.get(i.wrapping_sub(1))) {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a), which is kept.
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// Identifiers and punctuation; `::` is one token.
fn tokens(src: &str) -> Vec<String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while ident_char(chars.get(i)) {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

/// Expand a `use` tree starting at `toks[*i]` into full paths (as written), up to `;` or the
/// end of the enclosing group.
fn use_tree(toks: &[String], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    while *i < toks.len() {
        let t = toks[*i].as_str();
        match t {
            "::" => *i += 1,
            "{" => {
                *i += 1;
                loop {
                    use_tree(toks, i, &path, out);
                    match toks.get(*i).map(String::as_str) {
                        Some(",") => *i += 1,
                        Some("}") => {
                            *i += 1;
                            break;
                        }
                        _ => break,
                    }
                    if toks.get(*i).map(String::as_str) == Some("}") {
                        *i += 1;
                        break;
                    }
                }
                return;
            }
            "," | "}" | ";" => {
                out.push(path);
                return;
            }
            "as" => {
                *i += 2; // `as name`
            }
            "*" => {
                *i += 1;
            }
            _ => {
                path.push(t.to_string());
                *i += 1;
            }
        }
    }
    out.push(path);
}

/// Resolve a path as written inside module `cur` to a path from the crate root; `None` when it
/// does not start at `crate`, `super`, `self` or a child module of `cur`.
fn resolve(path: &[String], cur: &ModPath, modules: &BTreeSet<ModPath>) -> Option<ModPath> {
    let first = path.first()?.as_str();
    let mut base: ModPath;
    let mut rest = &path[1..];
    match first {
        "crate" => base = vec![],
        "self" => base = cur.clone(),
        "super" => {
            base = cur.clone();
            base.pop()?;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => {
            let mut child = cur.clone();
            child.push(first.to_string());
            if !modules.contains(&child) {
                return None;
            }
            base = child;
        }
    }
    for seg in rest {
        if seg != "self" {
            base.push(seg.clone());
        }
    }
    Some(base)
}

/// The module file a resolved path lands in: its longest prefix that is a file.
fn file_of(path: &ModPath, files: &BTreeMap<ModPath, PathBuf>) -> Option<ModPath> {
    (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| files.contains_key(p))
}

/// The graph of module files: an edge from a file to each non-ancestor file it names.
fn import_graph(files: &BTreeMap<ModPath, PathBuf>) -> Edges {
    let mut edges = Edges::new();
    // Modules known by path: files, plus inline modules found while scanning (added below).
    let mut modules: BTreeSet<ModPath> = files.keys().cloned().collect();
    let stripped: BTreeMap<ModPath, Vec<String>> = files
        .iter()
        .map(|(m, p)| (m.clone(), tokens(&strip(&std::fs::read_to_string(p).expect("read a module file")))))
        .collect();
    // Inline modules (`mod tests { … }`) resolve `super` from inside them.
    for (file, toks) in &stripped {
        for w in toks.windows(3) {
            if w[0] == "mod" && w[2] == "{" {
                let mut m = file.clone();
                m.push(w[1].clone());
                modules.insert(m);
            }
        }
    }
    for (file, toks) in &stripped {
        let from = edges.entry(file.clone()).or_default();
        let mut add = |written: &[String], cur: &ModPath| {
            let Some(target) = resolve(written, cur, &modules) else { return };
            let Some(to) = file_of(&target, files) else { return };
            let ancestor_or_self = to.len() <= file.len() && file[..to.len()] == to[..];
            if !ancestor_or_self {
                from.entry(to).or_insert_with(|| written.join("::"));
            }
        };
        let mut inline: Vec<(String, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut i = 0;
        while i < toks.len() {
            let cur: ModPath = file.iter().cloned().chain(inline.iter().map(|(m, _)| m.clone())).collect();
            match toks[i].as_str() {
                "{" => {
                    depth += 1;
                    i += 1;
                }
                "}" => {
                    if inline.last().is_some_and(|(_, d)| *d == depth) {
                        inline.pop();
                    }
                    depth = depth.saturating_sub(1);
                    i += 1;
                }
                "mod" if toks.get(i + 2).map(String::as_str) == Some("{") => {
                    inline.push((toks[i + 1].clone(), depth + 1));
                    i += 2;
                }
                "use" => {
                    i += 1;
                    let mut paths = Vec::new();
                    use_tree(toks, &mut i, &[], &mut paths);
                    for p in paths {
                        add(&p, &cur);
                    }
                }
                t if t.starts_with(|c: char| c.is_alphabetic() || c == '_')
                    && toks.get(i + 1).map(String::as_str) == Some("::")
                    && (i == 0 || toks[i - 1] != "::") =>
                {
                    let mut path = vec![t.to_string()];
                    let mut j = i + 1;
                    while toks.get(j).map(String::as_str) == Some("::")
                        && toks.get(j + 1).is_some_and(|s| s.starts_with(|c: char| c.is_alphabetic() || c == '_'))
                    {
                        path.push(toks[j + 1].clone());
                        j += 2;
                    }
                    add(&path, &cur);
                    i = j;
                }
                _ => i += 1,
            }
        }
    }
    edges
}

/// A cycle in the graph, as the list of files around it, if there is one.
fn find_cycle(edges: &Edges) -> Option<Vec<ModPath>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(n: &ModPath, edges: &Edges, marks: &mut BTreeMap<ModPath, Mark>, stack: &mut Vec<ModPath>) -> bool {
        marks.insert(n.clone(), Mark::Open);
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flat_map(|e| e.keys()) {
            match marks.get(m).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    stack.drain(..at);
                    stack.push(m.clone());
                    return true;
                }
                Mark::New => {
                    if visit(m, edges, marks, stack) {
                        return true;
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(n.clone(), Mark::Done);
        false
    }
    let mut marks = BTreeMap::new();
    for n in edges.keys() {
        if marks.get(n).copied().unwrap_or(Mark::New) == Mark::New {
            let mut stack = Vec::new();
            if visit(n, edges, &mut marks, &mut stack) {
                return Some(stack);
            }
        }
    }
    None
}

fn describe(cycle: &[ModPath], edges: &Edges) -> String {
    cycle
        .windows(2)
        .map(|w| format!("{} --[{}]--> {}", w[0].join("::"), edges[&w[0]][&w[1]], w[1].join("::")))
        .collect::<Vec<_>>()
        .join("\n  ")
}

#[test]
fn the_engine_modules_import_each_other_without_cycles() {
    let mut files = BTreeMap::new();
    module_files(&mesh_dir(), &vec!["mesh".to_string()], &mut files);
    assert!(files.len() > 10, "found the module files of src/mesh");
    let edges = import_graph(&files);
    if let Some(cycle) = find_cycle(&edges) {
        panic!("import cycle among the module files of src/mesh:\n  {}", describe(&cycle, &edges));
    }
}

#[test]
fn the_scan_sees_a_cycle_between_two_sibling_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("a")).unwrap();
    std::fs::write(root.join("mod.rs"), "pub mod a;\npub mod b;\nuse a::X;\n").unwrap();
    std::fs::write(root.join("a/mod.rs"), "//! `use crate::mesh::b;` in a comment is not an edge\nmod inner;\n")
        .unwrap();
    std::fs::write(
        root.join("a/inner.rs"),
        "use super::super::b::{self, Y};\nfn f() { let _ = \"crate::mesh::b\"; }\n",
    )
    .unwrap();
    std::fs::write(root.join("b.rs"), "pub struct Y;\nfn g() -> crate::mesh::a::inner::Z { todo!() }\n").unwrap();
    let mut files = BTreeMap::new();
    module_files(root, &vec!["mesh".to_string()], &mut files);
    let edges = import_graph(&files);
    let cycle = find_cycle(&edges).expect("a::inner and b name each other");
    let names: BTreeSet<String> = cycle.iter().map(|m| m.join("::")).collect();
    assert_eq!(names, BTreeSet::from(["mesh::a::inner".to_string(), "mesh::b".to_string()]));
    // A child using its parent, and a parent using its child, is no cycle.
    std::fs::write(root.join("b.rs"), "use super::a::X;\npub struct Y;\n").unwrap();
    std::fs::write(root.join("a/mod.rs"), "mod inner;\npub struct X;\nuse inner::Z;\n").unwrap();
    std::fs::write(root.join("a/inner.rs"), "use super::X;\nuse super::super::Engine;\npub struct Z;\n").unwrap();
    let edges = import_graph(&files);
    assert_eq!(find_cycle(&edges), None, "{edges:?}");
}
