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
# # 5. Fashion-IQ protocol
#
# Per category, the candidate image is composed with `a photo of * , {c2} and {c1}` (the official prompt) and must retrieve its one labelled target from the category's validation gallery. Triplets with missing images are counted and reported, not dropped silently. LinCIR, SEARLE and SEARLE-OTI are scored under their own papers' variant (`a photo of * that {c1} and {c2}`, both caption orders averaged), the protocol their published numbers use; `eval.prompts: pic2word` scores every method with Pic2Word's prompt instead (the results file also keeps their scores under it, `under_pic2word_prompts`). Combiner, the supervised row, reads the two captions themselves, as CLIP4Cir does (`C1 and c2`).
#
# **How to read the numbers.** Recall@K here is a hit rate: the share of queries whose target is in the top K (ceiling 100%; a random ranking scores K / gallery size). The baselines are the same as in notebook 4; the text-only and image + text rows encode the full prompt, literal `*` included, as the official code does.
#
# The hatched **Combiner (trained on Fashion-IQ)** bars are the supervised comparison, scored on the benchmark it was trained for (the analogue's training split: other images, the same kinds of captions). The README gives its margin over Pic2Word with intervals.

# %% tags=["parameters"]
# Parameters: papermill (DVC) sets them; stepping through by hand, edit them here.
profile = None  # demo | tiny | paper; None: params.yaml's `profile`
results_dir = None  # None: runs/interactive/<profile>/ (never the DVC-tracked results/)
seeds = None  # e.g. [0]; None: the profile's seeds
mapper_checkpoint = None  # a mapper checkpoint to evaluate instead of the trained ones

# %%
from p2w_lib.app import evaluation, figures, report
from p2w_lib.app.profile import enter_repo_root, notebook_profile

root = enter_repo_root()
p = notebook_profile(profile, results_dir, seeds, mapper_checkpoint)

# %%
results = {seed: evaluation.evaluate_fashion_iq_stage(p, seed) for seed in p.seeds}
report.metrics_frame(results[p.seeds[0]], keys=("R@10", "R@50", "P@10"))

# %% [markdown]
# The average per seed:

# %%
report.seed_comparison(results, f"R@{p.eval.ks[0]}")

# %% [markdown]
# **Is Pic2Word's margin over image + text real?** The difference in average recall, with a 95% paired bootstrap interval: queries are resampled within each category and both methods keep their scores on the same queries. An interval that excludes 0 means the margin is not an accident of which triplets were drawn.

# %%
report.paired_difference_frame(results)

# %% [markdown]
# The paper profile puts each method's averages beside its published ViT-L/14 numbers (Pic2Word's paper; SEARLE-XL, SEARLE-XL-OTI and LinCIR from theirs, with the sources in `reference_numbers.py`); below it, how many triplets were evaluable per category.

# %%
report.paper_comparison(results[p.seeds[0]], "fashion_iq") if p.kind == "paper" else "demo profile: no paper numbers"

# %%
results[p.seeds[0]]["counts"]

# %%
k = p.eval.ks[0]
world = "demo world: " if p.kind == "demo" else ""
fig = figures.grouped_bars(
    results,
    f"R@{k}",
    title=f"{world}Fashion-IQ analogue, recall@{k} per category",
    note=report.margin_note(results, f"R@{k}"),
)
print("saved", figures.save_figure(fig, p.results_dir / "figures" / "fashion_iq.png"))
