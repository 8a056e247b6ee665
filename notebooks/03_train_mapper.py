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
# # 3. Training the Pic2Word mapper
#
# Only the mapping network trains: image embedding -> pseudo word token `*`, with a contrastive loss between each image and `a photo of *` composed with its own token. CLIP is frozen, so image embeddings are computed once and cached; the text tower runs only as many positions as the prompt has.
#
# A finished checkpoint of the same settings, CLIP, images and code is reused; a killed run resumes from its last checkpoint; a checkpoint of other settings is replaced.

# %% tags=["parameters"]
# Parameters: papermill (DVC) sets them; stepping through by hand, edit them here.
profile = None  # demo | tiny | paper; None: params.yaml's `profile`
results_dir = None  # None: runs/interactive/<profile>/ (never the DVC-tracked results/)
seeds = None  # e.g. [0]; None: the profile's seeds

# %%
from p2w_lib.app import figures, training, training_data
from p2w_lib.app.profile import enter_repo_root, notebook_profile

root = enter_repo_root()
p = notebook_profile(profile, results_dir, seeds)

# %% [markdown]
# Per seed: the number of optimisation steps and the last logged loss.

# %%
runs = training.train_mappers(p)
{seed: (r.steps, round(r.last_loss, 4)) for seed, r in runs.items()}

# %% [markdown]
# The loss per seed on a log scale, with epoch ends dotted. It falls fast in the first epoch: the token only has to make `a photo of *` land near the image's own embedding, against the other images of the batch.

# %%
logs = {f"seed {s}": p.mapper_dir(s) / "train_log.csv" for s in p.seeds}
world = "demo world: " if p.kind == "demo" else ""
fig = figures.loss_curves(
    logs,
    title=f"{world}Pic2Word mapper training loss",
    steps_per_epoch=training_data.steps_per_epoch(p, p.train.batch_size),
)
print("saved", figures.save_figure(fig, p.results_dir / "figures" / "mapper_loss.png"))
