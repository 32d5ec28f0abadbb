#!/usr/bin/env bash
# Writes patches/burn-flex.diff: the patched burn-flex against the published 0.22.1
# (cargo's registry copy, present after any build of the workspace).
set -euo pipefail
cd "$(dirname "$0")"
orig=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/burn-flex-0.22.1 | head -1)
diff -ruN -x Cargo.lock -x Cargo.toml.orig -x BENCHMARKS.md -x COMPARISON.md \
    -x .cargo-ok -x .cargo_vcs_info.json -x PATCH.md \
    "$orig" burn-flex | sed -e "s|$orig|a|" -e 's|burn-flex/|b/|' >burn-flex.diff.tmp || true
mv burn-flex.diff.tmp burn-flex.diff
echo "wrote patches/burn-flex.diff ($(grep -c '^[-+][^-+]' burn-flex.diff) changed lines)"
