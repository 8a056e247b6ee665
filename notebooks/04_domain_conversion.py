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
# # 4. Domain conversion (ImageNet-R protocol)
#
# Queries are real photos; each is composed with `a {domain} of *` and must retrieve renditions of the same class in that domain. The gallery also holds the query photos as distractors.
#
# **How to read the numbers.** The metric is Pic2Word's *true recall@K*: relevant images in the top K divided by all relevant images. With 30 relevant renditions per query (the demo), even a perfect ranking scores at most 10/30 = 33.3% at K=10, and 50/30 caps at 100% at K=50: the figure marks this ceiling. A random ranking scores about K / gallery size. **Image only** ignores the text, **text only** ignores the image, **image + text** adds the two normalised embeddings; **oracle text** (demo only) names the true class and domain in words, the best a perfect pseudo token could do with this CLIP.
#
# Beside the zero-shot methods, the hatched **Combiner (trained on Fashion-IQ)** bars are the paper's supervised comparison: a model trained on the Fashion-IQ analogue's labeled triplets, here on a task it never saw (it reads the text-only string, `a origami of`, as its caption). The README gives its margin over Pic2Word with intervals.

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
results = {seed: evaluation.evaluate_domain_conversion_stage(p, seed) for seed in p.seeds}
report.metrics_frame(results[p.seeds[0]], keys=("R@10", "R@50", "P@10"))

# %% [markdown]
# The table is the first seed, per rendition domain and averaged. Below: the average per seed, then mean and standard deviation over seeds.

# %%
report.seed_comparison(results, f"R@{p.eval.ks[0]}")

# %% [markdown]
# The paper profile puts each method's averages beside its published ViT-L/14 numbers (`reference_numbers.py`; for domain conversion only the Pic2Word paper has any).

# %%
report.paper_comparison(
    results[p.seeds[0]], "domain_conversion"
) if p.kind == "paper" else "demo profile: no paper numbers"

# %% [markdown]
# Bars are the mean over seeds, dots each seed, the dashed line the ceiling of true recall.

# %%
k = p.eval.ks[0]
world = "demo world: " if p.kind == "demo" else ""
fig = figures.grouped_bars(results, f"R@{k}", title=f"{world}domain conversion, true recall@{k} per domain")
print("saved", figures.save_figure(fig, p.results_dir / "figures" / "domain_conversion.png"))
