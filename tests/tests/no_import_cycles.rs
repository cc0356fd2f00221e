//! The imports inside `cloud-hub/src` and inside the layers `app` and
//! `store` of `cloud-hub/src` and `edge-node/src/app` have no circles
//! (issue 9): the top-level modules of each (a module with its submodules:
//! `payment` is `payment.rs` and `payment/*.rs`) form a DAG.
//!
//! A module imports another when its source names `crate::<other>` (for a
//! layer's modules, `crate::<layer>::<other>`, e.g. `crate::app::orders`),
//! in code or in doc links alike, outside its `#[cfg(test)] mod tests`
//! block. Calling a method of `Hub` that another module's `impl Hub`
//! defines is not an import. Plain string scanning: a failure names each
//! circle and one reference (file and line) on each of its edges.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// One reference of a module to another: where it is and what it names.
#[derive(Debug, Clone)]
struct Reference {
    file: String,
    line: usize,
    path: String,
}

/// The import graph of one tree: top-level module -> imported module ->
/// the first reference found.
type Graph = BTreeMap<String, BTreeMap<String, Reference>>;

/// The top-level module a file belongs to, for files under `sub` (a layer:
/// `app` or `store`) or, without `sub`, all files; `None` for the crate's roots
/// (`lib.rs`, `main.rs`, `mod.rs`) and files outside `sub`.
fn top_module(rel: &str, sub: Option<&str>) -> Option<String> {
    let stem = rel.strip_suffix(".rs")?;
    let mut parts: Vec<&str> = stem.split('/').collect();
    if let Some(sub) = sub {
        if parts.first() != Some(&sub) {
            return None;
        }
        parts.remove(0);
    }
    let top = *parts.first()?;
    (!matches!(top, "lib" | "main" | "mod")).then(|| top.to_owned())
}

/// `src` up to its `#[cfg(test)] mod tests {` block, if it has one.
fn without_tests(src: &str) -> &str {
    let mut from = 0;
    while let Some(i) = src[from..].find("#[cfg(test)]") {
        let at = from + i;
        let rest = src[at + "#[cfg(test)]".len()..].trim_start();
        if let Some(rest) = rest.strip_prefix("mod tests")
            && rest.trim_start().starts_with('{')
        {
            return &src[..at];
        }
        from = at + 1;
    }
    src
}

/// The import graph of `files` (path relative to the crate's `src`, text),
/// references written `<prefix><module>` (`crate::` or `crate::app::`).
fn graph(files: &[(String, String)], sub: Option<&str>) -> Graph {
    let prefix = match sub {
        Some(s) => format!("crate::{s}::"),
        None => "crate::".to_owned(),
    };
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|(rel, _)| top_module(rel, sub))
        .collect();
    let mut g = Graph::new();
    for m in &modules {
        g.entry(m.clone()).or_default();
    }
    for (rel, src) in files {
        let Some(from) = top_module(rel, sub) else {
            continue;
        };
        let code = without_tests(src);
        for (n, line) in code.lines().enumerate() {
            let mut rest = line;
            while let Some(i) = rest.find(&prefix) {
                let after = &rest[i + prefix.len()..];
                let end = after
                    .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                    .unwrap_or(after.len());
                let to = &after[..end];
                if to != from && modules.contains(to) {
                    let path_end = after
                        .find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == ':'))
                        .unwrap_or(after.len());
                    g.entry(from.clone())
                        .or_default()
                        .entry(to.to_owned())
                        .or_insert_with(|| Reference {
                            file: rel.clone(),
                            line: n + 1,
                            path: format!("{prefix}{}", &after[..path_end]),
                        });
                }
                rest = after;
            }
        }
    }
    g
}

/// The strongly connected components of more than one module (Tarjan).
fn cyclic_components(g: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        g: &'a Graph,
        next: usize,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            let g = self.g;
            for w in g[v].keys() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    comp.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        g,
        next: 0,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

/// One circle through `comp`'s first module (the shortest back to it), as
/// lines `a -> b  (file:line: crate::b::x)`.
fn describe(g: &Graph, comp: &[String]) -> String {
    let inside: BTreeSet<&str> = comp.iter().map(String::as_str).collect();
    let start = comp[0].as_str();
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    let mut last = None;
    'search: while let Some(v) = queue.pop_front() {
        for w in g[v].keys().map(String::as_str) {
            if !inside.contains(w) {
                continue;
            }
            if w == start {
                last = Some(v);
                break 'search;
            }
            if !came_from.contains_key(w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    let mut circle = vec![start];
    let mut v = last.expect("a strongly connected component has a circle");
    while v != start {
        circle.push(v);
        v = came_from[v];
    }
    circle.push(start);
    let n = circle.len();
    circle[1..n - 1].reverse();
    let mut out = format!(
        "circle among [{}]: {}\n",
        comp.join(", "),
        circle.join(" -> ")
    );
    for pair in circle.windows(2) {
        let r = &g[pair[0]][pair[1]];
        out += &format!(
            "  {} -> {}  ({}:{}: {})\n",
            pair[0], pair[1], r.file, r.line, r.path
        );
    }
    out
}

/// The `.rs` files under `root`, as (path relative to `root`, text).
fn sources(root: &Path) -> Vec<(String, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = std::fs::read_to_string(&p)
                    .unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                out.push((rel, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// The circles of a tree, described; empty when its modules form a DAG.
fn circles(files: &[(String, String)], sub: Option<&str>) -> Vec<String> {
    let g = graph(files, sub);
    cyclic_components(&g)
        .iter()
        .map(|comp| describe(&g, comp))
        .collect()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn assert_no_circles(src: &Path, sub: Option<&str>) {
    let files = sources(src);
    let counted = files
        .iter()
        .filter(|(rel, _)| top_module(rel, sub).is_some())
        .count();
    assert!(
        counted > 5,
        "{}{} holds too few sources: wrong path?",
        src.display(),
        sub.map(|s| format!("/{s}")).unwrap_or_default()
    );
    let found = circles(&files, sub);
    assert!(
        found.is_empty(),
        "the modules under {}{} import each other in circles:\n{}",
        src.display(),
        sub.map(|s| format!("/{s}")).unwrap_or_default(),
        found.concat()
    );
}

#[test]
fn the_hubs_modules_import_each_other_in_no_circle() {
    assert_no_circles(&workspace().join("cloud-hub/src"), None);
}

#[test]
fn the_hubs_use_cases_import_each_other_in_no_circle() {
    assert_no_circles(&workspace().join("cloud-hub/src"), Some("app"));
}

#[test]
fn the_hubs_storage_modules_import_each_other_in_no_circle() {
    assert_no_circles(&workspace().join("cloud-hub/src"), Some("store"));
}

#[test]
fn the_edge_apps_modules_import_each_other_in_no_circle() {
    assert_no_circles(&workspace().join("edge-node/src"), Some("app"));
}

fn file(rel: &str, text: &str) -> (String, String) {
    (rel.to_owned(), text.to_owned())
}

/// The check can fail: a two-module circle is reported with a reference on
/// each edge; a test block, a crate root and a self-reference count for
/// nothing.
#[test]
fn a_two_module_circle_is_reported_with_its_references() {
    let files = vec![
        file("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
        file("a.rs", "//! A.\n\nuse crate::b::Thing;\n"),
        file(
            "b/inner.rs",
            "fn f() {\n    crate::a::g(crate::b::own());\n}\n",
        ),
        file("b.rs", "pub mod inner;\n"),
        file(
            "c.rs",
            "use crate::a::g;\n\n#[cfg(test)]\nmod tests {\n    use crate::c::x;\n}\n",
        ),
    ];
    let found = circles(&files, None);
    assert_eq!(found.len(), 1, "{found:?}");
    let text = &found[0];
    assert!(text.contains("circle among [a, b]: a -> b -> a"), "{text}");
    assert!(text.contains("a -> b  (a.rs:3: crate::b::Thing)"), "{text}");
    assert!(
        text.contains("b -> a  (b/inner.rs:2: crate::a::g)"),
        "{text}"
    );

    // c -> a alone is no circle; nor is a reference from c's tests to a
    let dag = vec![
        file("a.rs", "fn g() {}\n"),
        file(
            "c.rs",
            "use crate::a::g;\n#[cfg(test)]\nmod tests {\n    crate::c::x();\n}\n",
        ),
        file(
            "a/more.rs",
            "#[cfg(test)]\nmod tests {\n    use crate::c::y;\n}\n",
        ),
    ];
    assert!(circles(&dag, None).is_empty());
}

/// Under a layer (`app`), only `crate::app::<m>` references count, and
/// `app.rs` (the layer's root) is no module of the graph.
#[test]
fn under_a_layer_only_its_own_paths_count() {
    let files = vec![
        file("app.rs", "pub mod x;\npub mod y;\nuse crate::app::x;\n"),
        file("app/x.rs", "use crate::app::y::f;\n"),
        file("app/y.rs", "use crate::app::x::g;\nuse crate::store::x;\n"),
        file("store.rs", "use crate::app::y;\n"),
    ];
    let found = circles(&files, Some("app"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("x -> y -> x"), "{}", found[0]);
    let no_back = vec![
        file("app/x.rs", "use crate::app::y::f;\n"),
        file("app/y.rs", "use crate::store::x;\n"),
    ];
    assert!(circles(&no_back, Some("app")).is_empty());
}
