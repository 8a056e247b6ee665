# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 8. CIRR, CIRCO and COCO object composition
#
# The benchmarks users compare against beyond the design card, each with its official definition:
#
# - **CIRR** (val): gallery = all val images, the reference removed from its own ranking; Recall@1/5/10/50 and Recall_subset@1/2/3 within the query's image set. Prompt `a photo of * , {caption}`. Also writes the two test1 files for the evaluation server.
# - **CIRCO** (val): gallery = COCO unlabeled2017; mAP@5/10/25/50 with AP@K = sum P@k rel(k) / min(K, |GT|). Also writes the test file for the server.
# - **COCO object composition**: a masked object crop + the image's other object names (`a photo of * and {class} and ...`) must retrieve the image; Recall@1/5/10.
#
# A benchmark left out of `paper_data.benchmarks` gets a results file that says so. The demo world has a **CIRR analogue** only: photos of its objects in image sets of six (a base object and five variants, one or two of class, colour, pattern and size changed), queries from one member to another with a caption naming every change (`is blue instead of red`, `the same but a star`), written as CIRR's files and scored by the same protocol code.
#
# The two hatched **Combiner** rows are the supervised comparison: one trained on the CIRR analogue's own training split (other renders), one on the Fashion-IQ analogue's garments, scored here on objects it never saw. The README's transfer table puts both beside Pic2Word on every benchmark.

# %% tags=["parameters"]
# Parameters: papermill (DVC) sets them; stepping through by hand, edit them here.
profile = None  # demo | tiny | paper; None: params.yaml's `profile`
results_dir = None  # None: runs/interactive/<profile>/ (never the DVC-tracked results/)
seeds = None  # e.g. [0]; None: the profile's seeds
mapper_checkpoint = None  # a mapper checkpoint to evaluate instead of the trained ones

# %%
from p2w_lib.app import evaluation, figures, report
from p2w_lib.app.profile import enter_repo_root, notebook_profile
from p2w_lib.protocols import cirr

root = enter_repo_root()
p = notebook_profile(profile, results_dir, seeds, mapper_checkpoint)

# %%
results = {seed: evaluation.evaluate_more_benchmarks(p, seed) for seed in p.seeds}
first = results[p.seeds[0]]
report.metrics_frame(first["cirr"], keys=None)

# %% [markdown]
# CIRCO: mAP@K counts every annotated ground truth (ranked by the model) and semantic mAP@10 splits it by the aspect the caption changes.

# %%
report.metrics_frame(first["circo"], keys=None) if "circo" in first else "no CIRCO analogue in this profile"

# %%
report.metrics_frame(
    first["coco_objects"], keys=None
) if "coco_objects" in first else "no COCO analogue in this profile"

# %% [markdown]
# How many queries each benchmark evaluated and skipped, and the submission files written for the test servers.

# %%
{task: {k: v for k, v in r.items() if k.startswith("n_") or k == "submissions"} for task, r in first.items()}

# %% [markdown]
# Each method's numbers beside its published ViT-L/14 ones (`reference_numbers.py` names each source and how far it was checked). CIRR: ours are on val, the papers' on test1; CIRCO: ours on val, theirs on test.

# %%
tuple(report.paper_comparison(first[b], b) for b in first) if p.kind == "paper" else "demo profile: no paper numbers"

# %% [markdown]
# CIRR's Recall@K over the whole gallery and Recall_subset@K within the query's image set, per method: the mean over seeds, each seed a dot.

# %%
metrics = [f"R@{k}" for k in cirr.KS] + [f"Rs@{k}" for k in cirr.SUBSET_KS]
title = f"{'demo world: CIRR analogue' if p.kind == 'demo' else 'CIRR val'}, recall"
fig = (
    figures.metric_bars({s: r["cirr"] for s, r in results.items()}, metrics, title=title)
    if "methods" in first["cirr"]
    else figures.placeholder(f"CIRR: skipped ({first['cirr'].get('skipped')})")
)
print("saved", figures.save_figure(fig, p.results_dir / "figures" / "cirr.png"))
