//! GitHub's `options:` (the `docker create` flags a service or a `container:` is given) and
//! `volumes:`, read into the model's [`ContainerOptions`]. What the engine can do is kept; any
//! other flag becomes a note naming it, as berth does for what it reads but does not do. A
//! value that cannot be read (`--memory lots`, an unclosed quote) is an error.
//!
//! A bind mount names a directory of the host, which the repository must not choose freely:
//! only a path relative to the project (`./data`) or under the job's workspace
//! (`${{ github.workspace }}/data`) is mounted, as that directory of the project.

use std::time::Duration;

use crate::pipeline::{ContainerOptions, HealthCheck, Mount};

/// `options:` read: the container's options, what joins its environment and its aliases, and
/// notes on the flags left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub options: ContainerOptions,
    /// `-e KEY=VALUE`, in order.
    pub env: Vec<(String, String)>,
    /// `--network-alias`.
    pub aliases: Vec<String>,
    pub notes: Vec<String>,
}

/// docker-create flags that take no value, so that an unknown one does not swallow the next.
const SWITCHES: &[&str] = &[
    "--init",
    "--rm",
    "--read-only",
    "-t",
    "--tty",
    "-i",
    "--interactive",
    "-d",
    "--detach",
    "--oom-kill-disable",
    "-P",
    "--publish-all",
    "--sig-proxy",
    "--disable-content-trust",
    "-q",
    "--quiet",
];

/// Reads `text` (flags as a shell would split them). `workspace` is the checkout's path in
/// the job's container (`github.workspace`), which a bind mount may name.
pub fn parse(text: &str, workspace: &str) -> Result<Parsed, String> {
    let words = split(text)?;
    let mut out = Parsed::default();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        if !word.starts_with('-') || word == "-" {
            out.notes.push(format!(
                "`{word}` is not a flag: arguments other than flags are ignored"
            ));
            continue;
        }
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ if !word.starts_with("--") && word.len() > 2 => {
                // `-eKEY=VALUE`, `-m512m`: a short flag with its value attached.
                (word[..2].to_string(), Some(word[2..].to_string()))
            }
            _ => (word.clone(), None),
        };
        let switch = matches!(flag.as_str(), "--privileged" | "--no-healthcheck")
            || SWITCHES.contains(&flag.as_str());
        let value = if switch {
            inline.clone()
        } else {
            match inline {
                Some(v) => Some(v),
                None if i < words.len() => {
                    i += 1;
                    Some(words[i - 1].clone())
                }
                None => return Err(format!("`{flag}` needs a value")),
            }
        };
        let v = value.clone().unwrap_or_default();
        let o = &mut out.options;
        match flag.as_str() {
            "--health-cmd" => health(o).command = Some(v),
            "--health-interval" => health(o).interval = Some(duration(&flag, &v)?),
            "--health-timeout" => health(o).timeout = Some(duration(&flag, &v)?),
            "--health-start-period" => health(o).start_period = Some(duration(&flag, &v)?),
            "--health-retries" => {
                health(o).retries = Some(
                    v.parse()
                        .map_err(|_| format!("`{flag} {v}`: expected a number of retries"))?,
                )
            }
            "--no-healthcheck" => health(o).disabled = boolean(&flag, value.as_deref())?,
            "-e" | "--env" => match v.split_once('=') {
                Some((k, val)) => out.env.push((k.to_string(), val.to_string())),
                None => out.notes.push(format!(
                    "`{flag} {v}` takes the variable from the runner's environment; berth \
                     leaves it out (give it a value: `{flag} {v}=...`)"
                )),
            },
            "-u" | "--user" => o.user = Some(v),
            "-w" | "--workdir" => o.working_dir = Some(v),
            "-h" | "--hostname" => o.hostname = Some(v),
            "--network-alias" | "--net-alias" => out.aliases.push(v),
            "--cpus" => {
                let cpus: f64 = v
                    .parse()
                    .ok()
                    .filter(|c: &f64| c.is_finite() && *c > 0.0)
                    .ok_or_else(|| format!("`{flag} {v}`: expected a number of CPUs"))?;
                o.nano_cpus = Some((cpus * 1e9) as i64);
            }
            "-m" | "--memory" => o.memory = Some(bytes(&flag, &v)?),
            "--shm-size" => o.shm_size = Some(bytes(&flag, &v)?),
            "--privileged" => o.privileged = boolean(&flag, value.as_deref())?,
            "--cap-add" => o.cap_add.push(v),
            "--cap-drop" => o.cap_drop.push(v),
            "--tmpfs" => {
                let (path, opts) = v.split_once(':').unwrap_or((&v, ""));
                if !path.starts_with('/') {
                    return Err(format!("`{flag} {v}`: the path must be absolute"));
                }
                o.tmpfs.push((path.to_string(), opts.to_string()));
            }
            "-v" | "--volume" => o.mounts.push(mount(&v, workspace)?),
            "--network" | "--net" => out.notes.push(format!(
                "`{flag}` is ignored: GitHub does not support it (berth chooses the network)"
            )),
            "--entrypoint" => out.notes.push(format!(
                "`{flag}` is ignored: GitHub does not support it in `options` (a service has \
                 `entrypoint:`)"
            )),
            _ => out.notes.push(match value {
                Some(v) if !switch => format!("`{flag} {v}` is not supported yet and is ignored"),
                _ => format!("`{flag}` is not supported yet and is ignored"),
            }),
        }
    }
    Ok(out)
}

fn health(o: &mut ContainerOptions) -> &mut HealthCheck {
    o.health.get_or_insert(HealthCheck {
        command: None,
        disabled: false,
        interval: None,
        timeout: None,
        start_period: None,
        retries: None,
    })
}

/// One entry of `volumes:` or `-v`: `SOURCE:TARGET[:ro|rw]`, or `TARGET` alone (an anonymous
/// volume). A source with a `/` or starting with `.` is a host path, else a volume's name.
pub fn mount(text: &str, workspace: &str) -> Result<Mount, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, None),
        [source, target] => (Some(*source), *target, None),
        [source, target, mode] => (Some(*source), *target, Some(*mode)),
        _ => return Err(format!("`{text}`: expected SOURCE:TARGET[:ro]")),
    };
    if !target.starts_with('/') {
        return Err(format!(
            "`{text}`: the path in the container (`{target}`) must be absolute"
        ));
    }
    let mut read_only = false;
    for m in mode.unwrap_or("").split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => read_only = true,
            "rw" | "z" | "Z" | "nocopy" => {}
            _ => return Err(format!("`{text}`: unknown mount option `{m}`")),
        }
    }
    let target = target.to_string();
    let Some(source) = source.filter(|s| !s.is_empty()) else {
        return Ok(Mount::Anonymous { target });
    };
    if !source.contains('/') && !source.starts_with('.') && !source.starts_with('~') {
        return Ok(Mount::Volume {
            name: source.to_string(),
            target,
            read_only,
        });
    }
    let workspace = workspace.trim_end_matches('/');
    let relative = if source == workspace {
        ""
    } else if let Some(rest) = source.strip_prefix(&format!("{workspace}/")) {
        rest
    } else if source.starts_with('/') || source.starts_with('~') {
        return Err(format!(
            "`{text}`: a bind mount of `{source}`, a directory of the host outside the \
             project, is refused; mount a directory of the project (`./DIR:{target}` or \
             `${{{{ github.workspace }}}}/DIR:{target}`) or a named volume"
        ));
    } else {
        source
    };
    let mut kept: Vec<&str> = Vec::new();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if kept.pop().is_none() {
                    return Err(format!(
                        "`{text}`: `{source}` leads out of the project; a bind mount must \
                         stay inside it"
                    ));
                }
            }
            p => kept.push(p),
        }
    }
    Ok(Mount::Bind {
        source: if kept.is_empty() {
            ".".to_string()
        } else {
            kept.join("/")
        },
        target,
        read_only,
    })
}

/// Splits as a POSIX shell would (quotes and backslashes), without expanding anything.
pub fn split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a `'` is not closed".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a `\"` is not closed".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a `\"` is not closed".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err("the options end with a lone `\\`".into()),
            },
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn boolean(flag: &str, value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(format!("`{flag}={v}`: expected true or false")),
    }
}

/// A Go duration as docker reads it: `10s`, `1m30s`, `500ms`, `1.5h`.
fn duration(flag: &str, text: &str) -> Result<Duration, String> {
    let bad = || format!("`{flag} {text}`: expected a duration such as 10s, 500ms or 1m30s");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0.0f64;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// A size as docker reads it: `512m`, `1g`, `1.5GB`, `1024` (bytes).
fn bytes(flag: &str, text: &str) -> Result<i64, String> {
    let bad = || format!("`{flag} {text}`: expected a size such as 512m or 2g");
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let number: f64 = lower[..digits].parse().map_err(|_| bad())?;
    let unit = lower[digits..].trim();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return Err(bad()),
    };
    let value = number * 1024f64.powi(power);
    if !value.is_finite() || value < 0.0 || value > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(value as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str = "/builds/project";

    #[test]
    fn health_flags_become_a_health_check() {
        let p = parse(
            "--health-cmd \"pg_isready -U postgres\" --health-interval 10s --health-timeout=5s --health-retries 5 --health-start-period 1m30s",
            WS,
        )
        .unwrap();
        assert_eq!(
            p.options.health,
            Some(HealthCheck {
                command: Some("pg_isready -U postgres".into()),
                disabled: false,
                interval: Some(Duration::from_secs(10)),
                timeout: Some(Duration::from_secs(5)),
                start_period: Some(Duration::from_secs(90)),
                retries: Some(5),
            })
        );
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }

    #[test]
    fn quoting_is_a_shells() {
        assert_eq!(
            split(r#"--health-cmd 'redis-cli ping' -e "A=b c" -e B=\"q\" x\ y"#).unwrap(),
            [
                "--health-cmd",
                "redis-cli ping",
                "-e",
                "A=b c",
                "-e",
                "B=\"q\"",
                "x y"
            ]
        );
        assert!(split("--health-cmd 'oops").is_err());
        assert!(split("-e \"A=b").is_err());
    }

    #[test]
    fn resources_users_and_names_are_read() {
        let p = parse(
            "--cpus 1.5 --memory 512m --shm-size=1g --user 1000:1000 -w /src --hostname db1 \
             --network-alias database --privileged --cap-add NET_ADMIN --cap-drop MKNOD \
             --tmpfs /run:rw,size=64m -eA=1 --env B=2",
            WS,
        )
        .unwrap();
        let o = &p.options;
        assert_eq!(o.nano_cpus, Some(1_500_000_000));
        assert_eq!(o.memory, Some(512 * 1024 * 1024));
        assert_eq!(o.shm_size, Some(1024 * 1024 * 1024));
        assert_eq!(o.user.as_deref(), Some("1000:1000"));
        assert_eq!(o.working_dir.as_deref(), Some("/src"));
        assert_eq!(o.hostname.as_deref(), Some("db1"));
        assert!(o.privileged);
        assert_eq!(o.cap_add, ["NET_ADMIN"]);
        assert_eq!(o.cap_drop, ["MKNOD"]);
        assert_eq!(o.tmpfs, [("/run".to_string(), "rw,size=64m".to_string())]);
        assert_eq!(p.aliases, ["database"]);
        assert_eq!(p.env, [("A".into(), "1".into()), ("B".into(), "2".into())]);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }

    #[test]
    fn other_flags_are_noted_by_name_not_refused() {
        let p = parse(
            "--network host --init --ulimit nofile=1024 --entrypoint sh -e HOME stray",
            WS,
        )
        .unwrap();
        let notes = p.notes.join("\n");
        for flag in [
            "--network",
            "--init",
            "--ulimit nofile=1024",
            "--entrypoint",
            "-e HOME",
            "stray",
        ] {
            assert!(notes.contains(flag), "{flag}: {notes}");
        }
        // `--init` takes no value: `--ulimit` is still read as a flag.
        assert_eq!(p.notes.len(), 6, "{notes}");
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            "--memory lots",
            "--cpus x",
            "--health-interval 10",
            "--health-retries many",
            "--privileged=maybe",
            "--health-cmd",
            "--tmpfs run",
        ] {
            assert!(parse(bad, WS).is_err(), "{bad}");
        }
        assert_eq!(
            duration("f", "1h2m3.5s"),
            Ok(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(duration("f", "250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(bytes("f", "1024"), Ok(1024));
        assert_eq!(bytes("f", "2GB"), Ok(2 << 30));
    }

    #[test]
    fn volumes_are_named_anonymous_or_of_the_project() {
        assert_eq!(
            mount("cache:/cache:ro", WS),
            Ok(Mount::Volume {
                name: "cache".into(),
                target: "/cache".into(),
                read_only: true
            })
        );
        assert_eq!(
            mount("/data", WS),
            Ok(Mount::Anonymous {
                target: "/data".into()
            })
        );
        let bind = |source: &str| Mount::Bind {
            source: source.into(),
            target: "/d".into(),
            read_only: false,
        };
        assert_eq!(mount("./fixtures/db:/d", WS), Ok(bind("fixtures/db")));
        assert_eq!(mount("/builds/project/sql:/d", WS), Ok(bind("sql")));
        assert_eq!(mount("/builds/project:/d", WS), Ok(bind(".")));
        assert_eq!(mount("./a/../b:/d", WS), Ok(bind("b")));
        for refused in [
            "/etc:/d",
            "/var/run/docker.sock:/d",
            "~/.ssh:/d",
            "../up:/d",
            "./a/../../b:/d",
        ] {
            let e = mount(refused, WS).unwrap_err();
            assert!(e.contains("project"), "{refused}: {e}");
        }
        assert!(mount("data:relative", WS).is_err());
        assert!(mount("a:/b:weird", WS).is_err());
    }
}
