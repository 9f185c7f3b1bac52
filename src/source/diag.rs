//! Diagnostics about the user's pipeline file: an error or warning that names the file, line,
//! and job, and shows the offending line with a caret under it.

use std::fmt::Write as _;

use crate::source::yaml::{Node, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub span: Option<Span>,
    pub job: Option<String>,
    pub help: Option<String>,
}

/// The files a pipeline was read from: the main file first, then each included file, so that a
/// span's `file` number finds its name and text.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

#[derive(Debug, Clone)]
pub struct SourceFile {
    /// As shown in messages: the path relative to the project.
    pub name: String,
    pub text: String,
}

impl SourceMap {
    /// The main file. Here and in [`SourceMap::add`] a byte-order mark is dropped, as the
    /// YAML reader drops it, so that line 1 renders as the editor shows it.
    pub fn single(name: &str, text: &str) -> SourceMap {
        SourceMap {
            files: vec![SourceFile {
                name: name.to_string(),
                text: crate::source::yaml::strip_bom(text).to_string(),
            }],
        }
    }

    /// Add a file; returns its number for spans.
    pub fn add(&mut self, name: String, mut text: String) -> u16 {
        if text.starts_with('\u{feff}') {
            text.drain(..'\u{feff}'.len_utf8());
        }
        self.files.push(SourceFile { name, text });
        (self.files.len() - 1) as u16
    }

    pub fn get(&self, file: u16) -> Option<&SourceFile> {
        self.files.get(file as usize)
    }

    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    pub fn main_name(&self) -> &str {
        self.files.first().map(|f| f.name.as_str()).unwrap_or("")
    }
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, span: Option<Span>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span,
            job: None,
            help: None,
        }
    }

    pub fn warning(message: impl Into<String>, span: Option<Span>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message, span)
        }
    }

    /// "SUBJECT should be WHAT, found KIND", pointing at the node.
    pub fn expected(subject: &str, what: &str, node: &Node) -> Self {
        Diagnostic::error(
            format!("{subject} should be {what}, found {}", node.kind()),
            Some(node.span),
        )
    }

    pub fn in_job(mut self, job: &str) -> Self {
        self.job = Some(job.to_string());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Render like a compiler: headline, `--> file:line:col`, the source line and a caret.
    pub fn render(&self, sources: &SourceMap) -> String {
        let (file, source) = match sources.get(self.span.map(|s| s.file).unwrap_or(0)) {
            Some(f) => (f.name.as_str(), f.text.as_str()),
            None => ("", ""),
        };
        let mut out = String::new();
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &self.job {
            Some(job) => {
                let _ = writeln!(out, "{level}: job `{job}`: {}", self.message);
            }
            None => {
                let _ = writeln!(out, "{level}: {}", self.message);
            }
        }
        match self.span {
            Some(span) => {
                let _ = writeln!(out, "  --> {file}:{}:{}", span.line, span.col);
                if let Some(text) = source.lines().nth(span.line.saturating_sub(1)) {
                    let num = span.line.to_string();
                    let pad = " ".repeat(num.len());
                    let caret_pad: String = text
                        .chars()
                        .take(span.col.saturating_sub(1))
                        .map(|c| if c == '\t' { '\t' } else { ' ' })
                        .collect();
                    let _ = writeln!(out, "{pad} |");
                    let _ = writeln!(out, "{num} | {text}");
                    let _ = writeln!(out, "{pad} | {caret_pad}^");
                }
            }
            None => {
                let _ = writeln!(out, "  --> {file}");
            }
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "  = help: {help}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_job_and_caret() {
        let src = "stages: [build]\njob:\n  stage: tset\n";
        let d = Diagnostic::error("stage `tset` is not declared", Some(Span::at(3, 10)))
            .in_job("job")
            .with_help("declared stages: build");
        let text = d.render(&SourceMap::single("berth.yml", src));
        assert_eq!(
            text,
            "error: job `job`: stage `tset` is not declared\n  --> berth.yml:3:10\n  |\n3 |   stage: tset\n  |          ^\n  = help: declared stages: build\n"
        );
    }
}
