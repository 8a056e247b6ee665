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
# # 6. Qualitative results
#
# For a few queries of each benchmark: the query image and its text, the ground-truth target where there is exactly one (Fashion-IQ, CIRR), then the top-5 retrievals of Pic2Word and of the image + text baseline. Correct retrievals are outlined in green. Examples are drawn with the seed, so the same seed shows the same queries.

# %% tags=["parameters"]
# Parameters: papermill (DVC) sets them; stepping through by hand, edit them here.
profile = None  # demo | tiny | paper; None: params.yaml's `profile`
results_dir = None  # None: runs/interactive/<profile>/ (never the DVC-tracked results/)
seed = None  # whose CLIP and mapper; None: the profile's first seed
n_examples = 4  # domain-conversion and CIRR queries to show (Fashion-IQ: one per category)
mapper_checkpoint = None  # a mapper checkpoint to evaluate instead of the trained ones

# %%
from p2w_lib.app import figures, tables
from p2w_lib.app.profile import enter_repo_root, notebook_profile

root = enter_repo_root()
p = notebook_profile(profile, results_dir, [seed] if seed is not None else None, mapper_checkpoint)

# %%
examples = tables.qualitative_examples(p, p.seeds[0], n=n_examples)
{name: len(rows) for name, rows in examples.items()}

# %% [markdown]
# **Domain conversion**: each row pair is one photo query with `a {domain} of *`; a hit is a rendition of the query's class in that domain.

# %%
world = "demo world: " if p.kind == "demo" else ""
fig = figures.retrieval_grid(examples["domain_conversion"], title=f"{world}domain conversion, top 5")
print("saved", figures.save_figure(fig, p.results_dir / "figures" / "qualitative_domain_conversion.png"))

# %% [markdown]
# **Fashion-IQ**: the candidate garment with its two relative captions; the only hit is the labelled target (dashed), and garments that also match the text but are not the target count as misses, as in the benchmark.

# %%
fig = figures.retrieval_grid(examples["fashion_iq"], title=f"{world}Fashion-IQ analogue, top 5")
print("saved", figures.save_figure(fig, p.results_dir / "figures" / "qualitative_fashion_iq.png"))

# %% [markdown]
# **CIRR**: the reference photo with Pic2Word's prompt `a photo of * , {caption}`, then the labelled target (dashed); as in the benchmark, the whole val gallery is ranked with the query's own reference image removed, and only the target counts as a hit. In the demo this is the CIRR analogue (image sets of six variants of one object).

# %%
fig = figures.retrieval_grid(examples["cirr"], title=f"{world}CIRR{' analogue' if world else ''}, top 5")
print("saved", figures.save_figure(fig, p.results_dir / "figures" / "qualitative_cirr.png"))
