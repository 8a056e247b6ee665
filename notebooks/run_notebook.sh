#!/usr/bin/env bash
# Execute one numbered notebook with papermill for a profile, then export it to HTML.
# usage: notebooks/run_notebook.sh 03_train_mapper demo [results_dir]
# results_dir defaults to results (the demo); the paper pipeline passes results/paper.
#
# While it runs, the cells' printed output and progress bars stream to this terminal. The notebook
# source is notebooks/NAME.py (the percent-format half of the pair, see notebooks/jupytext.toml),
# converted to a fresh notebook, so outputs a JupyterLab session saved never reach the run. It
# is executed into runs/partial/ and moved into <results_dir>/notebooks/ only on success, tidied
# (progress bars in their final state, no machine paths); a failed run leaves its partial notebook,
# with the failing cell and its traceback, in runs/partial/ and says so.
set -euo pipefail
name="$1"
profile="$2"
results="${3:-results}"
out="$results/notebooks"
partial="runs/partial/${name}.ipynb"
source="runs/partial/${name}.source.ipynb"
mkdir -p "$out" runs/partial
started=$SECONDS  # the stage's wall time, kernel start and HTML export included (docs/performance.md)
rm -f "$partial" "$source"
jupytext --quiet --to ipynb --output "$source" "notebooks/${name}.py"
echo "[$name] running notebooks/${name}.py (profile $profile); output follows" >&2
# --log-output: papermill logs each cell's start and output as it arrives (to stderr, appended, so a
# redirected log keeps earlier stages). TQDM_MININTERVAL: a progress bar refreshes every 15 s, not
# ten times a second, so the log gets a line per 15 s and the notebook few fragments to tidy.
if ! TQDM_MININTERVAL=15 papermill "$source" "$partial" -p profile "$profile" -p results_dir "$results" \
    --cwd . --log-output --log-level INFO; then
  echo "[$name] FAILED: the partial notebook, with the failing cell, is $partial (open it in JupyterLab)" >&2
  exit 1
fi
rm -f "$source"
python -m p2w_lib.app.notebook_outputs "$partial"
mv "$partial" "$out/${name}.ipynb"
# offline.html.j2: JupyterLab's HTML export without the scripts it fetches from CDNs
jupyter nbconvert --to html --template-file notebooks/offline.html.j2 --log-level WARN "$out/${name}.ipynb"
took=$((SECONDS - started))
echo "[$name] done in $((took / 60)) min $((took % 60)) s: $out/${name}.ipynb and .html" >&2
