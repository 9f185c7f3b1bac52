//! One configuration from many files, in GitLab's order: `include` first (each included file
//! deep-merged in turn, the including file last so that it wins), then `extends`, then
//! `!reference` tags. What comes out is one YAML tree whose spans still name the file and line
//! each value came from.
//!
//! Each of these steps copies nodes; every copy is charged to the one [`Budget`] the files were
//! read with, so that no pipeline grows past [`yaml::MAX_EXPANDED`] however it is composed.

use std::collections::{HashMap, HashSet};

use crate::source::diag::{Diagnostic, SourceMap};
use crate::source::yaml::{self, Budget, Entry, Node, Span, Value};

use super::includes::{self, Fetched, IncludeCache};
use super::inputs;
use super::scope::Scope;

/// GitLab's limits: 150 included files, `extends` 11 levels deep.
const MAX_INCLUDES: usize = 150;
const MAX_EXTENDS_DEPTH: usize = 11;

pub(super) struct Composer<'a> {
    pub ctx: &'a Scope,
    pub sources: &'a mut SourceMap,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// Files already included, with their inputs: GitLab includes each only once.
    seen: HashSet<String>,
    /// The main file's global `variables`, which include rules may read.
    main_variables: Vec<(String, String)>,
    /// What the pipeline has used of [`yaml::MAX_EXPANDED`]; the reader goes on charging the
    /// jobs it creates.
    pub budget: Budget,
}

impl<'a> Composer<'a> {
    pub fn new(ctx: &'a Scope, sources: &'a mut SourceMap) -> Self {
        Composer {
            ctx,
            sources,
            errors: Vec::new(),
            warnings: Vec::new(),
            seen: HashSet::new(),
            main_variables: Vec::new(),
            budget: Budget::default(),
        }
    }

    /// Compose the whole configuration from the main file (file number 0 in the source map).
    pub fn compose(&mut self) -> Option<Node> {
        let main = self.sources.get(0).map(|f| f.text.clone())?;
        let root = self.file(&main, 0, None, None)?;
        let root = self.extends(root);
        let mut references = References::new(&root, &mut self.budget);
        match references.resolve(&root, 0, None) {
            Ok(root) => Some(root),
            Err(d) => {
                self.errors.push(d);
                None
            }
        }
    }

    /// Read one file's content document (after its `spec` header, with its inputs put in), and
    /// merge what it includes under it.
    fn file(
        &mut self,
        text: &str,
        file: u16,
        inputs: Option<&Node>,
        included_at: Option<Span>,
    ) -> Option<Node> {
        let docs = match yaml::parse_documents_within(text, file, &mut self.budget) {
            Ok(docs) => docs,
            Err(e) => {
                let message = match e.too_big {
                    true => e.message,
                    false => format!("invalid YAML: {}", e.message),
                };
                self.errors.push(Diagnostic::error(message, Some(e.span)));
                return None;
            }
        };
        let (header, content) = match docs.len() {
            0 => (
                None,
                yaml::null_node(Span {
                    file,
                    ..Span::at(1, 1)
                }),
            ),
            1 => (None, docs.into_iter().next()?),
            2 if docs[0].get("spec").is_some() => {
                let mut it = docs.into_iter();
                (it.next(), it.next()?)
            }
            _ => {
                self.errors.push(Diagnostic::error(
                    "a pipeline file holds one document, or a `spec:` header, `---` and the content",
                    Some(docs[1].span),
                ));
                return None;
            }
        };
        let content = match (&header, inputs) {
            (Some(header), given) => {
                match inputs::apply(header, given, included_at, &content, &mut self.budget) {
                    Ok(c) => c,
                    Err(d) => {
                        self.errors.extend(d);
                        return None;
                    }
                }
            }
            (None, Some(given)) => {
                self.errors.push(Diagnostic::error(
                    "`inputs` are given, but the included file declares no `spec: inputs`",
                    Some(given.span),
                ));
                return None;
            }
            (None, None) => content,
        };
        if content.is_null() && file == 0 {
            self.errors.push(Diagnostic::error(
                "the pipeline file is empty",
                Some(content.span),
            ));
            return None;
        }
        if content.is_null() {
            return Some(Node {
                value: Value::Map(Vec::new()),
                ..content
            });
        }
        if content.as_map().is_none() {
            self.errors.push(Diagnostic::error(
                format!(
                    "a pipeline file should be a mapping, found {}",
                    content.kind()
                ),
                Some(content.span),
            ));
            return None;
        }
        if file == 0 {
            self.main_variables = plain_variables(content.get("variables"));
        }
        let Some(include) = content.entry("include").cloned() else {
            return Some(content);
        };
        let mut merged = Node {
            value: Value::Map(Vec::new()),
            span: content.span,
            tag: None,
        };
        for item in include_items(&include.value) {
            for included in self.include(item) {
                deep_merge(&mut merged, included);
            }
        }
        let mut own = content;
        if let Value::Map(entries) = &mut own.value {
            entries.retain(|e| e.key != "include");
        }
        deep_merge(&mut merged, own);
        Some(merged)
    }

    /// The trees one `include` entry brings (a wildcard brings several).
    fn include(&mut self, item: &Node) -> Vec<Node> {
        let spec = match includes::Spec::read(item, &self.variables()) {
            Ok(spec) => spec,
            Err(d) => {
                self.errors.push(d);
                return Vec::new();
            }
        };
        if let Some(rules) = &spec.rules {
            let vars = self.variables();
            match super::rules::include_allowed(rules, &vars, self.ctx) {
                Ok(true) => {}
                Ok(false) => return Vec::new(),
                Err(d) => {
                    self.errors.push(d);
                    return Vec::new();
                }
            }
        }
        let cache = IncludeCache::from_env();
        let files = match includes::fetch(&spec, self.ctx, &cache) {
            Ok(files) => files,
            Err(d) => {
                self.errors.push(d);
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for Fetched { name, text, note } in files {
            if let Some(note) = note {
                self.warnings
                    .push(Diagnostic::warning(note, Some(item.span)));
            }
            let key = format!("{name}\u{0}{:?}", spec.inputs.as_ref().map(inputs::flow));
            if !self.seen.insert(key) {
                continue;
            }
            if self.seen.len() > MAX_INCLUDES {
                self.errors.push(Diagnostic::error(
                    format!("more than {MAX_INCLUDES} files are included"),
                    Some(item.span),
                ));
                return out;
            }
            let file = self.sources.add(name, text.clone());
            if let Some(tree) = self.file(&text, file, spec.inputs.as_ref(), Some(item.span)) {
                out.push(tree);
            }
        }
        out
    }

    /// Variables an `include` may use: the context's (predefined, command line) and the main
    /// file's global ones.
    fn variables(&self) -> Vec<(String, String)> {
        let mut vars = self.main_variables.clone();
        vars.extend(self.ctx.variables.iter().cloned());
        vars.extend(self.ctx.overrides.iter().cloned());
        vars
    }

    /// Resolve every `extends` in the tree: parents merged deeply, later parents winning, the
    /// job's own keys over all of them. Each name is resolved once (a template extended by a
    /// thousand jobs, or named twice in one list, is not walked again), and each copy of a
    /// resolved parent is charged to the budget.
    fn extends(&mut self, mut root: Node) -> Node {
        let mut resolved: HashMap<String, Resolved> = HashMap::new();
        {
            let entries = root.as_map().unwrap_or_default();
            let index: HashMap<&str, &Node> =
                entries.iter().map(|e| (e.key.as_str(), &e.value)).collect();
            let mut extends = Extends {
                index: &index,
                resolved: &mut resolved,
                budget: &mut self.budget,
            };
            for e in entries.iter().filter(|e| e.value.get("extends").is_some()) {
                let mut chain = vec![e.key.clone()];
                if let Err(d) = extends.resolve(&e.key, &mut chain) {
                    self.errors.push(d.in_job(&e.key));
                }
            }
        }
        if let Value::Map(entries) = &mut root.value {
            for e in entries.iter_mut() {
                if let Some(done) = resolved.remove(&e.key) {
                    e.value = done.node;
                }
            }
        }
        root
    }
}

/// A job or template with its `extends` resolved, and what it costs.
struct Resolved {
    node: Node,
    cost: usize,
}

/// The walk of `extends`: the top-level entries by name, and the names resolved so far.
struct Extends<'r, 'b> {
    index: &'r HashMap<&'r str, &'r Node>,
    resolved: &'r mut HashMap<String, Resolved>,
    budget: &'b mut Budget,
}

impl Extends<'_, '_> {
    /// Resolve `name` (the last of `chain`) into `self.resolved`.
    fn resolve(&mut self, name: &str, chain: &mut Vec<String>) -> Result<(), Diagnostic> {
        if self.resolved.contains_key(name) {
            return Ok(());
        }
        let Some(&job) = self.index.get(name) else {
            return Err(Diagnostic::error(
                format!("`extends` names `{name}`, which does not exist"),
                None,
            ));
        };
        let Some(parents) = job.get("extends") else {
            return Ok(());
        };
        let list: Vec<&Node> = match &parents.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![parents],
        };
        let mut base = Node {
            value: Value::Map(Vec::new()),
            span: job.span,
            tag: None,
        };
        for parent in list {
            let Some(parent_name) = parent.as_text() else {
                return Err(Diagnostic::expected(
                    "`extends`",
                    "a job name or a list of them",
                    parent,
                ));
            };
            if chain.iter().any(|c| c == parent_name) {
                chain.push(parent_name.to_string());
                return Err(Diagnostic::error(
                    format!("`extends` forms a cycle: {}", chain.join(" -> ")),
                    Some(parent.span),
                ));
            }
            if chain.len() >= MAX_EXTENDS_DEPTH {
                return Err(Diagnostic::error(
                    format!(
                        "`extends` nests more than {MAX_EXTENDS_DEPTH} levels: {} -> {parent_name}",
                        chain.join(" -> ")
                    ),
                    Some(parent.span),
                ));
            }
            let Some(&parent_node) = self.index.get(parent_name) else {
                let mut d = Diagnostic::error(
                    format!("`extends` names `{parent_name}`, which does not exist"),
                    Some(parent.span),
                );
                if chain.len() > 1 {
                    d = d.with_help(format!("through {} -> {parent_name}", chain.join(" -> ")));
                }
                return Err(d);
            };
            if parent_node.as_map().is_none() {
                return Err(Diagnostic::error(
                    format!("`extends` names `{parent_name}`, which is not a mapping"),
                    Some(parent.span),
                ));
            }
            chain.push(parent_name.to_string());
            self.resolve(parent_name, chain)?;
            chain.pop();
            // A parent without `extends` is used as written; either way this is a copy.
            let (copy, cost) = match self.resolved.get(parent_name) {
                Some(done) => (&done.node, done.cost),
                None => (parent_node, yaml::cost(parent_node)),
            };
            self.budget.charge(cost).map_err(|e| {
                Diagnostic::error(format!("`extends: {parent_name}`: {e}"), Some(parent.span))
            })?;
            deep_merge(&mut base, copy.clone());
        }
        let mut own = job.clone();
        if let Value::Map(entries) = &mut own.value {
            entries.retain(|e| e.key != "extends");
        }
        deep_merge(&mut base, own);
        let cost = yaml::cost(&base);
        self.resolved
            .insert(name.to_string(), Resolved { node: base, cost });
        Ok(())
    }
}

/// The `include` value as a list of entries.
fn include_items(node: &Node) -> Vec<&Node> {
    match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ if node.is_null() => Vec::new(),
        _ => vec![node],
    }
}

/// Scalar global variables of a file, for include rules.
fn plain_variables(node: Option<&Node>) -> Vec<(String, String)> {
    node.and_then(|n| n.as_map())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            let value = match e.value.as_scalar() {
                Some(v) => v.to_string(),
                None => e.value.get("value")?.as_scalar()?.to_string(),
            };
            Some((e.key.clone(), value))
        })
        .collect()
}

/// Ruby's `deep_merge`, as GitLab uses it for includes and `extends`: mappings merge key by
/// key (a key keeps its first position), anything else is replaced by the newer value.
pub(super) fn deep_merge(base: &mut Node, over: Node) {
    match (&mut base.value, over.value) {
        (Value::Map(entries), Value::Map(new)) => {
            // Merging an included file of 20,000 jobs must not compare every pair of keys.
            let mut index: Option<HashMap<String, usize>> =
                (entries.len() >= 16 && new.len() >= 16).then(|| {
                    entries
                        .iter()
                        .enumerate()
                        .map(|(i, e)| (e.key.clone(), i))
                        .collect()
                });
            for e in new {
                let at = match &index {
                    Some(index) => index.get(&e.key).copied(),
                    None => entries.iter().position(|x| x.key == e.key),
                };
                match at {
                    Some(i) => {
                        let existing = &mut entries[i];
                        if existing.value.as_map().is_some() && e.value.as_map().is_some() {
                            deep_merge(&mut existing.value, e.value);
                        } else {
                            existing.value = e.value;
                        }
                    }
                    None => {
                        if let Some(index) = &mut index {
                            index.insert(e.key.clone(), entries.len());
                        }
                        entries.push(e);
                    }
                }
            }
        }
        (_, value) => {
            base.value = value;
            base.span = over.span;
            base.tag = over.tag;
        }
    }
}

/// Replaces `!reference [job, key, ...]` tags with the node they name (nested ones too).
pub(super) struct References<'a> {
    root: &'a Node,
    /// The top-level entries by name: 20,000 jobs each naming a template must not search
    /// the whole root each time.
    index: HashMap<&'a str, &'a Node>,
    budget: &'a mut Budget,
}

impl<'a> References<'a> {
    pub(super) fn new(root: &'a Node, budget: &'a mut Budget) -> References<'a> {
        let index = root
            .as_map()
            .unwrap_or_default()
            .iter()
            .map(|e| (e.key.as_str(), &e.value))
            .collect();
        References {
            root,
            index,
            budget,
        }
    }

    /// `node` with its references resolved. `copying` is the reference being copied, if any:
    /// what is built for it is new, and charged to the budget (the rest of the tree is only
    /// rebuilt, as it was).
    pub(super) fn resolve(
        &mut self,
        node: &Node,
        depth: usize,
        copying: Option<Span>,
    ) -> Result<Node, Diagnostic> {
        if depth > 10 {
            return Err(Diagnostic::error(
                "`!reference` nests more than 10 levels deep (is there a cycle?)",
                Some(node.span),
            ));
        }
        if node.tag.as_deref() == Some("!reference") {
            let path: Option<Vec<&str>> = node
                .as_seq()
                .map(|items| items.iter().map(|i| i.as_text()).collect())
                .unwrap_or(None);
            let path = path.filter(|p| !p.is_empty()).ok_or_else(|| {
                Diagnostic::error(
                    "`!reference` needs a list of names, like `!reference [.setup, script]`",
                    Some(node.span),
                )
            })?;
            let missing = |i: usize| {
                Diagnostic::error(
                    format!(
                        "`!reference [{}]` names `{}`, which does not exist",
                        path.join(", "),
                        path[..=i].join(".")
                    ),
                    Some(node.span),
                )
            };
            let mut target = match self.root.as_map() {
                Some(_) => *self.index.get(path[0]).ok_or_else(|| missing(0))?,
                None => return Err(missing(0)),
            };
            for (i, key) in path.iter().enumerate().skip(1) {
                target = target.get(key).ok_or_else(|| missing(i))?;
            }
            return self.resolve(target, depth + 1, Some(node.span));
        }
        if let Some(at) = copying {
            let mut cost = yaml::own_cost(node);
            if let Some(entries) = node.as_map() {
                cost += entries
                    .iter()
                    .map(|e| yaml::NODE_COST + e.key.len())
                    .sum::<usize>();
            }
            self.budget
                .charge(cost)
                .map_err(|e| Diagnostic::error(format!("`!reference`: {e}"), Some(at)))?;
        }
        let value = match &node.value {
            Value::Scalar { .. } => node.value.clone(),
            Value::Seq(items) => Value::Seq(
                items
                    .iter()
                    .map(|i| self.resolve(i, depth, copying))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|e| {
                        Ok(Entry {
                            key: e.key.clone(),
                            key_span: e.key_span,
                            value: self.resolve(&e.value, depth, copying)?,
                        })
                    })
                    .collect::<Result<_, Diagnostic>>()?,
            ),
        };
        Ok(Node {
            value,
            span: node.span,
            tag: node.tag.clone(),
        })
    }
}
