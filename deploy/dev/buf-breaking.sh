#!/usr/bin/env bash
# `make buf-breaking`: the contracts in proto/ against the last release (the commit that
# proto/RELEASED names), or against BREAKING_AGAINST (any git ref, e.g. main). Wire and JSON
# compatibility as docs/COMPATIBILITY.md promises; buf names each breaking change.
set -euo pipefail
cd "$(dirname "$0")/../.."
buf=$1
against=${BREAKING_AGAINST:-$(cat proto/RELEASED)}
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "buf-breaking: not a git checkout, so there is no release to compare with; skipped" >&2
  exit 0
fi
if ! commit=$(git rev-parse --verify --quiet "$against^{commit}"); then
  echo "buf-breaking: $against is not in this checkout's history (a shallow clone?); skipped" >&2
  exit 0
fi
cd proto
"$buf" breaking --against "../.git#ref=$commit,subdir=proto"
echo "buf-breaking: compatible with $against"
