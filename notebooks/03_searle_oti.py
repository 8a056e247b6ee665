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
# # 3. SEARLE-OTI: inverting the benchmarks' query images
#
# SEARLE-OTI is SEARLE's textual inversion used as a method on its own: no network is trained; for each query's reference image a pseudo token is optimised at test time so that sentences such as `a sketch of a *` embed like the image (the optimisation notebook `03_train_searle` runs on training images, with the same `searle` settings in `params.yaml`). The evaluation notebooks then compose their prompts with these tokens exactly as with the other methods'.
#
# The inversion costs an optimisation per image, minutes for a benchmark, so it runs here, once per seed, and the tokens are kept in `models/<profile>/searle_oti/seed<N>/query_tokens.pt`; the evaluation notebooks read them and invert nothing. This stage runs each benchmark's own protocol with SEARLE-OTI alone, so the images are inverted in the order an evaluation presents them (its scores are thrown away here). The store is saved after each benchmark, so a stopped run resumes.
#
# Switch it off with `eval.searle_oti: false` in `params.yaml`: this stage then inverts nothing and the evaluation notebooks leave SEARLE-OTI out. The demo has it on, and this is its costliest stage after the CLIP's pretraining (the per-stage times: `docs/performance.md`).

# %% tags=["parameters"]
# Parameters: papermill (DVC) sets them; stepping through by hand, edit them here.
profile = None  # demo | tiny | paper; None: params.yaml's `profile`
results_dir = None  # None: runs/interactive/<profile>/ (never the DVC-tracked results/)
seeds = None  # e.g. [0]; None: the profile's seeds

# %%
from p2w_lib.app import evaluation, tables
from p2w_lib.app.profile import enter_repo_root, notebook_profile

root = enter_repo_root()
p = notebook_profile(profile, results_dir, seeds)

# %% [markdown]
# Per seed: a progress bar per batch of query images (a benchmark presents one domain or category at a time). The table gives how many images each seed inverted in this run; a resumed or repeated run inverts only the images its store lacks.

# %%
inverted = evaluation.invert_query_images(p)
inverted if p.eval.searle_oti else "SEARLE-OTI is switched off (eval.searle_oti: false)"

# %% [markdown]
# What the store holds per seed, and a check that each token belongs to its image: the share of tokens whose prompt `a photo of *` ranks the token's own image first among all the stored query images. OTI fits each token to its image, so this sits far above chance; a store whose tokens were paired with the wrong images would sit at chance.

# %%
tables.oti_store_table(p) if p.eval.searle_oti else "SEARLE-OTI is switched off (eval.searle_oti: false)"
