//! `xtask imports`: the import graph between the files of each crate, and its cycles. A file
//! depends on another when it names a module of it: `use crate::a::b`, `use super::x`,
//! `use self::x`, a child module's items (`use child::X`, `child::f()`), or a path written out
//! in code (`crate::a::f()`, `super::X`). Two files that depend on each other, directly or
//! through others, are a knot to untie: shared types go to a small module both
//! import. The test at the bottom runs this on the whole workspace, so `cargo test` fails on a
//! new cycle and prints it.
//!
//! Deliberately a text scan, not a compiler pass: comments, strings and char literals are
//! removed first, then paths are read from the tokens. What it cannot see: macros that build
//! paths, and `#[path]` (which the workspace does not use). Not here: dependencies between
//! crates (Cargo.toml says those, and ARCHITECTURE.md the arrows allowed).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

mod scan;

use scan::{declared_modules, dependencies, module_path, strip};

/// The crates whose files are checked, as directories of the workspace.
pub const CRATES: [&str; 6] = [
    "monitor-core",
    "monitord",
    "monitor-agent",
    "monitor-deploy",
    "testkit",
    "xtask",
];

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Print every file's dependencies, not only the cycles.
    #[arg(long)]
    graph: bool,
    /// The workspace to check [default: this one].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    let root = opts
        .root
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    if opts.graph {
        for krate in CRATES {
            for (file, deps) in Graph::of_crate(&root.join(krate))?.edges {
                let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
                println!("{krate}/src/{file} -> {}", deps.join(", "));
            }
        }
    }
    let Report { found, gone } = check(&root)?;
    let mut new = 0;
    for (krate, knot) in &found {
        match known(krate, knot) {
            Some(_) => println!("known cycle in {krate}: {knot}"),
            None => {
                println!("cycle in {krate}: {knot}");
                new += 1;
            }
        }
    }
    for i in &gone {
        println!(
            "gone: the known knot of {} ({}); delete it from KNOWN in xtask/src/imports/mod.rs",
            KNOWN[*i].0,
            KNOWN[*i].1.join(", ")
        );
    }
    if new > 0 || !gone.is_empty() {
        bail!(
            "{new} new import cycle(s) between files, {} known one(s) gone",
            gone.len()
        );
    }
    println!(
        "no new import cycle between the files of {}",
        CRATES.join(", ")
    );
    Ok(())
}

/// Files that depend on each other round a cycle.
#[derive(Debug, PartialEq)]
pub struct Knot {
    /// A shortest way round, the first file repeated at the end.
    pub way_round: Vec<String>,
    /// Every file on a cycle with those.
    pub files: BTreeSet<String>,
}

impl std::fmt::Display for Knot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.way_round.join(" -> "))?;
        if self.files.len() + 1 > self.way_round.len() {
            let files: Vec<&str> = self.files.iter().map(String::as_str).collect();
            write!(f, " (on cycles together: {})", files.join(", "))?;
        }
        Ok(())
    }
}

/// The knots there were when this check was written, and what unties each. A knot found here
/// is allowed only while it stays within these files: a new knot fails the check, and so does
/// an entry here that no longer matches one (delete it then), so the list only shrinks.
pub const KNOWN: &[(&str, &[&str], &str)] = &[];

/// The known entry a knot of `krate` stays within, if any.
pub fn known(krate: &str, knot: &Knot) -> Option<usize> {
    KNOWN.iter().position(|(k, files, _)| {
        *k == krate && knot.files.iter().all(|f| files.contains(&f.as_str()))
    })
}

/// What [`check`] found.
#[derive(Debug)]
pub struct Report {
    /// Every knot of the workspace, with its crate.
    pub found: Vec<(&'static str, Knot)>,
    /// The [`KNOWN`] entries that matched no knot: untied, to be deleted.
    pub gone: Vec<usize>,
}

/// The knots of the workspace at `root`.
pub fn check(root: &Path) -> anyhow::Result<Report> {
    let mut found = Vec::new();
    let mut matched = BTreeSet::new();
    for krate in CRATES {
        for knot in Graph::of_crate(&root.join(krate))?.knots() {
            if let Some(i) = known(krate, &knot) {
                matched.insert(i);
            }
            found.push((krate, knot));
        }
    }
    let gone = (0..KNOWN.len()).filter(|i| !matched.contains(i)).collect();
    Ok(Report { found, gone })
}

/// One crate's files (paths relative to `src/`) and which files each depends on.
#[derive(Debug, Default)]
pub struct Graph {
    pub edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn of_crate(dir: &Path) -> anyhow::Result<Graph> {
        let src = dir.join("src");
        let mut paths = Vec::new();
        collect_rs(&src, &mut paths)?;
        let mut files = BTreeMap::new();
        for path in &paths {
            let rel = path.strip_prefix(&src)?.to_string_lossy().into_owned();
            let text =
                fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            files.insert(rel, strip(&text));
        }
        let mut graph = Graph::default();
        for tree in crate_trees(&files) {
            let modules: BTreeMap<Vec<String>, String> = tree
                .iter()
                .map(|rel| (module_path(rel), rel.clone()))
                .collect();
            for rel in &tree {
                let deps = dependencies(&module_path(rel), &files[rel], &modules);
                let deps = deps.into_iter().filter(|d| d != rel).collect();
                graph.edges.insert(rel.clone(), deps);
            }
        }
        Ok(graph)
    }

    /// Each group of files that depend on each other round a cycle, once.
    pub fn knots(&self) -> Vec<Knot> {
        let mut seen = BTreeSet::new();
        let mut knots = Vec::new();
        for start in self.edges.keys() {
            if seen.contains(start) {
                continue;
            }
            if let Some(way_round) = self.shortest_cycle_through(start) {
                let files = self.group_of(start);
                seen.extend(files.iter().cloned());
                knots.push(Knot { way_round, files });
            }
        }
        knots
    }

    fn reachable(&self, from: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(file) = todo.pop() {
            for next in self.edges.get(&file).into_iter().flatten() {
                if out.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        out
    }

    /// The files on some cycle with `file`.
    fn group_of(&self, file: &str) -> BTreeSet<String> {
        self.reachable(file)
            .into_iter()
            .filter(|other| self.reachable(other).contains(file))
            .collect()
    }

    fn shortest_cycle_through(&self, start: &str) -> Option<Vec<String>> {
        let mut previous: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = VecDeque::from([start.to_owned()]);
        while let Some(file) = queue.pop_front() {
            for next in self.edges.get(&file).into_iter().flatten() {
                if next == start {
                    // Back from `file` to start's successor, then turned round.
                    let mut back = Vec::new();
                    let mut at = file.clone();
                    while at != start {
                        back.push(at.clone());
                        at = previous[&at].clone();
                    }
                    back.reverse();
                    let mut cycle = vec![start.to_owned()];
                    cycle.extend(back);
                    cycle.push(start.to_owned());
                    return Some(cycle);
                }
                if !previous.contains_key(next) && next != start {
                    previous.insert(next.clone(), file.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        None
    }
}

/// The files of each crate root in `src/`: a package with both `lib.rs` and `main.rs` is two
/// crates, the binary holding `main.rs` and the modules it declares itself (`mod cli;`), the
/// library the rest; `crate::` means a different file in each.
fn crate_trees(files: &BTreeMap<String, String>) -> Vec<Vec<String>> {
    if !(files.contains_key("lib.rs") && files.contains_key("main.rs")) {
        return vec![files.keys().cloned().collect()];
    }
    let by_module: BTreeMap<Vec<String>, &String> = files
        .keys()
        .filter(|rel| *rel != "lib.rs")
        .map(|rel| (module_path(rel), rel))
        .collect();
    let mut bin = BTreeSet::from(["main.rs".to_owned()]);
    let mut todo = vec!["main.rs".to_owned()];
    while let Some(rel) = todo.pop() {
        for child in declared_modules(&files[&rel]) {
            let mut path = module_path(&rel);
            path.push(child);
            if let Some(file) = by_module.get(&path)
                && bin.insert((*file).clone())
            {
                todo.push((*file).clone());
            }
        }
    }
    let lib = files
        .keys()
        .filter(|rel| !bin.contains(*rel))
        .cloned()
        .collect();
    vec![bin.into_iter().collect(), lib]
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cycle_and_prints_it_in_walking_order() {
        let mut g = Graph::default();
        let edge = |g: &mut Graph, a: &str, b: &str| {
            g.edges.entry(a.into()).or_default().insert(b.into());
            g.edges.entry(b.into()).or_default();
        };
        edge(&mut g, "a.rs", "b.rs");
        edge(&mut g, "b.rs", "c.rs");
        edge(&mut g, "c.rs", "a.rs");
        edge(&mut g, "c.rs", "d.rs");
        let text = |g: &Graph| g.knots().iter().map(Knot::to_string).collect::<Vec<_>>();
        assert_eq!(text(&g), ["a.rs -> b.rs -> c.rs -> a.rs"]);
        edge(&mut g, "d.rs", "b.rs");
        assert_eq!(
            text(&g),
            ["a.rs -> b.rs -> c.rs -> a.rs (on cycles together: a.rs, b.rs, c.rs, d.rs)"]
        );
        let mut g = Graph::default();
        edge(&mut g, "a.rs", "b.rs");
        edge(&mut g, "b.rs", "c.rs");
        assert!(g.knots().is_empty());
    }

    /// The workspace itself: no file imports a file that imports it back, beyond the knots
    /// [`KNOWN`] lists.
    #[test]
    fn no_new_import_cycle_between_the_files_of_any_crate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let Report { found, gone } = check(&root).unwrap();
        let new: Vec<String> = found
            .iter()
            .filter(|(krate, knot)| known(krate, knot).is_none())
            .map(|(krate, knot)| format!("{krate}: {knot}"))
            .collect();
        assert!(
            new.is_empty(),
            "import cycles between files (move what both need into a small module both \
             import):\n{}",
            new.join("\n")
        );
        let gone: Vec<String> = gone.iter().map(|i| KNOWN[*i].1.join(", ")).collect();
        assert!(
            gone.is_empty(),
            "these known knots are untied: delete them from KNOWN: {gone:?}"
        );
    }
}
