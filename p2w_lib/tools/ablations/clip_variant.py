"""Measure one change to the demo CLIP: pretrain a variant on a built demo world, print its
zero-shot table and time. docs/demo_clip.md lists the variants tried and the command of each.

    python -m p2w_lib.tools.ablations.clip_variant --world data/demo --lr 3e-3 --text '{"width": 128, "layers": 3}' --same-caption

Captions can be redrawn with another `--caption-drop` without re-rendering: the images of a world
do not depend on it (every caption draws the same random numbers up to its words).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from p2w_lib.clip.backbone import load_clip, read_model_config
from p2w_lib.core.config import ClipConfig
from p2w_lib.data.cc3m import write_image_caption_list
from p2w_lib.demo.build import pretraining_split
from p2w_lib.demo.clip_pretrain import pretrain_clip
from p2w_lib.demo.config import DemoClipConfig, DemoWorldConfig
from p2w_lib.demo.sanity import zero_shot_table


def variant_model(base: str, vision: dict, text: dict, size: int | None, folder: Path) -> str:
    """A model config folder: `base` with the given vision/text overrides (and image size)."""
    cfg = read_model_config(base)
    cfg["model_cfg"]["vision_cfg"].update(vision)
    cfg["model_cfg"]["text_cfg"].update(text)
    if size:
        cfg["model_cfg"]["vision_cfg"]["image_size"] = cfg["preprocess_cfg"]["size"] = size
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(cfg, indent=1))
    return f"local-dir:{folder.resolve()}"


def recaptioned_list(world: Path, world_cfg: DemoWorldConfig, out: Path) -> Path:
    """The world's pretraining list with captions redrawn at world_cfg.caption_drop (same images)."""
    _, pairs = pretraining_split(random.Random(world_cfg.seed), world_cfg, world.resolve())
    write_image_caption_list(out, pairs)
    return out


def run_variant(world: Path, clip_cfg: DemoClipConfig, work: Path, caption_drop: float | None = None) -> dict:
    listing = world / "cc3m" / "train.tsv"
    if caption_drop is not None:
        settings = json.loads((world / "world.json").read_text())["config"]
        world_cfg = DemoWorldConfig(**{**settings, "caption_drop": caption_drop})
        listing = recaptioned_list(world, world_cfg, work / "train.tsv")
    start = time.perf_counter()
    folder = pretrain_clip(listing, work / "run", clip_cfg)
    seconds = time.perf_counter() - start
    clip = load_clip(ClipConfig(model=f"local-dir:{Path(folder).resolve()}", pretrained=None))
    return {
        "seconds": round(seconds),
        **{k: round(v, 1) for k, v in zero_shot_table(clip, world, None, per_domain=100).items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m p2w_lib.tools.ablations.clip_variant", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--world", default="data/demo", help="a built demo world (default: data/demo)")
    ap.add_argument("--model", default="p2w-demo", help="base model config (default: p2w-demo)")
    ap.add_argument("--vision", default="{}", help="JSON overrides of the vision config, e.g. '{\"width\": 32}'")
    ap.add_argument("--text", default="{}", help="JSON overrides of the text config, e.g. '{\"width\": 128}'")
    ap.add_argument("--size", type=int, default=None, help="image size the tower sees (default: the config's)")
    ap.add_argument("--steps", type=int, default=400, help="optimisation steps (default: 400)")
    ap.add_argument("--batch", type=int, default=256, help="batch size (default: 256)")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: 1e-3)")
    ap.add_argument("--warmup", type=int, default=40, help="warm-up steps (default: 40)")
    ap.add_argument(
        "--hard-negatives", type=float, default=0.0, help="share of each batch drawn as hard-negative groups"
    )
    ap.add_argument("--same-caption", action="store_true", help="identical captions in a batch are positives")
    ap.add_argument(
        "--caption-drop", type=float, default=None, help="redraw the captions with this attribute drop rate"
    )
    ap.add_argument("--seed", type=int, default=0, help="model and batch-order seed (default: 0)")
    ap.add_argument("--name", default="variant", help="label of the printed row")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="p2w-ablation-") as tmp:
        work = Path(tmp)
        model = variant_model(args.model, json.loads(args.vision), json.loads(args.text), args.size, work / "model")
        cfg = replace(
            DemoClipConfig(),
            model=model,
            steps=args.steps,
            batch_size=args.batch,
            lr=args.lr,
            warmup_steps=args.warmup,
            seed=args.seed,
            hard_negatives=args.hard_negatives,
            same_caption_positives=args.same_caption,
            checkpoint_every=10**9,
        )
        row = run_variant(Path(args.world), cfg, work, args.caption_drop)
    print(json.dumps({"name": args.name, **row}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
