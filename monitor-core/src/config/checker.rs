//! The [`Checker`]: where every check of config.xml reports, so one run finds every problem,
//! each with the file, the line and the element; and the small checks shared by the
//! elements' validators (attributes known, values, paths, files others may read).
//!
//! Not here: which elements and attributes exist (see [`super::validate`] and its siblings).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::model::{Audience, Config, Diagnostic, Invalid, Loaded, Severity};
use super::parse::{QUOTE_HINT, RawElement, TYPOGRAPHIC_QUOTES};
use super::values::{self, suggest};

/// Collects diagnostics; every check reports here and carries on, so one run finds everything.
pub(super) struct Checker {
    file: String,
    dir: PathBuf,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Files already warned about, so 500 clients sharing one key from `<defaults>` warn once.
    warned_paths: HashSet<PathBuf>,
    /// Line and element of the first `password` attribute: the file then holds a secret.
    password_at: Option<(u32, String)>,
}

impl Checker {
    pub fn new(path: &Path) -> Checker {
        Checker {
            file: path.display().to_string(),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            errors: Vec::new(),
            warnings: Vec::new(),
            warned_paths: HashSet::new(),
            password_at: None,
        }
    }

    fn diagnostic(
        &self,
        severity: Severity,
        line: u32,
        element: &str,
        message: String,
    ) -> Diagnostic {
        Diagnostic {
            severity,
            audience: Audience::Everyone,
            file: self.file.clone(),
            line,
            element: element.to_string(),
            message,
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub fn error(&mut self, el: &RawElement, message: impl Into<String>) {
        self.error_at(el.line, &el.name, message);
    }

    pub fn error_at(&mut self, line: u32, element: &str, message: impl Into<String>) {
        let d = self.diagnostic(Severity::Error, line, element, message.into());
        self.errors.push(d);
    }

    pub fn warn_at(&mut self, line: u32, element: &str, message: impl Into<String>) {
        let d = self.diagnostic(Severity::Warning, line, element, message.into());
        self.warnings.push(d);
    }

    /// `attr "value" <problem>`, with the typographic-quote hint when the value has such quotes.
    pub fn bad_value(&mut self, el: &RawElement, attr: &str, value: &str, problem: String) {
        let mut message = format!("`{attr}` {value:?} {problem}");
        if value.contains(TYPOGRAPHIC_QUOTES) {
            message.push_str("; ");
            message.push_str(QUOTE_HINT);
        }
        self.error(el, message);
    }

    /// The checked value, or `None` after reporting why it is bad.
    pub fn value<T>(
        &mut self,
        el: &RawElement,
        attr: &str,
        text: &str,
        r: values::Checked<T>,
    ) -> Option<T> {
        r.map_err(|problem| self.bad_value(el, attr, text, problem))
            .ok()
    }

    /// A path attribute resolved against config.xml's directory; an empty one is an error.
    pub fn path_attr(&mut self, el: &RawElement, attr: &str) -> Option<PathBuf> {
        let v = el.attr(attr)?;
        if v.trim().is_empty() {
            self.bad_value(el, attr, v, "is empty: expected a file path".into());
            return None;
        }
        Some(self.resolve(v))
    }

    pub fn resolve(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }

    pub fn saw_password(&mut self, el: &RawElement) {
        if self.password_at.is_none() {
            self.password_at = Some((el.line, el.name.clone()));
        }
    }

    /// Warns (once per file) when a file named by `attr` is missing or unreadable by this user.
    /// For a file only `audience` reads, "exists but unreadable" concerns only it (a missing
    /// file or a directory is wrong for everyone).
    pub fn warn_unreadable(
        &mut self,
        el: &RawElement,
        attr: &str,
        path: &Path,
        audience: Audience,
    ) {
        if !self.warned_paths.insert(path.to_path_buf()) {
            return;
        }
        let (problem, audience) = match std::fs::File::open(path) {
            Ok(_) if path.is_dir() => {
                ("is a directory, not a file".to_string(), Audience::Everyone)
            }
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ("does not exist".into(), Audience::Everyone)
            }
            Err(e) => (format!("cannot be read by this user ({e})"), audience),
        };
        let mut d = self.diagnostic(
            Severity::Warning,
            el.line,
            &el.name,
            format!("`{attr}` file {} {problem}", path.display()),
        );
        d.audience = audience;
        self.warnings.push(d);
    }

    /// Reports attributes not in `known`, suggesting the closest known name for a likely typo.
    pub fn check_attrs(&mut self, el: &RawElement, known: &[&str]) {
        self.check_attrs_except(el, known, &[]);
    }

    /// [`check_attrs`](Self::check_attrs), leaving out `skip`, which the caller reports itself.
    pub fn check_attrs_except(&mut self, el: &RawElement, known: &[&str], skip: &[&str]) {
        for attr in &el.attrs {
            if known.contains(&attr.name.as_str()) || skip.contains(&attr.name.as_str()) {
                continue;
            }
            let hint = match suggest(&attr.name, known) {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            let expected = if known.is_empty() {
                "it takes no attributes".to_string()
            } else {
                format!("expected one of {}", known.join(", "))
            };
            self.error(
                el,
                format!("unknown attribute `{}`: {hint}{expected}", attr.name),
            );
        }
    }

    pub fn unknown_element(&mut self, el: &RawElement, parent: &str, known: &[&str]) {
        let hint = match suggest(&el.name, known) {
            Some(s) => format!("did you mean <{s}>? "),
            None => String::new(),
        };
        let expected = known.iter().map(|k| format!("<{k}>")).collect::<Vec<_>>();
        self.error_at(
            el.line,
            parent,
            format!(
                "unknown element <{}> inside <{parent}>: {hint}expected {}",
                el.name,
                expected.join(", ")
            ),
        );
    }

    /// An element that takes neither child elements nor text.
    pub fn check_leaf(&mut self, el: &RawElement) {
        for child in &el.children {
            self.error_at(
                child.line,
                &el.name,
                format!(
                    "<{}> cannot hold a <{}> element: <{}> takes only attributes",
                    el.name, child.name, el.name
                ),
            );
        }
        self.check_text(el);
    }

    pub fn check_text(&mut self, el: &RawElement) {
        if let Some(line) = el.stray_text {
            self.error_at(
                line,
                &el.name,
                format!("unexpected text inside <{}>: values go in attributes, e.g. name=\"value\"; notes go in <!-- comments -->", el.name),
            );
        }
    }

    /// Warns when the file holds a password and any user may read it.
    pub fn check_file_mode(&mut self, path: &Path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let Some((line, element)) = self.password_at.clone() else {
                return;
            };
            let Ok(meta) = std::fs::metadata(path) else {
                return;
            };
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o004 != 0 {
                self.warn_at(
                    line,
                    &element,
                    format!(
                        "the file holds passwords and every user can read it (mode {mode:04o}); \
                         run chmod o-r on it, or use password-file / key"
                    ),
                );
            }
        }
    }

    pub fn finish(mut self, config: Config) -> Result<Loaded, Invalid> {
        self.errors.sort_by_key(|d| d.line);
        self.warnings.sort_by_key(|d| d.line);
        if self.errors.is_empty() {
            Ok(Loaded {
                config,
                warnings: self.warnings,
            })
        } else {
            Err(Invalid {
                errors: self.errors,
                warnings: self.warnings,
            })
        }
    }
}
