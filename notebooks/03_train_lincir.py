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
# # 3. Training LinCIR's phi (a second method, from captions alone)
#
# LinCIR (Gu et al., CVPR 2024) learns the same kind of pseudo word token as Pic2Word, but never looks at an image while training. A caption's CLIP text embedding, with noise added, goes through a small network phi; the caption's keywords are replaced by phi's token; and the loss pulls the masked caption's embedding back onto the original's. At query time phi takes the reference *image's* embedding instead, and the evaluation notebooks compose the same prompts with it as with Pic2Word's token.
#
# This stage can be switched off with `lincir.enabled: false` in `params.yaml`; the evaluation notebooks then score the other methods only.

# %% tags=["parameters"]
# Parameters: papermill (DVC) sets them; stepping through by hand, edit them here.
profile = None  # demo | tiny | paper; None: params.yaml's `profile`
results_dir = None  # None: runs/interactive/<profile>/ (never the DVC-tracked results/)
seeds = None  # e.g. [0]; None: the profile's seeds

# %%
from p2w_lib.app import figures, tables, training
from p2w_lib.app.profile import enter_repo_root, notebook_profile

root = enter_repo_root()
p = notebook_profile(profile, results_dir, seeds)

# %% [markdown]
# What phi is trained on: captions of the training list with their keywords masked. Every run of determiners, adjectives and nouns becomes one `*`, as the original does with spaCy's tagger; here a stated rule stands in for the tagger (`p2w_lib/methods/lincir/keywords.py`, a named deviation). Some captions and their masked form:

# %%
tables.masked_caption_examples(p, n=8)

# %% [markdown]
# Per seed: the optimisation steps and the last logged loss (the mean squared distance between the masked and the original caption embedding).

# %%
runs = training.train_lincirs(p)
{
    seed: (r.steps, round(r.last_loss, 4)) for seed, r in runs.items()
} if runs else "LinCIR is switched off (lincir.enabled: false)"

# %% [markdown]
# The loss per seed on a log scale. It starts near the squared norm of a caption embedding divided by its width and falls as the token learns to stand for the masked words.

# %%
logs = {f"seed {s}": p.lincir_dir(s) / "train_log.csv" for s in runs}
title = f"{'demo world: ' if p.kind == 'demo' else ''}LinCIR phi training loss"
fig = (
    figures.loss_curves(logs, title=title)
    if runs
    else figures.placeholder("LinCIR is switched off (lincir.enabled: false)")
)
print("saved", figures.save_figure(fig, p.results_dir / "figures" / "lincir_loss.png"))
