#!/usr/bin/env bash
# Build the fuzz targets and run each for a while, seeded from the repository's pipelines.
#   fuzz/run.sh [SECONDS] [TARGET...]     (default: 300 seconds each, targets pipeline_load expr)
# Works on a stable toolchain: `--sanitizer none` needs no nightly (cargo install cargo-fuzz once).
# Extra libFuzzer options go in FUZZ_ARGS (e.g. FUZZ_ARGS=-max_len=65536 for deep nesting).
# New inputs collect in fuzz/corpus/TARGET, crashes in fuzz/artifacts/TARGET (both ignored by git).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pipeline_load expr)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo fuzz build --sanitizer none -O

# Seeds: every pipeline in fixtures/ (and a GitLab checkout under fixtures/gitlab when present);
# for expressions, every `if:` found in those pipelines.
mkdir -p corpus/pipeline_load corpus/expr
n=0
while IFS= read -r -d '' file; do
  n=$((n + 1))
  cp "$file" "corpus/pipeline_load/seed-$n.yml"
  { grep -oE "if: .*" "$file" || true; } | sed -E "s/^if: //; s/^'(.*)'$/\1/; s/^\"(.*)\"$/\1/" |
    while IFS= read -r line; do
      printf '%s' "$line" > "corpus/expr/seed-$n-$(printf '%s' "$line" | cksum | cut -d' ' -f1)"
    done
done < <(find ../fixtures \( -name '*.yml' -o -name '.gitlab-ci.yml' \) -print0)
# Inputs kept on purpose (docs examples, past crashes) live in seeds/TARGET.
cp seeds/expr/* corpus/expr/
cp seeds/pipeline_load/* corpus/pipeline_load/

for target in "${targets[@]}"; do
  dict=()
  [ -f "$target.dict" ] && dict=("-dict=$target.dict")
  echo "== $target for ${seconds}s"
  cargo fuzz run --sanitizer none -O "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 "${dict[@]}" ${FUZZ_ARGS:-}
done
