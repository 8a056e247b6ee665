"""How the demo CLIP's starting temperature sets its modality gap, and what that does to domain conversion.

Real CLIP keeps image and text embeddings in two separate cones (the "modality gap"), so in
`normalise(image) + normalise(text)` the image term decides the ranking and the image + text
baseline finds photos like the query. A small CLIP trained from scratch at CLIP's default start
(1/0.07) closes the gap, and image + text becomes a strong composer the paper never saw. One run:
pretrain a demo CLIP at `--init-logit-scale`, then measure zero-shot accuracy, the gap, and domain
conversion R@10 of every method and the Fashion-IQ margin of Pic2Word over image + text after
training the mapper with the profile's settings.

    python -m p2w_lib.tools.ablations.modality_gap --init-logit-scale 70 --seed 0
    python -m p2w_lib.tools.ablations.modality_gap --clip batch_size=128 --clip steps=800 --seed 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

import yaml

from p2w_lib.app.profile import load_profile
from p2w_lib.app.training_data import training_images
from p2w_lib.clip.backbone import FrozenClip, load_clip
from p2w_lib.clip.features import embed_images
from p2w_lib.core.config import ClipConfig, validate
from p2w_lib.data.imagenet_r import TARGET_LIST, read_label_list
from p2w_lib.demo.clip_pretrain import pretrain_clip
from p2w_lib.demo.config import DemoClipConfig
from p2w_lib.demo.sanity import zero_shot_table
from p2w_lib.methods.base import encode_unique_texts
from p2w_lib.methods.pic2word.checkpoint import load_mapper
from p2w_lib.methods.pic2word.train import CHECKPOINT_NAME, train_mapper
from p2w_lib.protocols.domain_conversion import evaluate_domain_conversion
from p2w_lib.protocols.fashion_iq import evaluate_fashion_iq


def modality_gap(clip: FrozenClip, gallery: list[str], texts: list[str], cache_dir) -> dict[str, float]:
    """Mean cosine image-image and text-image over a gallery, and the distance between the modalities' means."""
    images = embed_images(clip, gallery, cache_dir=cache_dir, desc="gap images").tensor(normalize=True)  # [N, D]
    text = encode_unique_texts(clip, texts).float()  # [T, D], normalised
    image_image = images @ images.T  # [N, N]
    text_image = text @ images.T  # [T, N]
    return {
        "image_image_cos": image_image.mean().item(),
        "text_image_cos": text_image.mean().item(),
        "image_image_std": image_image.std().item(),
        "text_image_std": text_image.std().item(),
        "centroid_distance": (images.mean(0) - text.mean(0)).norm().item(),
    }


def run(
    params: Path,
    init_logit_scale: float | None,
    seed: int,
    work: Path,
    profile: str | None = None,
    clip_overrides: dict | None = None,
) -> dict:
    """One row; `init_logit_scale` None keeps the profile's, `clip_overrides` sets other clip_pretrain fields."""
    p = load_profile(params, profile)
    start_scale = p.clip_pretrain.init_logit_scale if init_logit_scale is None else init_logit_scale
    cfg = validate(
        replace(
            p.clip_pretrain, **(clip_overrides or {}), seed=seed, init_logit_scale=start_scale, checkpoint_every=10**9
        ),
        "clip_pretrain",
    )
    start = time.perf_counter()
    folder = pretrain_clip(p.world_dir / "cc3m" / "train.tsv", work / "clip", cfg)
    seconds = time.perf_counter() - start
    clip = load_clip(ClipConfig(model=f"local-dir:{Path(folder).resolve()}", pretrained=None))
    cache = work / "cache"
    domains = p.source.rendition_domains
    gallery = [str(p.world_dir / path) for path, _ in read_label_list(p.world_dir / TARGET_LIST)]
    gap = modality_gap(clip, gallery, [f"a {d} of" for d in domains], cache)
    train_mapper(clip, training_images(p), replace(p.train, seed=seed), p.mapper, work / "mapper", cache_dir=cache)
    mapper = load_mapper(work / "mapper" / CHECKPOINT_NAME, clip)
    result = evaluate_domain_conversion(
        clip,
        mapper,
        p.world_dir,
        domains,
        ks=p.eval.ks,
        cache_dir=cache,
        oracle_texts=p.source.oracle_texts(p, "domain_conversion"),
        profile=p.name,
        seed=seed,
    )
    fashion = evaluate_fashion_iq(
        clip,
        mapper,
        p.world_dir / "fashion-iq",
        ks=p.eval.ks,
        cache_dir=cache,
        oracle_texts=p.source.oracle_texts(p, "fashion_iq"),
        profile=p.name,
        seed=seed,
        prompts=p.eval.prompts,
    )
    margin = fashion["paired_difference"]["R@10"]  # Pic2Word minus image + text, paired bootstrap
    zero_shot = zero_shot_table(clip, p.world_dir, cache)
    return {
        "init_logit_scale": start_scale,
        **(clip_overrides or {}),
        "seed": seed,
        "pretrain_seconds": round(seconds),
        "final_logit_scale": round(clip.model.logit_scale.exp().item(), 1),
        "class (photo)": round(zero_shot["class (photo)"], 1),
        "class (worst domain)": round(min(v for k, v in zero_shot.items() if k.startswith("class (")), 1),
        **{k: round(v, 3) for k, v in gap.items()},
        **{f"R@10 {m}": round(v["R@10"], 2) for m, v in result["methods"].items()},
        "Fashion-IQ margin R@10 [95% CI]": [round(margin[k], 1) for k in ("mean", "ci_low", "ci_high")],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m p2w_lib.tools.ablations.modality_gap", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    ap.add_argument(
        "--profile", default=None, help="a demo-kind profile whose world is built (default: the file's `profile`)"
    )
    ap.add_argument(
        "--init-logit-scale",
        type=float,
        default=None,
        help="exp(logit scale) at initialisation (CLIP's: 14.3; default: the profile's)",
    )
    ap.add_argument(
        "--clip",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another clip_pretrain setting, as YAML, e.g. --clip steps=800 --clip batch_size=128",
    )
    ap.add_argument("--seed", type=int, default=0, help="CLIP and mapper seed (default: 0)")
    args = ap.parse_args(argv)
    overrides = dict(_setting(text, ap) for text in args.clip)
    with tempfile.TemporaryDirectory(prefix="p2w-gap-") as tmp:
        row = run(Path(args.params), args.init_logit_scale, args.seed, Path(tmp), args.profile, overrides)
    print(json.dumps(row))
    return 0


def _setting(text: str, ap: argparse.ArgumentParser) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or key not in {f.name for f in fields(DemoClipConfig)} or key in ("seed", "init_logit_scale"):
        ap.error(
            f"--clip {text}: expected KEY=VALUE with KEY a clip_pretrain setting other than seed and "
            "init_logit_scale (those have their own flags)"
        )
    return key, yaml.safe_load(value)


if __name__ == "__main__":
    raise SystemExit(main())
