#!/usr/bin/env bash
# Execute one numbered notebook with papermill for a profile, then export it to HTML.
# usage: notebooks/run_notebook.sh 03_train_mapper demo [results_dir]
# results_dir defaults to results (the demo); the paper pipeline passes results/paper.
# The executed copy is written to a temporary name and moved into <results_dir>/notebooks/ only on
# success, so a failed run never leaves a complete-looking notebook behind; papermill's own
# error (the failing cell and its traceback) is what the stage prints.
set -euo pipefail
name="$1"
profile="$2"
out="${3:-results}/notebooks"
mkdir -p "$out"
tmp="$out/.${name}.running.ipynb"
trap 'rm -f "$tmp"' EXIT
papermill "notebooks/${name}.ipynb" "$tmp" -p profile "$profile" --cwd . --log-level WARNING
mv "$tmp" "$out/${name}.ipynb"
jupyter nbconvert --to html --log-level WARN "$out/${name}.ipynb"
