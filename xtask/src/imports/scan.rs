//! The text side of `xtask imports`: a file's code without comments and literals, its tokens,
//! the paths its `use` trees and its code name, and the file of this crate each path lands in.
//! Not here: the graph and its cycles (`mod.rs`).

use std::collections::{BTreeMap, BTreeSet};

/// The modules a file declares to be files of their own: `mod name;`.
pub(super) fn declared_modules(code: &str) -> Vec<String> {
    tokens(code)
        .windows(3)
        .filter_map(|w| match w {
            [Token::Ident(kw), Token::Ident(name), Token::Punct(';')] if kw == "mod" => {
                Some(name.clone())
            }
            _ => None,
        })
        .collect()
}

/// The module a file under `src/` holds: `lib.rs`/`main.rs` the root, `a/mod.rs` and `a.rs`
/// `a`, `a/b.rs` `a::b`.
pub(super) fn module_path(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code without comments, string and char literals (each replaced by a space), so that a
/// path in a doc comment or a message is not read as a dependency, and without its inline
/// `#[cfg(test)] mod … { … }` blocks: a unit test may call its crate's public entry point
/// (a child's tests calling `config::parse_bytes`), which is no dependency of the code.
pub(super) fn strip(text: &str) -> String {
    without_test_modules(&strip_literals(text))
}

/// `code` (already without comments and literals) without `#[cfg(test)]` inline modules.
fn without_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let head = after.trim_start();
        // Only an inline module is skipped; `#[cfg(test)] mod tests;` (a file) stays.
        let is_inline_mod = head.starts_with("mod ")
            && head
                .find(['{', ';'])
                .is_some_and(|i| head.as_bytes()[i] == b'{');
        if !is_inline_mod {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        let open = after.find('{').expect("checked above");
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn strip_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
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
        } else if c == 'r'
            && matches!(next, Some('#' | '"'))
            && !ident_char(chars.get(i.wrapping_sub(1)))
        {
            // r"…" or r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) == Some(&'"') {
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
                out.push(' ');
                i = j;
            } else {
                out.push(c);
                i += 1;
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else if c == '\'' {
            // A char literal ('a', '\n', '\'') or a lifetime ('a): only the former is skipped.
            let is_char = matches!(
                (next, chars.get(i + 2)),
                (Some('\\'), _) | (Some(_), Some('\''))
            );
            if is_char {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push(' ');
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

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token::PathSep);
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

/// The files `code` (of the module at `module`) depends on.
pub(super) fn dependencies(
    module: &[String],
    code: &str,
    modules: &BTreeMap<Vec<String>, String>,
) -> BTreeSet<String> {
    let toks = tokens(code);
    let mut deps = BTreeSet::new();
    // The module each token is in: the file's, plus inline `mod name { … }` blocks.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let here: Vec<String> = module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(name, _)| name.clone()))
            .collect();
        match &toks[i] {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            Token::Ident(kw) if kw == "mod" => {
                if let (Some(Token::Ident(name)), Some(Token::Punct('{'))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    inline.push((name.clone(), depth));
                    depth += 1;
                    i += 3;
                    continue;
                }
            }
            Token::Ident(kw) if kw == "use" => {
                let end = toks[i..]
                    .iter()
                    .position(|t| *t == Token::Punct(';'))
                    .map_or(toks.len(), |p| i + p);
                for path in use_paths(&toks[i + 1..end]) {
                    if let Some(file) = resolve(&here, &path, modules) {
                        deps.insert(file);
                    }
                }
                i = end;
                continue;
            }
            Token::Ident(first)
                if toks.get(i + 1) == Some(&Token::PathSep)
                    && (i == 0 || toks[i - 1] != Token::PathSep) =>
            {
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while toks.get(j) == Some(&Token::PathSep) {
                    match toks.get(j + 1) {
                        Some(Token::Ident(seg)) => path.push(seg.clone()),
                        _ => break,
                    }
                    j += 2;
                }
                if let Some(file) = resolve(&here, &path, modules) {
                    deps.insert(file);
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    deps
}

/// The paths a `use` tree names, groups expanded: `crate::a::{b, c::D}` gives `crate::a::b`
/// and `crate::a::c::D`.
fn use_paths(toks: &[Token]) -> Vec<Vec<String>> {
    fn walk(toks: &[Token], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut path = prefix.to_vec();
        while *i < toks.len() {
            match &toks[*i] {
                Token::Ident(seg) if seg == "as" => {
                    *i += 2; // `as name`
                }
                Token::Ident(seg) => {
                    path.push(seg.clone());
                    *i += 1;
                }
                Token::PathSep => *i += 1,
                Token::Punct('{') => {
                    *i += 1;
                    loop {
                        walk(toks, i, &path, out);
                        match toks.get(*i) {
                            Some(Token::Punct(',')) => *i += 1,
                            Some(Token::Punct('}')) => {
                                *i += 1;
                                break;
                            }
                            _ => break,
                        }
                        if toks.get(*i) == Some(&Token::Punct('}')) {
                            *i += 1;
                            break;
                        }
                    }
                    return;
                }
                Token::Punct(',' | '}') => break,
                Token::Punct(_) => *i += 1, // `*`, `pub`'s parentheses never reach here
            }
        }
        if path.len() > prefix.len() || !prefix.is_empty() {
            out.push(path);
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    // `pub use`, `pub(crate) use`: the tokens before `use` are not passed in.
    walk(toks, &mut i, &[], &mut out);
    out
}

/// The file a path names, if it names a module of this crate. `here` is the module the path
/// is written in. A path that starts with none of `crate`, `super`, `self` is relative to
/// `here` only when its first segment is a child module of it (`mod child;`), in a `use` as
/// in code.
fn resolve(
    here: &[String],
    path: &[String],
    modules: &BTreeMap<Vec<String>, String>,
) -> Option<String> {
    let mut base: Vec<String>;
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => {
            base = Vec::new();
            rest = &path[1..];
        }
        Some("super") | Some("self") => {
            base = here.to_vec();
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        Some(first) => {
            let mut child = here.to_vec();
            child.push(first.to_owned());
            if !modules.contains_key(&child) {
                return None;
            }
            base = here.to_vec();
        }
        None => return None,
    }
    // The longest prefix of base + rest that is a file's module.
    let full: Vec<String> = base.iter().chain(rest).cloned().collect();
    (0..=full.len())
        .rev()
        .find_map(|n| modules.get(&full[..n]).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules(files: &[&str]) -> BTreeMap<Vec<String>, String> {
        files
            .iter()
            .map(|f| (module_path(f), (*f).to_owned()))
            .collect()
    }

    fn deps(file: &str, code: &str, files: &[&str]) -> Vec<String> {
        dependencies(&module_path(file), &strip(code), &modules(files))
            .into_iter()
            .filter(|d| d != file)
            .collect()
    }

    const FILES: [&str; 6] = [
        "lib.rs",
        "store/mod.rs",
        "store/writer.rs",
        "store/top.rs",
        "alerts/mod.rs",
        "clock.rs",
    ];

    #[test]
    fn reads_use_trees_paths_in_code_and_relative_modules() {
        let code = r#"
            //! Not this: crate::clock
            use crate::{clock::Clock, alerts::{self, Alerts}};
            use super::top::Top as T;
            const S: &str = "crate::never";
            fn f() { crate::store::mod_fn(); }
        "#;
        assert_eq!(
            deps("store/writer.rs", code, &FILES),
            ["alerts/mod.rs", "clock.rs", "store/mod.rs", "store/top.rs"]
        );
        // A parent naming its child module without `self::`.
        let code = "mod writer; pub use writer::Writer; fn g() { top::x(); }";
        assert_eq!(
            deps("store/mod.rs", code, &FILES),
            ["store/top.rs", "store/writer.rs"]
        );
    }

    #[test]
    fn super_inside_an_inline_module_is_the_file_itself() {
        let code = "fn x() {}\nmod inner {\n use super::*;\n use crate::clock;\n}\n";
        assert_eq!(deps("store/top.rs", code, &FILES), ["clock.rs"]);
    }

    #[test]
    fn an_inline_test_module_is_no_dependency_but_a_test_file_is() {
        let code = "use crate::clock;\n#[cfg(test)]\nmod tests {\n use crate::store::writer;\n fn f() { if x { y() } }\n}\n";
        assert_eq!(deps("store/top.rs", code, &FILES), ["clock.rs"]);
    }
}
