//! The code's direction of dependencies (README, "How it is built"): each module of `src/` stands on a
//! floor and imports only modules of lower floors, and no files import each other in a circle.
//! Std only: the `crate::` and `super::` paths of every file are read (comments aside) and
//! resolved to the files they name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The floor of each top-level module of `src/` (a file `src/NAME.rs` or a folder `src/NAME/`).
/// A module imports only modules of lower floors; modules of one floor do not import each other.
const FLOORS: &[(&str, u32)] = &[
    ("alloc", 0),
    ("demo", 0),
    ("config", 0),
    ("result", 1),
    ("data", 1),
    ("measure", 2),
    ("web", 2),
    ("case", 3),
    ("output", 3),
    ("notify", 3),
    ("db", 3),
    ("transport", 4),
    ("runner", 5),
    ("cli", 6),
    ("functional", 6),
    ("example", 7),
    ("shop", 7),
    ("lib", 8),
    ("main", 8),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src").flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file: `src/result/stats.rs` -> `["result", "stats"]`, `src/lib.rs` ->
/// `[]`, `src/output/mod.rs` -> `["output"]`.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    if parts == ["main"] {
        return vec!["main".into()];
    }
    parts
}

/// The file of the longest prefix of `path` that is a module with a file of its own.
fn file_of(path: &[String], modules: &BTreeMap<Vec<String>, PathBuf>) -> Option<PathBuf> {
    (0..=path.len())
        .rev()
        .find_map(|n| modules.get(&path[..n]).cloned())
}

/// The text of a file without its comments (doc links are not imports) and string literals.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut kept = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if !in_str && c == '/' && chars.get(i + 1) == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                kept.push(c);
            }
            prev = c;
            i += 1;
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// The paths a `use` tree names: `a::{b::C, d}` -> `a::b::C`, `a::d`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or("").trim().to_owned()];
    };
    let prefix = tree[..open].trim_end_matches("::").trim();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|i| !i.trim().is_empty())
        .flat_map(expand)
        .map(|p| {
            if p == "self" {
                prefix.to_owned()
            } else {
                format!("{prefix}::{p}")
            }
        })
        .collect()
}

/// The module paths a file's code names, from the crate root: `crate::a::b` anywhere, and the
/// trees of `use crate::…` and `use super::…` (resolved from the file's module).
fn imports(code: &str, module: &[String]) -> BTreeSet<Vec<String>> {
    let mut paths = BTreeSet::new();
    // The leading identifiers of a path: `a::b::c(x)` -> a, b, c.
    let split = |p: &str| -> Vec<String> {
        let mut out = Vec::new();
        for seg in p.split("::") {
            let id: String = seg
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let whole = id.len() == seg.trim().len();
            if id.is_empty() {
                break;
            }
            out.push(id);
            if !whole {
                break;
            }
        }
        out
    };
    // `use` statements (which may span lines).
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        let after = &rest[at + 4..];
        rest = after;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = after.find(';') else { break };
        let tree = &after[..end];
        let t = tree.trim_start();
        if !(t.starts_with("crate::") || t.starts_with("super::")) {
            continue;
        }
        for p in expand(t) {
            let mut segs = split(&p);
            if segs.first().is_some_and(|s| s == "crate") {
                segs.remove(0);
            } else {
                let mut base = module.to_vec();
                while segs.first().is_some_and(|s| s == "super") {
                    segs.remove(0);
                    base.pop();
                }
                base.extend(segs);
                segs = base;
            }
            paths.insert(segs);
        }
    }
    // `crate::a::b::…` written in place.
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + 7..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if rest.starts_with('{') {
            continue; // a `use crate::{…}` tree, read above
        }
        let segs = split(rest);
        if !segs.is_empty() {
            paths.insert(segs);
        }
    }
    paths
}

fn floor(top: &str) -> Option<u32> {
    FLOORS.iter().find(|(n, _)| *n == top).map(|(_, f)| *f)
}

#[test]
fn every_import_points_down_and_no_files_import_each_other_in_a_circle() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    all.sort();
    let modules: BTreeMap<Vec<String>, PathBuf> =
        all.iter().map(|f| (module_of(f), f.clone())).collect();
    let top = |m: &[String]| m.first().cloned().unwrap_or_else(|| "lib".into());
    let mut problems = Vec::new();
    let mut graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in &all {
        let module = module_of(file);
        let text = std::fs::read_to_string(file).expect("read");
        let name = file.strip_prefix(src()).expect("src").display().to_string();
        let Some(my_floor) = floor(&top(&module)) else {
            problems.push(format!(
                "src/{name}: its module `{}` has no floor in tests/layers.rs",
                top(&module)
            ));
            continue;
        };
        for path in imports(&code_of(&text), &module) {
            let Some(target) = file_of(&path, &modules) else {
                continue;
            };
            // The crate root is its face (the prelude, re-exports, exported macros), not a floor
            // that others build on.
            if module_of(&target).is_empty() {
                continue;
            }
            let their_top = top(&module_of(&target));
            if their_top != top(&module) {
                let their_floor = floor(&their_top).unwrap_or(u32::MAX);
                if their_floor >= my_floor {
                    problems.push(format!(
                        "src/{name} (floor {my_floor}) imports crate::{} (module `{their_top}`, floor {their_floor}): an import must point to a lower floor",
                        path.join("::")
                    ));
                }
            }
            // A module's own folder file (`mod.rs`) and its children name each other by design
            // (declarations, re-exports): not a circle of concepts.
            let parent_child = {
                let (a, b) = (module_of(file), module_of(&target));
                (a.len() + 1 == b.len() && b.starts_with(&a))
                    || (b.len() + 1 == a.len() && a.starts_with(&b))
                    || a.is_empty()
                    || b.is_empty()
            };
            if &target != file && !parent_child {
                graph.entry(file.clone()).or_default().insert(target);
            }
        }
    }
    // Circles: a depth-first search over the file graph.
    fn visit(
        f: &PathBuf,
        graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        state: &mut BTreeMap<PathBuf, u8>,
        stack: &mut Vec<PathBuf>,
        circles: &mut Vec<Vec<PathBuf>>,
    ) {
        state.insert(f.clone(), 1);
        stack.push(f.clone());
        for t in graph.get(f).into_iter().flatten() {
            match state.get(t).copied().unwrap_or(0) {
                0 => visit(t, graph, state, stack, circles),
                1 => {
                    let at = stack.iter().position(|s| s == t).unwrap_or(0);
                    circles.push(stack[at..].to_vec());
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(f.clone(), 2);
    }
    let (mut state, mut circles) = (BTreeMap::new(), Vec::new());
    for f in graph.keys() {
        if state.get(f).copied().unwrap_or(0) == 0 {
            visit(f, &graph, &mut state, &mut Vec::new(), &mut circles);
        }
    }
    for c in circles {
        let names: Vec<String> = c
            .iter()
            .map(|p| format!("src/{}", p.strip_prefix(src()).expect("src").display()))
            .collect();
        problems.push(format!(
            "files import each other in a circle: {} -> (back to the first)",
            names.join(" -> ")
        ));
    }
    assert!(
        problems.is_empty(),
        "the layout of README \"How it is built\" is broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_reader_of_imports_resolves_trees_and_super() {
    let m = vec!["result".to_owned(), "event".to_owned()];
    let got = imports(
        "use super::stats::{Stats, Latency};\nuse crate::{config::RunArgs, measure::{Session, ws::WebSocket}};\nlet x = crate::output::format::x();",
        &m,
    );
    let want: BTreeSet<Vec<String>> = [
        "result::stats::Stats",
        "result::stats::Latency",
        "config::RunArgs",
        "measure::Session",
        "measure::ws::WebSocket",
        "output::format::x",
    ]
    .iter()
    .map(|p| p.split("::").map(str::to_owned).collect())
    .collect();
    assert_eq!(got, want);
    assert_eq!(code_of("a // crate::x\n\"crate::y\" b"), "a \n b\n");
}
