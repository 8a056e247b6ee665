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
# # 3. Training SEARLE's phi (a third method: textual inversion, then distillation)
#
# SEARLE (Baldrati et al., ICCV 2023) learns the same kind of pseudo word token as Pic2Word and LinCIR, in two steps. First, *optimisation-based textual inversion* (OTI): for each training image a token is optimised directly, so that sentences such as `a sketch of a *` embed like the image, while a regulariser asks that a phrase about one of the image's concepts still reads the same with the concept replaced by the token. Then a small network phi is trained to predict those tokens from the image embedding (a contrastive distillation loss), with the same regulariser. At query time phi takes the reference image's embedding, and the evaluation notebooks compose the same prompts with its token as with the other methods'.
#
# The original draws its concepts from Open Images' class names and its phrases from GPT-Neo. Neither can be fetched here, so the concepts are the training list's frequent content words and the phrases are the list's own captions, used as text only (`p2w_lib/methods/searle/concepts.py`, a named deviation). The demo inverts a 512-image subset of the list with fewer steps than the original; the settings are in `params.yaml` under `searle`.
#
# This stage can be switched off with `searle.enabled: false` in `params.yaml`; the evaluation notebooks then score the other methods only.

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
# The concepts and their phrases. Each concept below is a content word that at least `searle.min_concept_count` distinct captions use; one of those captions is shown as OTI's regulariser uses it, with the concept's first occurrence replaced by the token. Each image is matched to its most similar concepts by CLIP, as in the original.

# %%
tables.concept_examples(p, n=8)

# %% [markdown]
# Per seed: OTI runs first (a progress bar per batch of images; the tokens are kept in `models/<profile>/searle/seed<N>/oti_tokens.pt`, so a stopped run resumes), then phi's distillation. The table gives phi's steps and its last logged loss (distillation plus weighted regulariser).

# %%
runs = training.train_searles(p)
{
    seed: (r.steps, round(r.last_loss, 4)) for seed, r in runs.items()
} if runs else "SEARLE is switched off (searle.enabled: false)"

# %% [markdown]
# phi's loss per seed on a log scale. The distillation part starts near the logarithm of the number of candidate tokens in a batch (2 x batch - 1) and falls as phi learns to tell the images' OTI tokens apart; the regulariser's part is a cosine distance and stays small.

# %%
logs = {f"seed {s}": p.searle_dir(s) / "train_log.csv" for s in runs}
title = f"{'demo world: ' if p.kind == 'demo' else ''}SEARLE phi training loss"
fig = (
    figures.loss_curves(logs, title=title)
    if runs
    else figures.placeholder("SEARLE is switched off (searle.enabled: false)")
)
print("saved", figures.save_figure(fig, p.results_dir / "figures" / "searle_loss.png"))
