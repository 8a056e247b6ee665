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
# # 1. Data preparation
#
# **Demo profile**: render the procedurally generated world, written in the real datasets' formats (a CC3M-style `filepath<TAB>title` list, Pic2Word's ImageNet-R lists, Fashion-IQ's caption and split files), so every later step reads it with the same loaders as the paper profile. Evaluation images are drawn apart from the training list.
#
# **Paper profile**: the datasets stay where you put them under `data/paper/`. This step fetches Pic2Word's ImageNet-R lists (sha256-checked), links your ImageNet validation folder and ImageNet-R, builds the seeded COCO object queries, writes the list of CC3M images present, and reports per benchmark how many listed files exist, naming the first missing ones (`data/paper/prepared/report.json`).
#
# Rendering is deterministic: the same `world` settings always give byte-identical files, so re-running this notebook rewrites the same world.

# %% tags=["parameters"]
# Parameters: papermill (DVC) sets them; stepping through by hand, edit them here.
profile = None  # demo | tiny | paper; None: params.yaml's `profile`
results_dir = None  # None: runs/interactive/<profile>/ (never the DVC-tracked results/)
seeds = None  # e.g. [0]; None: the profile's seeds

# %%
from p2w_lib.app import figures, prepare
from p2w_lib.app.profile import enter_repo_root, notebook_profile

root = enter_repo_root()
p = notebook_profile(profile, results_dir, seeds)

# %% [markdown]
# The summary counts what was written (demo) or found (paper). For the demo: pretraining pairs over 16 classes x 5 domains plus garments, photo queries with their renditions, and Fashion-IQ-style triplets per garment category.

# %%
summary = prepare.prepare_data(p)
summary

# %% [markdown]
# A sample of the world, one image per class: the `photo` domain the queries come from (a textured object on a textured background), the four rendition domains that play ImageNet-R's cartoon / origami / toy / sculpture, then garments that play Fashion-IQ's dress / shirt / toptee.

# %%
if p.kind == "demo":
    fig = figures.world_samples(p.world_dir)
    print("saved", figures.save_figure(fig, p.results_dir / "figures" / "world_samples.png"))
