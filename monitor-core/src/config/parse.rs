//! Stage one: config.xml's bytes to a tree of raw elements, each with the line of its start tag.
//!
//! This stage only decides whether the file is well-formed XML (UTF-8, BOM, CRLF, comments, either
//! quote style and the five predefined entities all fine) and turns roxmltree's errors into
//! messages a person can act on. A DTD is refused before anything in it is expanded. What the
//! elements and attributes *mean* is [`validate`](super::validate)'s business, not this file's.

use std::path::Path;

use roxmltree::{Document, Node, ParsingOptions, TextPos};

use super::model::{Audience, Diagnostic, Invalid, Severity};

/// The whole file as elements; nothing checked beyond XML well-formedness.
#[derive(Debug)]
pub(super) struct RawConfig {
    pub root: RawElement,
}

#[derive(Debug)]
pub(super) struct RawElement {
    /// Local name, e.g. `client`.
    pub name: String,
    /// Line of the start tag, 1-based; attributes report this line too.
    pub line: u32,
    pub attrs: Vec<RawAttr>,
    pub children: Vec<RawElement>,
    /// Line of the first non-blank text directly inside this element, which config.xml never has.
    pub stray_text: Option<u32>,
}

#[derive(Debug)]
pub(super) struct RawAttr {
    pub name: String,
    pub value: String,
}

impl RawElement {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }
}

/// Typographic quotes that word processors and chat tools put where `"` or `'` belong.
pub(super) const TYPOGRAPHIC_QUOTES: [char; 6] = ['‘', '’', '“', '”', '„', '‚'];

pub(super) const QUOTE_HINT: &str = "hint: typographic quotes (’ ‘ “ ”) are not XML quotes; \
     write attribute values in straight quotes, \"…\" or '…'";

pub(super) fn parse(bytes: &[u8], path: &Path) -> Result<RawConfig, Invalid> {
    let file = path.display().to_string();
    let fail = |line: u32, element: String, message: String| Invalid {
        errors: vec![Diagnostic {
            severity: Severity::Error,
            audience: Audience::Everyone,
            file: file.clone(),
            line,
            element,
            message,
        }],
        warnings: Vec::new(),
    };
    let text = decode(bytes).map_err(|(line, message)| fail(line, String::new(), message))?;
    let options = ParsingOptions {
        allow_dtd: false,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options).map_err(|e| {
        let (line, message) = describe(text, &e);
        fail(line, element_at(text, &e), message)
    })?;
    let lines = LineIndex::new(text);
    Ok(RawConfig {
        root: convert(doc.root_element(), &lines),
    })
}

/// UTF-8 with or without a BOM; anything else is refused with what to do about it.
fn decode(bytes: &[u8]) -> Result<&str, (u32, String)> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err((
            1,
            "the file is UTF-16; save it as UTF-8 (with or without BOM)".into(),
        ));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        (
            line as u32,
            "the file is not valid UTF-8 here; save it as UTF-8".into(),
        )
    })
}

fn convert(node: Node<'_, '_>, lines: &LineIndex) -> RawElement {
    let mut children = Vec::new();
    let mut stray_text = None;
    for child in node.children() {
        if child.is_element() {
            children.push(convert(child, lines));
        } else if child.is_text() && stray_text.is_none() {
            let text = child.text().unwrap_or_default();
            if let Some(offset) = text.find(|c: char| !c.is_whitespace()) {
                stray_text = Some(lines.line_of(child.range().start + offset));
            }
        }
    }
    RawElement {
        name: node.tag_name().name().to_string(),
        line: lines.line_of(node.range().start),
        attrs: node
            .attributes()
            .map(|a| RawAttr {
                name: a.name().to_string(),
                value: a.value().to_string(),
            })
            .collect(),
        children,
        stray_text,
    }
}

/// Byte offset to line number in O(log n); roxmltree's own `text_pos_at` rescans from the start
/// each time, which a 500-host file would feel.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn line_of(&self, offset: usize) -> u32 {
        self.starts.partition_point(|&s| s <= offset) as u32
    }
}

/// A roxmltree error as `(line, message)`, worded for someone editing config.xml by hand.
fn describe(text: &str, error: &roxmltree::Error) -> (u32, String) {
    use roxmltree::Error as E;
    let last_line = text.lines().count().max(1) as u32;
    let line = error.pos().row;
    let (line, mut message) = match error {
        E::UnexpectedCloseTag(expected, actual, _) => {
            let opened = open_elements(text, offset_of(text, error.pos()))
                .into_iter()
                .rev()
                .find(|(name, _)| name == expected)
                .map(|(_, l)| format!(" (opened at line {l})"))
                .unwrap_or_default();
            (
                line,
                format!(
                    "`</{actual}>` found where `<{expected}>`{opened} must be closed first: \
                     add `</{expected}>` or end that start tag with `/>`"
                ),
            )
        }
        E::UnclosedRootNode => {
            let open = open_elements(text, text.len());
            let what = match open.last() {
                Some((name, l)) => format!("`<{name}>` opened at line {l} is never closed"),
                None => "an element is never closed".to_string(),
            };
            let close = open
                .last()
                .map(|(n, _)| format!("`</{n}>`"))
                .unwrap_or_default();
            (
                last_line,
                format!("{what}: add {close} or end its start tag with `/>`"),
            )
        }
        E::DtdDetected => (
            doctype_line(text),
            "a DTD (`<!DOCTYPE …>`) is not allowed in config.xml: entity definitions are \
             refused, never expanded; remove it"
                .into(),
        ),
        E::NoRootNode => (
            last_line,
            "no element found: expected a `<client …>` element, or a root element such as \
             `<monitor>` holding `<server>`, `<smtp>`, `<defaults>` and `<client>` elements"
                .into(),
        ),
        E::UnknownEntityReference(name, _) => (
            line,
            format!(
                "unknown entity `&{name};`: only &amp; &lt; &gt; &quot; &apos; and &#…; exist \
                 (a literal & is written &amp;)"
            ),
        ),
        E::MalformedEntityReference(_) => (
            line,
            "a bare `&`: write a literal & as `&amp;` (in a password too)".into(),
        ),
        E::InvalidAttributeValue(_) => (
            line,
            "`<` inside an attribute value: write it as `&lt;`".into(),
        ),
        E::DuplicatedAttribute(name, _) => (
            line,
            format!("attribute `{name}` is given twice in one element; keep one"),
        ),
        E::InvalidComment(_) => (line, "a comment cannot contain `--` or end with `-`".into()),
        E::UnexpectedDeclaration(_) => (
            line,
            "the XML declaration `<?xml …?>` must be the very first thing in the file".into(),
        ),
        E::InvalidChar2(expected, _, _) if expected.contains("quote") => (
            line,
            "an attribute value must be in straight quotes, e.g. ip=\"10.0.0.1\" or ip='10.0.0.1'"
                .into(),
        ),
        E::UnknownToken(pos) if after_root(text, *pos) => (
            line,
            "content after the root element has closed: config.xml has one root element \
             (e.g. <monitor>) that holds everything else"
                .into(),
        ),
        E::UnexpectedEndOfStream => (
            last_line,
            "the file ends inside a tag, comment or attribute value; is a `>` or a quote missing?"
                .into(),
        ),
        other => {
            // roxmltree's own wording ends with " at ROW:COL"; the line is already in front.
            let text = other.to_string();
            let text = match text.rfind(" at ") {
                Some(i) => &text[..i],
                None => &text,
            };
            // It quotes the offending character as it is: a newline there would split the
            // one-line diagnostic.
            let text: String = text
                .chars()
                .map(|c| match c {
                    c if c.is_control() => c.escape_default().to_string(),
                    c => c.to_string(),
                })
                .collect();
            (line, format!("malformed XML: {text}"))
        }
    };
    let has_quotes = text
        .lines()
        .nth(line.saturating_sub(1) as usize)
        .is_some_and(|l| l.contains(TYPOGRAPHIC_QUOTES));
    if has_quotes {
        message.push_str("; ");
        message.push_str(QUOTE_HINT);
    }
    (line, message)
}

/// The element a syntax error is in, for the `element:` part of the message: the one left open
/// at a bad end tag, else the last start tag before the error; empty for file-level problems.
fn element_at(text: &str, error: &roxmltree::Error) -> String {
    use roxmltree::Error as E;
    match error {
        E::UnexpectedCloseTag(expected, _, _) => return local(expected).to_string(),
        E::UnclosedRootNode => {
            return open_elements(text, text.len())
                .pop()
                .map(|(name, _)| name)
                .unwrap_or_default();
        }
        E::DtdDetected | E::NoRootNode | E::UnexpectedEndOfStream | E::InvalidComment(_) => {
            return String::new();
        }
        E::UnknownToken(pos) if after_root(text, *pos) => return String::new(),
        _ => {}
    }
    let offset = offset_of(text, error.pos());
    let before = &text[..offset];
    let mut end = before.len();
    while let Some(lt) = before[..end].rfind('<') {
        let name: String = before[lt + 1..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
            .collect();
        if !name.is_empty() {
            return local(&name).to_string();
        }
        end = lt;
    }
    String::new()
}

/// Whether the root element has opened and closed before `pos`.
fn after_root(text: &str, pos: TextPos) -> bool {
    let offset = offset_of(text, pos);
    let before = &text[..offset];
    let seen_element = before
        .match_indices('<')
        .any(|(i, _)| before[i + 1..].starts_with(char::is_alphabetic));
    seen_element && open_elements(text, offset).is_empty()
}

/// Byte offset of roxmltree's 1-based row and (character) column.
fn offset_of(text: &str, pos: TextPos) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(pos.row.saturating_sub(1) as usize)
        .map(str::len)
        .sum();
    text[line_start..]
        .char_indices()
        .nth(pos.col.saturating_sub(1) as usize)
        .map_or(text.len(), |(i, _)| line_start + i)
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// Elements still open at byte offset `stop`, outermost first, as (name, line).
///
/// roxmltree reports an unclosed element only at the end tag that does not match; the line where
/// the element *opened* is what the person needs, so this re-walks the (well-formed so far) text.
fn open_elements(text: &str, stop: usize) -> Vec<(String, u32)> {
    let mut stack: Vec<(String, u32)> = Vec::new();
    let bytes = text.as_bytes();
    let mut line = 1u32;
    let mut i = 0;
    let count_lines =
        |from: usize, to: usize| bytes[from..to].iter().filter(|&&b| b == b'\n').count() as u32;
    while i < stop.min(bytes.len()) {
        if bytes[i] != b'<' {
            if bytes[i] == b'\n' {
                line += 1;
            }
            i += 1;
            continue;
        }
        let rest = &text[i..];
        let end = if rest.starts_with("<!--") {
            rest.find("-->").map(|e| e + 3)
        } else if rest.starts_with("<![CDATA[") {
            rest.find("]]>").map(|e| e + 3)
        } else if rest.starts_with("<?") {
            rest.find("?>").map(|e| e + 2)
        } else if rest.starts_with("</") {
            stack.pop();
            rest.find('>').map(|e| e + 1)
        } else if rest.starts_with("<!") {
            rest.find('>').map(|e| e + 1)
        } else {
            let end = tag_end(rest);
            if let Some(end) = end {
                let name: String = rest[1..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '/' && *c != '>')
                    .collect();
                let name = local(&name).to_string();
                if !rest[..end].ends_with("/>") {
                    stack.push((name, line));
                }
            }
            end
        };
        let Some(end) = end else { break };
        line += count_lines(i, i + end);
        i += end;
    }
    stack
}

/// Length of a start tag up to and including its `>`, skipping quoted attribute values.
fn tag_end(tag: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in tag.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn doctype_line(text: &str) -> u32 {
    // Skip comments so a commented-out example DOCTYPE is not the one blamed.
    let mut rest = text;
    let mut consumed = 0;
    loop {
        let doctype = rest.find("<!DOCTYPE");
        let comment = rest.find("<!--");
        match (doctype, comment) {
            (Some(d), Some(c)) if c < d => {
                let end = rest[c..]
                    .find("-->")
                    .map(|e| c + e + 3)
                    .unwrap_or(rest.len());
                consumed += end;
                rest = &rest[end..];
            }
            (Some(d), _) => {
                return 1 + text[..consumed + d].matches('\n').count() as u32;
            }
            (None, _) => return 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<RawConfig, Invalid> {
        parse(text.as_bytes(), Path::new("c.xml"))
    }

    fn error_of(text: &str) -> Diagnostic {
        parse_str(text).unwrap_err().errors.remove(0)
    }

    #[test]
    fn lines_and_attributes_survive_bom_crlf_and_quotes() {
        let text = "\u{FEFF}<?xml version=\"1.0\"?>\r\n<monitor>\r\n  <!-- c -->\r\n  \
                    <client ip='a' password=\"x&amp;y&lt;\"/>\r\n</monitor>\r\n";
        let raw = parse_str(text).unwrap();
        assert_eq!(raw.root.name, "monitor");
        assert_eq!(raw.root.line, 2);
        let client = &raw.root.children[0];
        assert_eq!(client.line, 4);
        assert_eq!(client.attr("ip"), Some("a"));
        assert_eq!(client.attr("password"), Some("x&y<"));
    }

    #[test]
    fn unclosed_element_names_both_lines() {
        let e = error_of("<monitor>\n  <client ip=\"a\">\n    <alert/>\n</monitor>\n");
        assert_eq!(e.line, 4);
        assert!(e.message.contains("opened at line 2"), "{}", e.message);
        assert_eq!(e.element, "client");
        // Opened and mis-closed on one line, after another element on that line.
        let e = error_of("<monitor>\n<client ip=\"a\"><alert type=\"cpu\"></client>\n</monitor>");
        assert_eq!((e.line, e.element.as_str()), (2, "alert"));
        assert!(
            e.message.contains("`<alert>` (opened at line 2)"),
            "{}",
            e.message
        );
    }

    #[test]
    fn never_closed_root_names_its_line() {
        let e = error_of("<monitor>\n  <client ip=\"a\"/>\n");
        assert!(
            e.message.contains("`<monitor>` opened at line 1"),
            "{}",
            e.message
        );
    }

    #[test]
    fn dtd_is_refused_at_its_line() {
        let e = error_of(
            "<?xml version=\"1.0\"?>\n<!-- <!DOCTYPE no> -->\n<!DOCTYPE x [\n<!ENTITY a \"aaaa\">\n]>\n<x>&a;</x>\n",
        );
        assert_eq!(e.line, 3);
        assert!(e.message.contains("DTD"));
    }

    #[test]
    fn typographic_quotes_get_a_hint() {
        let e = error_of("<client ip=’10.0.0.1’ username=\"u\"/>\n");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("typographic quotes"), "{}", e.message);
    }

    #[test]
    fn utf16_and_bad_utf8_are_named() {
        assert!(
            parse(b"\xFF\xFE<\x00", Path::new("c")).unwrap_err().errors[0]
                .message
                .contains("UTF-16")
        );
        let e = parse(b"<a>\n\xFF</a>", Path::new("c"))
            .unwrap_err()
            .errors
            .remove(0);
        assert_eq!(e.line, 2);
    }

    #[test]
    fn a_newline_quoted_by_roxmltree_stays_on_one_line() {
        // fuzz/artifacts/config: roxmltree's "expected '>' not '\n'" held a real newline.
        let e = error_of("<monitor>\n<server/\n>\n</monitor>\n");
        assert_eq!((e.line, e.element.as_str()), (2, "server"));
        assert!(!e.to_string().contains('\n'), "{e}");
        assert!(e.message.contains(r"not '\n'"), "{}", e.message);
    }

    #[test]
    fn stray_text_is_recorded() {
        let raw = parse_str("<monitor>\n\n oops\n</monitor>").unwrap();
        assert_eq!(raw.root.stray_text, Some(3));
    }
}
