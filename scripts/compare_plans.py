#!/usr/bin/env python3
"""Compares berth's and gitlab-ci-local's plans with each case's expected plan.

Called by compare-gitlab-ci-local.sh as: compare_plans.py CORPUS RESULTS CASE...
RESULTS/<case>/ holds berth.out/.rc and, when gitlab-ci-local ran, gcl.out/.rc and
gcl-expanded.yml (for its stage list). Prints a table, then every difference.
Exit status 1 when berth differs from an expected plan.
"""
import json
import os
import sys


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def expected_of(case_dir):
    """`refused`, `error`, or the expected list of jobs."""
    expect = read(os.path.join(case_dir, "expect"))
    if expect is not None:
        return expect.strip()
    return json.loads(read(os.path.join(case_dir, "plan.json")))


def berth_result(out_dir):
    rc = int((read(os.path.join(out_dir, "berth.rc")) or "-1").strip())
    out = read(os.path.join(out_dir, "berth.out")) or ""
    err = read(os.path.join(out_dir, "berth.err")) or ""
    # Exit 2 is also berth's answer to a flag it does not know: that is no verdict on the case.
    if rc == 2 and ("unexpected argument" in err or "unrecognized subcommand" in err):
        return None, "berth rejected the command line: " + err.strip().splitlines()[0][:160]
    if rc == 2:
        return "error", None
    if rc != 0:
        return None, f"exit {rc}"
    try:
        plan = json.loads(out) if out.strip() else []
    except ValueError as e:
        return None, f"not JSON: {e}"
    # A pipeline that workflow rules refuse creates no job.
    return ("refused" if plan == [] else plan), None


def gcl_stages(out_dir):
    """The stage list from gitlab-ci-local's expanded YAML (js-yaml's block style)."""
    text = read(os.path.join(out_dir, "gcl-expanded.yml")) or ""
    stages, inside = [], False
    for line in text.splitlines():
        if line.startswith("stages:"):
            inside = True
            continue
        if inside:
            if line.startswith("  - "):
                stages.append(line[4:].strip().strip("'\""))
            else:
                break
    return stages


def normalise_need(need):
    if isinstance(need, str):
        need = {"job": need}
    out = {
        "job": need.get("job"),
        "artifacts": need.get("artifacts", True),
        "optional": need.get("optional", False),
    }
    if "parallel" in need:
        out["parallel"] = need["parallel"]  # gitlab-ci-local keeps it unexpanded
    return out


def gcl_result(out_dir):
    rc_text = read(os.path.join(out_dir, "gcl.rc"))
    if rc_text is None:
        return None, "n/a"
    if int(rc_text.strip()) != 0:
        return "error", None
    try:
        text = read(os.path.join(out_dir, "gcl.out")) or ""
        # Warnings may come before the JSON array on stdout.
        start = text.find("\n[")
        jobs = json.loads(text if text.startswith("[") else text[start + 1 :])
    except ValueError as e:
        return None, f"not JSON: {e}"
    stages = gcl_stages(out_dir)
    rank = {s: i for i, s in enumerate(stages)}
    jobs = [j for j in jobs if j.get("when") != "never"]
    # Python's sort is stable: file order stays within a stage.
    jobs.sort(key=lambda j: rank.get(j.get("stage"), len(rank)))
    plan = []
    for j in jobs:
        allow = j.get("allow_failure", j.get("allowFailure", False))
        item = {
            "name": j["name"],
            "stage": j["stage"],
            "when": j["when"],
            "allow_failure": bool(allow),
        }
        if j.get("needs") is not None:
            item["needs"] = [normalise_need(n) for n in j["needs"]]
        plan.append(item)
    return ("refused" if plan == [] else plan), None


def diff(expected, actual):
    """Lines describing how actual differs from expected; empty when they agree."""
    if isinstance(expected, str) or isinstance(actual, str):
        return [] if expected == actual else [f"expected {describe(expected)}, got {describe(actual)}"]
    lines = []
    exp_names = [j["name"] for j in expected]
    act_names = [j["name"] for j in actual]
    missing = [n for n in exp_names if n not in act_names]
    extra = [n for n in act_names if n not in exp_names]
    if missing:
        lines.append(f"missing jobs: {missing}")
    if extra:
        lines.append(f"unexpected jobs: {extra}")
    common_exp = [n for n in exp_names if n in act_names]
    common_act = [n for n in act_names if n in exp_names]
    if common_exp != common_act:
        lines.append(f"order: expected {common_exp}, got {common_act}")
    by_name = {j["name"]: j for j in actual}
    for e in expected:
        a = by_name.get(e["name"])
        if a is None:
            continue
        for key in sorted(set(e) | set(a)):
            if e.get(key, "<absent>") != a.get(key, "<absent>"):
                lines.append(
                    f"{e['name']!r}.{key}: expected {json.dumps(e.get(key, '<absent>'))}, "
                    f"got {json.dumps(a.get(key, '<absent>'))}"
                )
    return lines


def describe(value):
    if isinstance(value, str):
        return value
    return f"a plan of {len(value)} jobs"


def main():
    corpus, results, cases = sys.argv[1], sys.argv[2], sys.argv[3:]
    rows, details, berth_bad = [], [], 0
    for case in cases:
        case_dir, out_dir = os.path.join(corpus, case), os.path.join(results, case)
        if not os.path.isdir(out_dir):
            continue
        expected = expected_of(case_dir)
        noted = os.path.exists(os.path.join(case_dir, "NOTES.md"))
        cells = []
        for tool, (actual, problem) in (("berth", berth_result(out_dir)), ("gcl", gcl_result(out_dir))):
            if problem == "n/a":
                cells.append("n/a")
                continue
            lines = [problem] if problem else diff(expected, actual)
            if not lines:
                cells.append("same")
                continue
            if tool == "berth":
                berth_bad += 1
                cells.append("DIFFERS")
            else:
                cells.append("differs (NOTES.md)" if noted else "DIFFERS (unexplained)")
            details.append((case, tool, lines))
        rows.append((case, *cells))

    width = max([len(r[0]) for r in rows] + [4])
    print(f"{'case'.ljust(width)}  {'berth vs expected'.ljust(18)}  gcl vs expected")
    for case, b, g in rows:
        print(f"{case.ljust(width)}  {b.ljust(18)}  {g}")
    for case, tool, lines in details:
        print(f"\n== {case}: {tool}")
        for line in lines:
            print(f"   {line}")
        if tool == "berth":
            err = read(os.path.join(results, case, "berth.err")) or ""
            if err.strip():
                print("   stderr: " + err.strip().splitlines()[0][:200])
    same_b = sum(1 for r in rows if r[1] == "same")
    same_g = sum(1 for r in rows if r[2] == "same")
    print(f"\n{len(rows)} cases: berth matches {same_b}, gitlab-ci-local matches {same_g}")
    return 1 if berth_bad else 0


if __name__ == "__main__":
    sys.exit(main())
