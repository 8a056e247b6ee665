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
# # 2. The demo CLIP
#
# No pretrained CLIP exists offline, so the demo profile trains a small one from scratch (a ResNet image tower at 64 px, a causal text transformer, open_clip's BPE tokenizer) on the world's CC3M-style list, once per seed, with CLIP's own symmetric contrastive loss. The paper profile uses OpenAI's ViT-L/14 and skips this step.
#
# A finished model whose settings, training data and training code match is reused, not retrained; a killed run resumes from its last saved state.

# %% tags=["parameters"]
# Parameters: papermill (DVC) sets them; stepping through by hand, edit them here.
profile = None  # demo | tiny | paper; None: params.yaml's `profile`
results_dir = None  # None: runs/interactive/<profile>/ (never the DVC-tracked results/)
seeds = None  # e.g. [0]; None: the profile's seeds

# %%
from p2w_lib.app import figures, prepare, report, training_data
from p2w_lib.app.profile import enter_repo_root, notebook_profile

root = enter_repo_root()
p = notebook_profile(profile, results_dir, seeds)

# %% [markdown]
# Composition can only work on a CLIP that recognises what prompts talk about. The table is the zero-shot accuracy (%) on held-out evaluation images: **class** picks the right one of 16 `a {domain} of a {class}` texts (chance 6.25%), **domain** one of 5 (chance 20%), **colour** one of 8 (chance 12.5%), and `class (photo)` etc. split class accuracy by domain. The mapper can only carry into the pseudo token what the image embedding holds: `class (photo)` bounds what domain conversion can reach.

# %%
sanity = prepare.pretrain_clips(p)
report.sanity_frame(sanity) if sanity else "paper profile: pretrained CLIP, nothing to train"

# %% [markdown]
# Training loss per seed (log scale); dotted lines mark the end of each pass over the pretraining list. The loss is the mean of the image-to-text and text-to-image cross-entropies over the batch.

# %%
if p.kind == "demo":
    logs = {f"seed {s}": p.clip_dir(s) / "pretrain_log.csv" for s in p.seeds}
    fig = figures.loss_curves(
        logs,
        title="demo world: CLIP pretraining loss",
        steps_per_epoch=training_data.steps_per_epoch(p, p.clip_pretrain.batch_size),
    )
    print("saved", figures.save_figure(fig, p.results_dir / "figures" / "clip_pretrain_loss.png"))
