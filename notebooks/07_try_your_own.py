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
# # 7. Try your own query
#
# Any image, any text, any folder of images. The text may be a prompt with `*` (`a origami of *`) or a modification (`is red with a white logo`, composed as `a photo of * , ...`). The same search runs from Python (`p2w_lib.retrieval.gallery.search`) and from the command line:
#
# ```bash
# python -m p2w_lib search --image my.jpg --text "is red with a white logo" --gallery my_images/ --out grid.png
# ```

# %% tags=["parameters"]
# Parameters: papermill (DVC) sets them; stepping through by hand, edit them here.
profile = None  # demo | tiny | paper; None: params.yaml's `profile`
results_dir = None  # None: runs/interactive/<profile>/ (never the DVC-tracked results/)
seeds = None  # e.g. [0]; None: the profile's seeds
mapper_checkpoint = None  # a mapper checkpoint to evaluate instead of the trained ones
image = None  # default: a candidate image of the demo world's Fashion-IQ analogue
text = "is red with a white logo"
gallery = None  # default: that dataset's image folder
k = 5

# %%
from p2w_lib.app import figures, models, tables
from p2w_lib.app.profile import enter_repo_root, notebook_profile

root = enter_repo_root()
p = notebook_profile(profile, results_dir, seeds, mapper_checkpoint)

# %% [markdown]
# The search below is the figure DVC keeps; the gallery's embeddings are cached, so a second search of the same folder is fast.

# %%
from p2w_lib.retrieval.gallery import search

clip, mapper = models.clip_and_mapper(p, p.seeds[0])
image, gallery = tables.default_query(p, image, gallery)
hits = search(clip, mapper, image, text, gallery, k=k, cache_dir=p.cache_dir)
hits

# %%
fig = figures.search_grid(image, text, hits)
print("saved", figures.save_figure(fig, p.results_dir / "figures" / "try_your_own.png"))

# %% [markdown]
# ## Interactive composer
#
# Pick a query image from the gallery (or upload one), type the modification and choose the gallery folder: the top-k of Pic2Word and of image + text are searched again when you pick or upload an image, move the slider, or press Enter in a text box. The controls need a running kernel, so they appear only when you step through this notebook in JupyterLab; the executed copy in `results/notebooks/` shows, below, a sentence saying what the composer searches, and the grid above is that same search.

# %%
from p2w_lib.app.search_widget import Composer

composer = Composer(clip, mapper, gallery, cache_dir=p.cache_dir, k=k, image=image, text=text)
composer
