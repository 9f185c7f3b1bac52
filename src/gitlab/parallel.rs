//! `parallel: N` and `parallel: matrix`: one job definition, several jobs, named as GitLab
//! names them (`test 1/3`; `deploy: [aws, app1]`), each with its CI_NODE_INDEX/CI_NODE_TOTAL
//! and its matrix variables.

use crate::source::diag::Diagnostic;
use crate::source::yaml::Node;

use super::Variable;

/// GitLab's limit on the jobs one `parallel` makes.
const MAX: usize = 200;

/// One job of a parallel set.
#[derive(Debug, Clone)]
pub struct Instance {
    /// CI_NODE_INDEX and CI_NODE_TOTAL.
    pub variables: Vec<Variable>,
    /// The matrix's variables for this combination (empty for `parallel: N`).
    pub matrix: Vec<Variable>,
    index: usize,
    total: usize,
}

impl Instance {
    pub fn name(&self, base: &str) -> String {
        if self.matrix.is_empty() {
            format!("{base} {}/{}", self.index, self.total)
        } else {
            matrix_name(base, self.matrix.iter().map(|v| v.value.as_str()))
        }
    }
}

fn matrix_name<'a>(base: &str, values: impl Iterator<Item = &'a str>) -> String {
    format!("{base}: [{}]", values.collect::<Vec<_>>().join(", "))
}

fn var(name: &str, value: String) -> Variable {
    Variable {
        name: name.to_string(),
        value,
        expand: false,
    }
}

/// The jobs a `parallel` value makes: `[None]` when there is none.
pub fn expand(node: Option<&Node>) -> Result<Vec<Option<Instance>>, Diagnostic> {
    let Some(node) = node else {
        return Ok(vec![None]);
    };
    let combos: Vec<Vec<(String, String)>> = if let Some(n) = node.as_int() {
        if !(1..=MAX as i64).contains(&n) {
            return Err(Diagnostic::error(
                format!("`parallel` should be between 1 and {MAX}, found {n}"),
                Some(node.span),
            ));
        }
        vec![Vec::new(); n as usize]
    } else if let Some(matrix) = node.get("matrix") {
        combinations(matrix)?
    } else {
        return Err(Diagnostic::expected(
            "`parallel`",
            "a number or `{matrix: [...]}`",
            node,
        ));
    };
    let total = combos.len();
    Ok(combos
        .into_iter()
        .enumerate()
        .map(|(i, combo)| {
            Some(Instance {
                variables: vec![
                    var("CI_NODE_INDEX", (i + 1).to_string()),
                    var("CI_NODE_TOTAL", total.to_string()),
                ],
                matrix: combo.into_iter().map(|(k, v)| var(&k, v)).collect(),
                index: i + 1,
                total,
            })
        })
        .collect())
}

/// Every combination of a matrix: for each entry, the product of its values in key order
/// (the first key varying slowest), entries one after another. The combinations are counted
/// first, and more than GitLab's limit is an error before any is built: a matrix of a dozen
/// lists of twenty values is a kilobyte of YAML and 4 * 10^15 jobs.
fn combinations(matrix: &Node) -> Result<Vec<Vec<(String, String)>>, Diagnostic> {
    let Some(entries) = matrix.as_seq() else {
        return Err(Diagnostic::expected(
            "`parallel: matrix`",
            "a list of mappings",
            matrix,
        ));
    };
    let mut read: Vec<Vec<(&str, Vec<&str>)>> = Vec::new();
    // None once the count no longer fits a usize.
    let mut count: Option<usize> = Some(0);
    for entry in entries {
        let Some(keys) = entry.as_map() else {
            return Err(Diagnostic::expected(
                "a `parallel: matrix` entry",
                "a mapping of variables to values",
                entry,
            ));
        };
        let mut lists = Vec::new();
        let mut product: Option<usize> = Some(1);
        for k in keys {
            let values: Vec<&str> = if let Some(items) = k.value.as_seq() {
                items
                    .iter()
                    .map(|i| {
                        i.as_scalar().ok_or_else(|| {
                            Diagnostic::error(
                                format!("matrix values of `{}` should be strings", k.key),
                                Some(i.span),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?
            } else if let Some(v) = k.value.as_scalar() {
                vec![v]
            } else {
                return Err(Diagnostic::error(
                    format!("matrix values of `{}` should be a string or a list", k.key),
                    Some(k.value.span),
                ));
            };
            product = product.and_then(|p| p.checked_mul(values.len()));
            lists.push((k.key.as_str(), values));
        }
        count = count.and_then(|c| product.and_then(|p| c.checked_add(p)));
        read.push(lists);
    }
    match count {
        Some(n) if n <= MAX => {}
        _ => {
            let n = count.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string());
            return Err(Diagnostic::error(
                format!("`parallel: matrix` makes {n} jobs; GitLab allows {MAX}"),
                Some(matrix.span),
            ));
        }
    }
    let mut out = Vec::new();
    for lists in read {
        let mut acc: Vec<Vec<(String, String)>> = vec![Vec::new()];
        for (key, values) in lists {
            acc = acc
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut next = prefix.clone();
                        next.push((key.to_string(), v.to_string()));
                        next
                    })
                })
                .collect();
        }
        out.extend(acc);
    }
    Ok(out)
}

/// `needs: [{job, parallel: {matrix: [...]}}]`: the names of the instances it narrows to.
pub fn need_names(job: &str, parallel: &Node) -> Result<Vec<String>, Diagnostic> {
    let Some(matrix) = parallel.get("matrix") else {
        return Err(Diagnostic::error(
            "`needs: parallel` should be `{matrix: [...]}`",
            Some(parallel.span),
        ));
    };
    Ok(combinations(matrix)?
        .iter()
        .map(|combo| matrix_name(job, combo.iter().map(|(_, v)| v.as_str())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::yaml::parse;

    fn names(src: &str) -> Vec<String> {
        let doc = parse(src).unwrap();
        expand(doc.get("parallel"))
            .unwrap()
            .into_iter()
            .map(|i| i.unwrap().name("job"))
            .collect()
    }

    #[test]
    fn parallel_n_names_and_node_variables() {
        assert_eq!(names("parallel: 3"), vec!["job 1/3", "job 2/3", "job 3/3"]);
        let doc = parse("parallel: 2").unwrap();
        let inst = expand(doc.get("parallel")).unwrap();
        let second = inst[1].as_ref().unwrap();
        assert_eq!(second.variables[0].value, "2");
        assert_eq!(second.variables[1].value, "2");
    }

    #[test]
    fn matrix_product_in_key_order() {
        let src = "parallel:\n  matrix:\n    - PROVIDER: aws\n      STACK: [monitoring, app1]\n    - PROVIDER: [gcp, vultr]\n";
        assert_eq!(
            names(src),
            vec![
                "job: [aws, monitoring]",
                "job: [aws, app1]",
                "job: [gcp]",
                "job: [vultr]"
            ]
        );
    }

    #[test]
    fn limits_and_shapes() {
        let doc = parse("parallel: 201").unwrap();
        assert!(expand(doc.get("parallel")).is_err());
        let doc = parse("parallel: lots").unwrap();
        assert!(expand(doc.get("parallel")).is_err());
        let doc = parse("parallel: {matrix: [{A: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15], B: [1,2,3,4,5,6,7,8,9,10,11,12,13,14]}]}").unwrap();
        assert!(expand(doc.get("parallel")).is_err());
    }

    #[test]
    fn a_huge_matrix_is_counted_not_built() {
        // 20^12 combinations (4 * 10^15), and 100^10 that overflows a u64: refused at once.
        let values = format!(
            "[{}]",
            (0..20)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let keys: Vec<String> = (0..12).map(|i| format!("K{i}: {values}")).collect();
        let src = format!("parallel: {{matrix: [{{{}}}]}}", keys.join(", "));
        let doc = parse(&src).unwrap();
        let err = expand(doc.get("parallel")).unwrap_err();
        assert!(
            err.message
                .contains("makes 4096000000000000 jobs; GitLab allows 200"),
            "{err:?}"
        );
        let values = format!(
            "[{}]",
            (0..100)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let keys: Vec<String> = (0..10).map(|i| format!("K{i}: {values}")).collect();
        let src = format!("matrix: [{{{}}}]", keys.join(", "));
        let doc = parse(&src).unwrap();
        let err = need_names("build", &doc).unwrap_err();
        assert!(err.message.contains("makes more than 2^64 jobs"), "{err:?}");
        // 200 exactly is allowed.
        let doc = parse("parallel: {matrix: [{A: [1,2,3,4,5,6,7,8,9,10], B: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]}]}").unwrap();
        assert_eq!(expand(doc.get("parallel")).unwrap().len(), 200);
    }

    #[test]
    fn needs_narrow_by_matrix() {
        let doc = parse("matrix: [{PROVIDER: aws, STACK: [a, b]}]").unwrap();
        assert_eq!(
            need_names("build", &doc).unwrap(),
            vec!["build: [aws, a]", "build: [aws, b]"]
        );
    }
}
