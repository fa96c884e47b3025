//! The crate's layout rules, checked by reading the sources: no import cycle between the
//! top-level modules of `src/`, no source file over the size limit, and every file opening with a
//! `//!` line that says what it holds.
//!
//! The import graph is read from code (comments are skipped): every `crate::name` path counts as
//! an edge from the module of the file to the module `name` is in, where a name re-exported at
//! the crate root (`crate::TaskClass`) counts as the module that defines it. Run it alone with
//! `cargo test --test layout`; on a cycle it prints the modules in it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A file longer than this mixes concepts; split it along their seams.
const MAX_LINES: usize = 650;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The top-level module a file of `src/` belongs to (`pool` for `src/pool/state.rs`), or `None`
/// for the crate root and the binaries.
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(src()).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "bin" => None,
        file => Some(file.trim_end_matches(".rs").to_owned()),
    }
}

/// The code of a file without its comments (line comments and doc comments).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names re-exported at the crate root, mapped to the module that defines them: read from the
/// `pub use module::{...}` items of `lib.rs`.
fn root_reexports() -> BTreeMap<String, String> {
    let lib = code_of(&fs::read_to_string(src().join("lib.rs")).expect("lib.rs"));
    let mut names = BTreeMap::new();
    for item in lib.split(';') {
        let item = item.trim();
        let Some(rest) = item.strip_prefix("pub use ") else {
            continue;
        };
        let (module, list) = rest.split_once("::").unwrap_or((rest, rest));
        for name in list
            .trim_matches(|c: char| c == '{' || c == '}' || c.is_whitespace())
            .split(',')
        {
            let name = name.trim();
            if !name.is_empty() {
                names.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    names
}

/// The modules each top-level module refers to through `crate::` paths.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = rust_files(&src())
        .iter()
        .filter_map(|p| module_of(p))
        .collect();
    let reexports = root_reexports();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in rust_files(&src()) {
        let Some(from) = module_of(&path) else {
            continue;
        };
        let code = code_of(&fs::read_to_string(&path).expect("a source file"));
        let edges = graph.entry(from.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let to = if modules.contains(&name) {
                Some(name)
            } else {
                reexports.get(&name).cloned()
            };
            if let Some(to) = to.filter(|to| *to != from) {
                edges.insert(to);
            }
        }
    }
    graph
}

/// A cycle through `start`, if there is one.
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    let node = path.last().expect("a path has a node").clone();
    for next in graph.get(&node).into_iter().flatten() {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(start.to_owned());
            return Some(cycle);
        }
        if !path.contains(next) {
            path.push(next.clone());
            if let Some(cycle) = cycle_from(graph, start, path) {
                return Some(cycle);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let graph = import_graph();
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module, &mut vec![module.clone()]) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    graph.entry("c".into()).or_default().insert("a".into());
    let cycle = cycle_from(&graph, "a", &mut vec!["a".into()]);
    assert_eq!(
        cycle.map(|c| c.join(" -> ")).as_deref(),
        Some("a -> b -> c -> a")
    );
    graph.get_mut("c").unwrap().clear();
    assert_eq!(cycle_from(&graph, "a", &mut vec!["a".into()]), None);
}

#[test]
fn the_role_leaf_imports_nothing_of_the_crate() {
    let graph = import_graph();
    assert_eq!(graph.get("role").map(BTreeSet::len), Some(0), "{graph:?}");
    assert!(
        !graph["pool"].contains("policy") && !graph["pool"].contains("role"),
        "the pool knows nothing of the policy: {:?}",
        graph["pool"]
    );
}

#[test]
fn no_source_file_is_over_the_size_limit() {
    let long: Vec<String> = rust_files(&src())
        .into_iter()
        .filter(|path| !path.starts_with(src().join("bin")))
        .filter_map(|path| {
            let lines = fs::read_to_string(&path)
                .expect("a source file")
                .lines()
                .count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these along their seams: {long:#?}");
}

#[test]
fn every_source_file_opens_with_a_line_saying_what_it_holds() {
    let missing: Vec<String> = rust_files(&src())
        .into_iter()
        .filter(|path| !path.ends_with("lib.rs"))
        .filter(|path| {
            let text = fs::read_to_string(path).expect("a source file");
            !text.starts_with("//! ")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` first line: {missing:#?}"
    );
}
