//! An action's metadata file (`action.yml` or `action.yaml`), read as GitHub's runner reads it
//! (its `action_yaml.json` schema): `name`, `description`, `author`, `inputs` (with
//! `default`, `required`), `outputs` (a composite's with `value`), `branding`, and `runs` of
//! one of three kinds: `composite` (`steps`, each `run` step with its `shell`), a JavaScript
//! runtime (`node12` ... `node24`: `main`, `pre`, `post`, `pre-if`, `post-if`) or `docker`
//! (`image`, `args`, `entrypoint`, `env`, `pre-entrypoint`, `post-entrypoint`). Unknown keys
//! are errors, placed in the file as the workflow's are.

use crate::github::expr::Scope;
use crate::source::diag::Diagnostic;
use crate::source::yaml::{self, Node, Span};

use super::reader::Reader;
use super::*;

const ROOT_KEYS: &[&str] = &[
    "name",
    "author",
    "description",
    "inputs",
    "outputs",
    "runs",
    "branding",
];
const INPUT_KEYS: &[&str] = &["description", "required", "default", "deprecationMessage"];
const OUTPUT_KEYS: &[&str] = &["description", "value"];
const NODE_KEYS: &[&str] = &["using", "main", "pre", "pre-if", "post", "post-if"];
const COMPOSITE_KEYS: &[&str] = &["using", "steps"];
const DOCKER_KEYS: &[&str] = &[
    "using",
    "image",
    "args",
    "entrypoint",
    "env",
    "pre-entrypoint",
    "post-entrypoint",
    "pre-if",
    "post-if",
];
/// The JavaScript runtimes GitHub has offered; berth runs each with the job's `node`.
pub const NODE_RUNTIMES: &[&str] = &["node12", "node16", "node20", "node24"];

/// An action's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionManifest {
    pub name: Option<String>,
    pub inputs: Vec<ActionInput>,
    /// Each output and, for a composite, the expression its value is.
    pub outputs: Vec<(String, Option<Text>)>,
    pub runs: Runs,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActionInput {
    /// As written (`INPUT_<NAME>` upper-cases it, `inputs.<name>` ignores case).
    pub name: String,
    pub required: bool,
    /// May hold expressions (`${{ github.token }}`), evaluated when the step runs.
    pub default: Option<Text>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Runs {
    Composite {
        steps: Vec<Step>,
    },
    Node {
        /// `node20`...
        using: String,
        main: String,
        pre: Option<String>,
        pre_if: Option<Text>,
        post: Option<String>,
        post_if: Option<Text>,
    },
    Docker {
        /// `Dockerfile` (a path in the action) or `docker://image`.
        image: String,
        args: Vec<Text>,
        entrypoint: Option<String>,
        env: Env,
        pre_entrypoint: Option<String>,
        post_entrypoint: Option<String>,
        pre_if: Option<Text>,
        post_if: Option<Text>,
    },
}

impl Runs {
    /// What GitHub calls the kind: `composite`, `node20`, `docker`.
    pub fn kind(&self) -> &str {
        match self {
            Runs::Composite { .. } => "composite",
            Runs::Node { using, .. } => using,
            Runs::Docker { .. } => "docker",
        }
    }
}

/// Reads an action's metadata (`file` is its number in the caller's `SourceMap`). On failure,
/// every error found.
pub fn parse_action(text: &str, file: u16) -> Result<ActionManifest, Vec<Diagnostic>> {
    let docs = match yaml::parse_documents_keeping_keys(text, file) {
        Ok(docs) => docs,
        Err(e) => {
            let message = format!("the action's metadata is not valid YAML: {}", e.message);
            return Err(vec![Diagnostic::error(message, Some(e.span))]);
        }
    };
    let mut reader = Reader::new(yaml::strip_bom(text));
    let manifest = match docs.as_slice() {
        [root] => reader.action(root),
        _ => {
            let at = Span {
                line: 1,
                col: 1,
                file,
            };
            reader.error("an action's metadata is one YAML mapping", at);
            None
        }
    };
    match manifest {
        Some(m) if reader.errors.is_empty() => Ok(m),
        _ => Err(reader.errors),
    }
}

impl Reader<'_> {
    fn action(&mut self, root: &Node) -> Option<ActionManifest> {
        self.check_tags(root);
        if !self.errors.is_empty() {
            return None;
        }
        let entries = self.map(root, "an action's metadata", ROOT_KEYS)?;
        let mut manifest = ActionManifest {
            name: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            runs: Runs::Composite { steps: Vec::new() },
        };
        let mut runs = None;
        for e in entries {
            let v = &e.value;
            match e.key.as_str() {
                "name" => manifest.name = self.text(v, "name", None).map(|t| t.text),
                "inputs" => manifest.inputs = self.action_inputs(v),
                "outputs" => manifest.outputs = self.action_outputs(v),
                "runs" => runs = self.runs(v),
                // `author`, `description`, `branding`: for the marketplace.
                _ => {}
            }
        }
        if root.get("runs").is_none() {
            self.error(
                "an action's metadata needs `runs:`, how the action runs",
                root.span,
            );
        }
        manifest.runs = runs?;
        if !matches!(manifest.runs, Runs::Composite { .. }) {
            // Only a composite's outputs have values of their own.
            if let Some((name, Some(t))) = manifest.outputs.iter().find(|(_, v)| v.is_some()) {
                self.error(
                    format!("output `{name}`: only a composite action's outputs have a `value`"),
                    t.span,
                );
            }
        }
        Some(manifest)
    }

    fn action_inputs(&mut self, node: &Node) -> Vec<ActionInput> {
        let Some(entries) = self.loose(node, "inputs") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries {
            let what = format!("inputs: {}", e.key);
            let Some(fields) = self.map(&e.value, &format!("`{what}`"), INPUT_KEYS) else {
                continue;
            };
            let mut input = ActionInput {
                name: e.key.clone(),
                required: false,
                default: None,
            };
            for f in fields {
                match f.key.as_str() {
                    "required" => {
                        // The runner reads `required` but never enforces it; any scalar goes.
                        input.required = f.value.as_bool().unwrap_or(false);
                    }
                    "default" => {
                        input.default =
                            self.text(&f.value, &format!("{what}: default"), Some(&Scope::STEP))
                    }
                    _ => {}
                }
            }
            out.push(input);
        }
        out
    }

    fn action_outputs(&mut self, node: &Node) -> Vec<(String, Option<Text>)> {
        let Some(entries) = self.loose(node, "outputs") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries {
            let what = format!("outputs: {}", e.key);
            let Some(fields) = self.map(&e.value, &format!("`{what}`"), OUTPUT_KEYS) else {
                continue;
            };
            let value = fields
                .iter()
                .find(|f| f.key == "value")
                .and_then(|f| self.text(&f.value, &format!("{what}: value"), Some(&Scope::STEP)));
            out.push((e.key.clone(), value));
        }
        out
    }

    fn runs(&mut self, node: &Node) -> Option<Runs> {
        let Some(using_node) = node.get("using") else {
            self.error(
                "`runs` needs `using`: composite, docker or a node version (node20)",
                node.span,
            );
            return None;
        };
        let using = self.name(using_node, "runs: using")?;
        let kind = using.to_ascii_lowercase();
        if kind == "composite" {
            let entries = self.map(node, "`runs` of a composite action", COMPOSITE_KEYS)?;
            let Some(steps_node) = entries.iter().find(|e| e.key == "steps") else {
                self.error("a composite action needs `runs: steps`", node.span);
                return None;
            };
            let steps = self.steps(&steps_node.value);
            for step in &steps {
                if let StepAction::Run {
                    shell: None, run, ..
                } = &step.action
                {
                    // GitHub's rule: no default shell inside an action.
                    self.error(
                        format!(
                            "step {}: a composite action's `run` step needs `shell` (bash, sh, python...)",
                            step.index
                        ),
                        run.span,
                    );
                }
            }
            return Some(Runs::Composite { steps });
        }
        if NODE_RUNTIMES.contains(&kind.as_str()) {
            let entries = self.map(node, "`runs` of a JavaScript action", NODE_KEYS)?;
            let (mut main, mut pre, mut post, mut pre_if, mut post_if) =
                (None, None, None, None, None);
            for e in entries {
                let v = &e.value;
                match e.key.as_str() {
                    "main" => main = self.name(v, "runs: main"),
                    "pre" => pre = self.name(v, "runs: pre"),
                    "post" => post = self.name(v, "runs: post"),
                    "pre-if" => pre_if = self.condition(v, "runs: pre-if", &Scope::STEP_IF),
                    "post-if" => post_if = self.condition(v, "runs: post-if", &Scope::STEP_IF),
                    _ => {}
                }
            }
            let Some(main) = main else {
                self.error(
                    format!("a JavaScript action (`using: {using}`) needs `runs: main`, the script it runs"),
                    node.span,
                );
                return None;
            };
            return Some(Runs::Node {
                using: kind,
                main,
                pre,
                pre_if,
                post,
                post_if,
            });
        }
        if kind == "docker" {
            let entries = self.map(node, "`runs` of a Docker action", DOCKER_KEYS)?;
            let mut image = None;
            let mut runs = Runs::Docker {
                image: String::new(),
                args: Vec::new(),
                entrypoint: None,
                env: Vec::new(),
                pre_entrypoint: None,
                post_entrypoint: None,
                pre_if: None,
                post_if: None,
            };
            if let Runs::Docker {
                args,
                entrypoint,
                env,
                pre_entrypoint,
                post_entrypoint,
                pre_if,
                post_if,
                ..
            } = &mut runs
            {
                for e in entries {
                    let v = &e.value;
                    match e.key.as_str() {
                        "image" => image = self.name(v, "runs: image"),
                        "args" => *args = self.list(v, "runs: args", Some(&Scope::STEP)),
                        "entrypoint" => *entrypoint = self.name(v, "runs: entrypoint"),
                        "env" => *env = self.env(v, "runs: env", Some(&Scope::STEP)),
                        "pre-entrypoint" => *pre_entrypoint = self.name(v, "runs: pre-entrypoint"),
                        "post-entrypoint" => {
                            *post_entrypoint = self.name(v, "runs: post-entrypoint")
                        }
                        "pre-if" => *pre_if = self.condition(v, "runs: pre-if", &Scope::STEP_IF),
                        "post-if" => *post_if = self.condition(v, "runs: post-if", &Scope::STEP_IF),
                        _ => {}
                    }
                }
            }
            let Some(found) = image else {
                self.error(
                    "a Docker action needs `runs: image` (Dockerfile or docker://image)",
                    node.span,
                );
                return None;
            };
            if let Runs::Docker { image, .. } = &mut runs {
                *image = found;
            }
            return Some(runs);
        }
        self.error_help(
            format!("`runs: using: {using}` is not a kind of action"),
            using_node.span,
            format!(
                "expected composite, docker or one of {}",
                NODE_RUNTIMES.join(", ")
            ),
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse_action(text, 0)
            .unwrap_err()
            .iter()
            .map(|d| {
                let s = d.span.unwrap();
                format!("{}:{}: {}", s.line, s.col, d.message)
            })
            .collect()
    }

    #[test]
    fn a_composite_has_inputs_outputs_and_steps_with_shells() {
        let m = parse_action(
            "name: greet\ninputs:\n  who:\n    description: whom\n    default: world\n  loud:\n    required: true\noutputs:\n  greeting:\n    value: ${{ steps.say.outputs.text }}\nruns:\n  using: composite\n  steps:\n    - id: say\n      run: echo \"text=hi ${{ inputs.who }}\" >> $GITHUB_OUTPUT\n      shell: bash\n    - uses: ./inner\n      with: { x: 1 }\n",
            0,
        )
        .unwrap();
        assert_eq!(m.name.as_deref(), Some("greet"));
        assert_eq!(m.inputs.len(), 2);
        assert_eq!(m.inputs[0].default.as_ref().unwrap().text, "world");
        assert!(m.inputs[1].required && m.inputs[1].default.is_none());
        assert_eq!(
            m.outputs[0].1.as_ref().unwrap().text,
            "${{ steps.say.outputs.text }}"
        );
        let Runs::Composite { steps } = &m.runs else {
            panic!("{:?}", m.runs)
        };
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].id.as_deref(), Some("say"));
        assert!(matches!(&steps[1].action, StepAction::Uses { uses, .. } if uses == "./inner"));
    }

    #[test]
    fn javascript_and_docker_actions_read_their_runs() {
        let m = parse_action(
            "name: js\nruns:\n  using: node20\n  main: dist/index.js\n  pre: pre.js\n  post: post.js\n  post-if: success()\n",
            0,
        )
        .unwrap();
        assert_eq!(
            m.runs,
            Runs::Node {
                using: "node20".into(),
                main: "dist/index.js".into(),
                pre: Some("pre.js".into()),
                pre_if: None,
                post: Some("post.js".into()),
                post_if: m.runs_post_if(),
            }
        );
        let m = parse_action(
            "name: d\nruns:\n  using: docker\n  image: Dockerfile\n  args: [a, '${{ inputs.x }}']\n  entrypoint: /run.sh\n  env: { K: v }\n  pre-entrypoint: /pre.sh\n  post-if: failure()\n",
            0,
        )
        .unwrap();
        let Runs::Docker {
            image,
            args,
            entrypoint,
            env,
            pre_entrypoint,
            pre_if,
            post_if,
            ..
        } = &m.runs
        else {
            panic!("{:?}", m.runs)
        };
        assert_eq!(image, "Dockerfile");
        assert_eq!(args.len(), 2);
        assert_eq!(entrypoint.as_deref(), Some("/run.sh"));
        assert_eq!(env[0].0, "K");
        assert_eq!(pre_entrypoint.as_deref(), Some("/pre.sh"));
        assert!(pre_if.is_none());
        assert_eq!(post_if.as_ref().map(|t| t.text.as_str()), Some("failure()"));
        assert_eq!(m.runs.kind(), "docker");
    }

    impl ActionManifest {
        fn runs_post_if(&self) -> Option<Text> {
            match &self.runs {
                Runs::Node { post_if, .. } => post_if.clone(),
                _ => None,
            }
        }
    }

    #[test]
    fn mistakes_are_placed_in_the_file() {
        let e = errors("name: x\nruns:\n  using: composite\n  steps:\n    - run: echo hi\n");
        assert_eq!(
            e,
            ["5:12: step 1: a composite action's `run` step needs `shell` (bash, sh, python...)"]
        );
        let e = errors("name: x\nruns:\n  using: node99\n  main: a.js\n");
        assert_eq!(e, ["3:10: `runs: using: node99` is not a kind of action"]);
        let e = errors("name: x\nruns:\n  using: node20\n  mian: a.js\n");
        assert!(
            e.iter().any(|m| m.starts_with("4:3: unknown key `mian`")),
            "{e:?}"
        );
        let e = errors("name: x\nrun:\n  using: node20\n");
        assert!(e.iter().any(|m| m.contains("unknown key `run`")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("needs `runs:`")), "{e:?}");
        let e = errors("name: x\nruns:\n  using: composite\n  steps:\n    - run: echo ${{ nope.x }}\n      shell: bash\n");
        assert!(e.iter().any(|m| m.starts_with("5:")), "{e:?}");
        let e = errors("name: [\n");
        assert!(e[0].contains("not valid YAML"), "{e:?}");
    }
}
