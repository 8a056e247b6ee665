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
# # 3. Training Combiner (the supervised comparison, on labeled triplets)
#
# Every other method in this project is zero-shot: it never sees a composed-retrieval example. The Pic2Word paper's argument is made against **Combiner** (Baldrati et al.; ABaldrati/CLIP4Cir), a model trained on labeled triplets — a reference image, a relative caption, the target image — over the same frozen CLIP. A small network fuses the image's and the caption's CLIP features into the target's; the loss is a cross-entropy over the batch's targets. Its case: supervised training wins on the data it was trained on and is tailored to it; the evaluation notebooks score it on every benchmark to show how far that holds.
#
# One Combiner is trained per triplet source (here the Fashion-IQ training split; the demo world writes its analogue in the same files, with images of their own, never an evaluation image). CLIP is frozen, so every image and caption form is embedded once and training reads the cached features; that makes the original's large batch cheap. The settings are in `params.yaml` under `combiner`; `combiner.fashion_iq: false` switches this one off.

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
# Some training triplets. Fashion-IQ gives two captions per triplet; as in CLIP4Cir, each training step draws one of four texts from them (both orders joined by "and", or either caption alone), and the evaluation composes with the first form.

# %%
tables.triplet_examples(p, "fashion_iq", n=5) if p.enabled("combiner_fashion_iq") else "switched off"

# %% [markdown]
# Per Combiner and seed: the optimisation steps and the last logged loss (the cross-entropy of each query over the batch's targets; a random model starts near the logarithm of the batch size).

# %%
runs = training.train_stage(p, "train_combiner")
{name: {seed: (r.steps, round(r.last_loss, 4)) for seed, r in by_seed.items()} for name, by_seed in runs.items()}

# %% [markdown]
# The loss per seed on a log scale, one line per Combiner.

# %%
logs = {f"{name}, seed {s}": r.log_csv for name, by_seed in runs.items() for s, r in by_seed.items()}
title = f"{'demo world: ' if p.kind == 'demo' else ''}Combiner training loss"
fig = figures.loss_curves(logs, title=title) if logs else figures.placeholder("Combiner is switched off (params.yaml)")
print("saved", figures.save_figure(fig, p.results_dir / "figures" / "combiner_loss.png"))
