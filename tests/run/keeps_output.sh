#!/usr/bin/env bash
# keeps_output.sh TERSE DECKDIR: a run that fails (a bad deck, or a bad data file found while loading) must not
# touch an existing output file, and must leave no file under the final name when there was none.
set -euo pipefail
terse=$1 decks=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "previous results" > "$work/out.h5"
before=$(sha256sum < "$work/out.h5")
for deck in unknown_key.yaml malformed_libsvm.yaml; do
  if (cd "$decks" && "$terse" run "$deck" --output "$work/out.h5") 2>/dev/null >/dev/null; then
    echo "FAIL: $deck was accepted"; exit 1
  fi
  [[ $(sha256sum < "$work/out.h5") == "$before" ]] || { echo "FAIL: $deck changed the existing output"; exit 1; }
  (cd "$decks" && "$terse" run "$deck" --output "$work/new.h5") 2>/dev/null >/dev/null || true
  [[ ! -e $work/new.h5 ]] || { echo "FAIL: $deck left $work/new.h5"; exit 1; }
done
leftovers=$(find "$work" -name '*.tmp-*' | wc -l)
[[ $leftovers == 0 ]] || { echo "FAIL: a refused run left a temporary file"; exit 1; }
echo "existing output untouched; no output or temporary file created by refused runs"
