"""The pipeline's stages as plain functions over typed settings from params.yaml.

Notebooks (and the `train`/`prepare` commands) call these, one per step: prepare data, pretrain
the demo CLIP, train the mapper, evaluate. Every path a stage reads or writes derives from the
profile's settings, so the deps/outs in dvc.yaml (demo) and pipelines/paper/dvc.yaml agree with it.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .benchmarks import BENCHMARKS, EvalContext, benchmarks_of_stage
from .clip_backbone import FrozenClip, load_clip
from .config import (
    ClipConfig, ConfigError, DemoClipConfig, DemoWorldConfig, LaunchConfig, LinCIRConfig, MapperConfig, SEARLEConfig,
    TrainConfig, from_dict,
)
from .io_utils import atomic_write_json
from .paper_data import PaperDataConfig
from .report import sanity_summary, summary_metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings.

    Every default is the official protocol; the alternatives are this project's named extras.
    fashion_iq_prompt: "pic2word" (official) or "searle" (the follow-ups' variant).
    imagenet_r_queries: "all" (official: a query whose class has no rendition in a domain scores 0
        there) or "evaluable" (such queries left out of that domain's mean).
    coco_prompt: "with_class" (official: `a photo of * and {query class} and {others}`) or
        "class_free" (`a photo of * and {others}`).
    mapper_checkpoint: evaluate this checkpoint (ours, or the official Pic2Word release) instead of
        the profile's trained mapper.
    lincir_checkpoint: the same for LinCIR's phi (ours, or the official release, `{"Phi": ...}`).
    searle_checkpoint: the same for SEARLE's phi (ours, or the official SEARLE / SEARLE-XL release).
    searle_oti: also score SEARLE-OTI, the inversion of every query's reference image with the
        `searle` settings; the searle_oti stage inverts them into a token store that the evaluations
        read (no training; costly: README, "Other methods").
    test_submissions: also write the CIRR test1 / CIRCO test files for the evaluation servers.
    """

    ks: tuple[int, int] = (10, 50)
    max_bad_fraction: float = 0.01
    fashion_iq_prompt: str = "pic2word"
    imagenet_r_queries: str = "all"
    coco_prompt: str = "with_class"
    mapper_checkpoint: str | None = None
    lincir_checkpoint: str | None = None
    searle_checkpoint: str | None = None
    searle_oti: bool = True
    test_submissions: bool = True


@dataclass(frozen=True)
class Profile:
    """Every setting of one profile (a section of params.yaml)."""

    name: str
    kind: str  # "demo" (generated world, CLIP trained here) or "paper" (real CLIP and data)
    seeds: tuple[int, ...]
    world: DemoWorldConfig = field(default_factory=DemoWorldConfig)
    clip_pretrain: DemoClipConfig = field(default_factory=DemoClipConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    mapper: MapperConfig = field(default_factory=MapperConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    paper_data: PaperDataConfig = field(default_factory=PaperDataConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    lincir: LinCIRConfig = field(default_factory=LinCIRConfig)
    searle: SEARLEConfig = field(default_factory=SEARLEConfig)
    results_root: str | None = None  # where metrics/figures go; None: the committed folder (see results_dir)

    # -- paths, all derived from the profile name (dvc.yaml uses the same conventions) ---
    @property
    def world_dir(self) -> Path:
        return Path("data") / self.name

    @property
    def models_dir(self) -> Path:
        return Path("models") / self.name

    @property
    def cache_dir(self) -> Path:
        return Path(".cache") / self.name

    @property
    def prepared_dir(self) -> Path:
        """What the paper profile's data preparation writes (lists, COCO queries, the report)."""
        return self.world_dir / "prepared"

    @property
    def results_dir(self) -> Path:
        # The committed demo results stay in results/; a paper-kind run gets its own folder beside them.
        if self.results_root is not None:
            return Path(self.results_root)
        return Path("results") if self.kind == "demo" else Path("results") / self.name

    def clip_dir(self, seed: int) -> Path:
        return Path(self.models_dir) / "clip" / f"seed{seed}"

    def mapper_dir(self, seed: int) -> Path:
        return Path(self.models_dir) / "mapper" / f"seed{seed}"

    def phi_dir(self, method: str, seed: int) -> Path:
        """Where `method`'s phi of `seed` is trained (lincir, searle)."""
        return Path(self.models_dir) / method / f"seed{seed}"

    def lincir_dir(self, seed: int) -> Path:
        return self.phi_dir("lincir", seed)

    def searle_dir(self, seed: int) -> Path:
        return self.phi_dir("searle", seed)

    def oti_store_path(self, seed: int) -> Path:
        """SEARLE-OTI's tokens of the benchmarks' query images (the searle_oti stage writes them)."""
        return Path(self.models_dir) / "searle_oti" / f"seed{seed}" / "query_tokens.pt"

    def phi_methods(self) -> dict[str, tuple[bool, str | None]]:
        """{method: (switched on, released phi to evaluate instead or None)} of the methods whose
        network is a phi (phi.py); each trains into phi_dir(method, seed)."""
        return {"lincir": (self.lincir.enabled, self.eval.lincir_checkpoint),
                "searle": (self.searle.enabled, self.eval.searle_checkpoint)}

    def metrics_path(self, task: str) -> Path:
        """The headline results file of `task` (first seed), in the schema external checks read."""
        return self.results_dir / "metrics" / f"{task}.json"

    def all_seeds_path(self, task: str) -> Path:
        return self.results_dir / "metrics" / f"{task}_all_seeds.json"

    def summary_path(self, task: str) -> Path:
        """The small file `dvc metrics show` prints: mean and std over seeds per method."""
        return self.results_dir / "metrics" / "summary" / f"{task}.json"


_SECTIONS = {"world": DemoWorldConfig, "clip_pretrain": DemoClipConfig, "clip": ClipConfig, "mapper": MapperConfig,
             "train": TrainConfig, "eval": EvalConfig, "paper_data": PaperDataConfig, "launch": LaunchConfig,
             "lincir": LinCIRConfig, "searle": SEARLEConfig}


TOP_LEVEL_KEYS = ("profile", "demo_profile", "profiles")


def read_params(params_path: Path) -> dict:
    """params.yaml as a dict, or ConfigError naming the file, the line and what is wrong."""
    try:
        params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{params_path}:{mark.line + 1}:{mark.column + 1}" if mark else str(params_path)
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{where}: not valid YAML ({problem}); fix the line or restore the file from git") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{params_path}: not UTF-8 text ({err.reason}); save it as UTF-8") from err
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"{params_path}: expected the settings ({', '.join(TOP_LEVEL_KEYS)}), but the file is "
                          f"{'empty' if not params else type(params).__name__}; restore it from git")
    unknown = sorted(set(params) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(f"{params_path}: unknown top-level setting(s) {unknown}; expected only {list(TOP_LEVEL_KEYS)} "
                          "(profile settings go under profiles.<name>)")
    return params


def load_profile(params_path: str | Path = "params.yaml", profile: str | None = None) -> Profile:
    """Read `profile` (default: params.yaml's `profile:` switch) with every section type-checked."""
    params_path = Path(params_path)
    if not params_path.is_file():
        raise FileNotFoundError(f"{params_path}: parameters file not found; run from the repository root")
    params = read_params(params_path)
    name = profile or params.get("profile")
    if name not in params.get("profiles", {}):
        raise ConfigError(f"{params_path}: profile {name!r} is not among profiles {sorted(params.get('profiles', {}))}")
    raw: dict[str, Any] = dict(params["profiles"][name])
    where = f"{params_path}:profiles.{name}"
    sections = {k: from_dict(cls, raw.pop(k, None), f"{where}.{k}") for k, cls in _SECTIONS.items()}
    required = {"kind", "seeds"}
    missing, unknown = required - set(raw), set(raw) - required
    if missing or unknown:
        raise ConfigError(f"{where}: missing settings {sorted(missing)}; unknown settings {sorted(unknown)}")
    if raw["kind"] not in ("demo", "paper"):
        raise ConfigError(f"{where}.kind: expected 'demo' or 'paper', got {raw['kind']!r}")
    if not raw["seeds"] or not all(isinstance(s, int) for s in raw["seeds"]):
        raise ConfigError(f"{where}.seeds: expected a non-empty list of integers, got {raw['seeds']!r}")
    _check_choices(sections, where)
    return Profile(name=name, kind=raw["kind"], seeds=tuple(raw["seeds"]), **sections)


INTERACTIVE_RESULTS = Path("runs") / "interactive"


def notebook_profile(profile: str | None = None, results_dir: str | None = None, seeds=None,
                     mapper_checkpoint: str | None = None, params_path: str | Path = "params.yaml") -> Profile:
    """The profile a notebook runs, with its papermill parameters applied, and a line saying where it writes.

    results_dir: None when a person steps through the notebook: metrics and figures then go to
    runs/interactive/<profile>/, never over the DVC-tracked results/ (the DVC stage passes results/).
    """
    from dataclasses import replace

    p = load_profile(params_path, profile)
    interactive = results_dir is None
    p = replace(p, results_root=str(INTERACTIVE_RESULTS / p.name) if interactive else str(results_dir))
    if seeds is not None:
        seeds = (seeds,) if isinstance(seeds, int) else tuple(seeds)
        if not seeds or not all(isinstance(s, int) for s in seeds):
            raise ConfigError(f"notebook parameter seeds={seeds!r}: expected a seed or a list of seeds")
        p = replace(p, seeds=seeds)
    if mapper_checkpoint is not None:
        p = replace(p, eval=replace(p.eval, mapper_checkpoint=str(mapper_checkpoint)))
    where = f"{p.results_dir}/ (interactive run; `dvc repro` writes results/)" if interactive else f"{p.results_dir}/"
    print(f"profile {p.name} ({p.kind}), seeds {list(p.seeds)}; metrics and figures -> {where}; "
          f"data {p.world_dir}/, models {p.models_dir}/ (reused when their settings match)")
    return p


# Settings with a fixed set of values: checked when params.yaml is read, not hours later in a stage.
_CHOICES = {
    ("eval", "fashion_iq_prompt"): ("pic2word", "searle"),
    ("eval", "imagenet_r_queries"): ("all", "evaluable"),
    ("eval", "coco_prompt"): ("with_class", "class_free"),
    ("paper_data", "coco_query_rule"): ("official", "relative"),
}


def _check_choices(sections: dict, where: str) -> None:
    for (section, key), allowed in _CHOICES.items():
        value = getattr(sections[section], key)
        if value not in allowed:
            raise ConfigError(f"{where}.{section}.{key}: {value!r} is not one of {allowed} (the first is the paper's protocol)")


def enter_repo_root(start: str | Path | None = None) -> Path:
    """chdir to the folder holding params.yaml and dvc.yaml, wherever a notebook was started from
    (papermill runs from the repository root, JupyterLab from notebooks/)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file() and (folder / "dvc.yaml").is_file():
            os.chdir(folder)
            return folder
    raise FileNotFoundError(f"no params.yaml + dvc.yaml in {here} or above; open the notebook inside the repository")


# -- stages -------------------------------------------------------------------------------

def prepare_data(p: Profile) -> dict:
    """Demo: render the world. Paper: fetch, link, check and report the real data (paper_data.py)."""
    if p.kind == "demo":
        return prepare_demo_world(p)
    from .clip_backbone import resolve_model_name
    from .paper_data import prepare_paper_data
    from .pretrained_weights import check_clip_settings

    # The CLIP setting is checked first: a wrong weights path should not surface after the data prep.
    log.info(check_clip_settings(resolve_model_name(p.clip.model), p.clip.pretrained, p.clip.cache_dir,
                                 f"profiles.{p.name}.clip"))

    return prepare_paper_data(p.world_dir, p.paper_data)


def prepare_demo_world(p: Profile) -> dict:
    from .demo.build import build_world

    return build_world(p.world_dir, p.world)


def pretrain_demo_clip(p: Profile, seed: int) -> Path:
    from dataclasses import replace

    from .demo.clip_pretrain import pretrain_clip

    return pretrain_clip(p.world_dir / "cc3m" / "train.tsv", p.clip_dir(seed), replace(p.clip_pretrain, seed=seed),
                         restart_on_change=True)


def clip_for(p: Profile, seed: int) -> FrozenClip:
    """The frozen CLIP of a run: the demo CLIP pretrained with `seed`, or the paper's CLIP."""
    if p.kind == "demo":
        return load_clip(ClipConfig(model=f"local-dir:{(p.clip_dir(seed) / 'clip').resolve()}", pretrained=None))
    return load_clip(p.clip)


def _training_list(p: Profile) -> list[tuple[str, str]]:
    """(image, caption) of the demo's CC3M-like list, or of the paper's present CC3M images (prepare_data)."""
    from .datasets.cc3m import read_image_caption_list
    from .paper_data import CC3M_LIST

    if p.kind == "demo":
        return read_image_caption_list(p.world_dir / "cc3m" / "train.tsv")
    return read_image_caption_list(p.prepared_dir / CC3M_LIST, root=".")


def training_images(p: Profile) -> list[str]:
    """Pic2Word's training set: the images of the CC3M(-like) list."""
    return [path for path, _ in _training_list(p)]


def training_captions(p: Profile) -> list[str]:
    """LinCIR's training set: the captions of the same list, never its images. (LinCIR itself trains on
    CC3M's captions plus two prompt collections; the paper profile uses CC3M's alone, a deviation.)"""
    return [caption for _, caption in _training_list(p)]


def steps_per_epoch(p: Profile, batch_size: int) -> int:
    """Training steps in one pass over the profile's image list at `batch_size` (epoch marks on loss curves)."""
    return max(1, len(training_images(p)) // batch_size)


def train_mapper_stage(p: Profile, seed: int, clip: FrozenClip | None = None):
    from dataclasses import replace

    from .train import train_mapper

    clip = clip or clip_for(p, seed)
    cfg = replace(p.train, seed=seed)
    # DVC re-runs this stage when settings or data change; the model folder persists (a killed run
    # resumes), so a checkpoint of other settings or data is replaced rather than refused.
    return train_mapper(clip, training_images(p), cfg, p.mapper, p.mapper_dir(seed), cache_dir=p.cache_dir,
                        restart_on_change=True)


def train_lincir_stage(p: Profile, seed: int, clip: FrozenClip | None = None):
    from dataclasses import replace

    from .lincir import train_lincir

    clip = clip or clip_for(p, seed)
    return train_lincir(clip, training_captions(p), replace(p.lincir, seed=seed), p.lincir_dir(seed), restart_on_change=True)


def searle_images(p: Profile, subset_seed: int = 0) -> list[str]:
    """SEARLE's training images: a random subset of the training list of `searle.oti_images` (the
    same for every seed; drawn with `subset_seed`, which the pipeline keeps at 0), in list order."""
    import random

    images = training_images(p)
    n = p.searle.oti_images
    if n is None or n >= len(images):
        return images
    keep = set(random.Random(subset_seed).sample(range(len(images)), n))
    return [path for i, path in enumerate(images) if i in keep]


def searle_phrases(p: Profile, clip: FrozenClip):
    """SEARLE's concepts and phrases, from the training captions (concepts.py), for `clip`."""
    from .concepts import concept_phrases

    return concept_phrases(clip, training_captions(p), p.searle.min_concept_count, p.searle.phrases_per_concept)


def train_searle_stage(p: Profile, seed: int, clip: FrozenClip | None = None):
    from dataclasses import replace

    from .features import embed_images
    from .searle import train_searle

    clip = clip or clip_for(p, seed)
    cfg = replace(p.searle, seed=seed)
    emb = embed_images(clip, searle_images(p), cache_dir=p.cache_dir, max_bad_fraction=cfg.max_bad_fraction,
                       desc="embedding SEARLE's images")
    valid = emb.valid.nonzero()[0]  # unreadable images were counted and logged by embed_images
    return train_searle(clip, emb.tensor()[valid], [emb.paths[i] for i in valid], searle_phrases(p, clip), cfg,
                        p.searle_dir(seed), restart_on_change=True)


def concept_examples(p: Profile, n: int = 8):
    """A table of `n` of SEARLE's concepts (the list's frequent content words), how many captions use
    each, and one of them as a phrase with the concept masked."""
    import pandas as pd

    from .concepts import concept_examples as examples

    rows = examples(training_captions(p), p.searle.min_concept_count, n)
    return pd.DataFrame(rows, columns=["concept", "captions using it", "a phrase", "masked for OTI"])


def masked_caption_examples(p: Profile, n: int = 8):
    """A table of `n` distinct training captions and LinCIR's masked form of each."""
    import random

    import pandas as pd

    from .keywords import mask_keywords

    captions = sorted(set(training_captions(p)))
    picked = random.Random(0).sample(captions, min(n, len(captions)))
    return pd.DataFrame({"caption": picked, "masked for training": [mask_keywords(c) for c in picked]})


def oracle_texts(p: Profile, name: str):
    """The demo world's oracle texts of benchmark `name` (one per query, naming the truth); None elsewhere."""
    path = p.world_dir / "oracle" / f"{name}.json"
    return json.loads(path.read_text()) if p.kind == "demo" and path.is_file() else None


def mapper_for(p: Profile, seed: int, clip: FrozenClip):
    """The trained mapper of `seed` (or eval.mapper_checkpoint when set), checked against `clip`."""
    from .checkpoint import load_mapper
    from .train import CHECKPOINT_NAME

    return load_mapper(p.eval.mapper_checkpoint or p.mapper_dir(seed) / CHECKPOINT_NAME, clip)


def token_mappers(p: Profile, seed: int, clip: FrozenClip) -> dict:
    """{method: network} of every trained query method switched on: Pic2Word's mapper, the phi of
    LinCIR and SEARLE when enabled, and SEARLE-OTI's inversion when eval.searle_oti (the protocols
    then score each, beside the training-free methods)."""
    from .phi_runs import CHECKPOINT_NAME, load_phi

    mappers = {"pic2word": mapper_for(p, seed, clip)}
    for method, (enabled, released) in p.phi_methods().items():
        if enabled:
            mappers[method] = load_phi(released or p.phi_dir(method, seed) / CHECKPOINT_NAME, clip)
    if p.eval.searle_oti:
        mappers["searle_oti"] = oti_query_tokens(p, seed, clip)
        store = p.oti_store_path(seed)
        if store.is_file():
            mappers["searle_oti"].load(store)
        else:  # stepping through an evaluation notebook by hand before the stage ran: slow, not wrong
            log.warning("%s does not exist (the searle_oti stage writes it): SEARLE-OTI inverts the query "
                        "images during this evaluation", store)
    return mappers


def oti_query_tokens(p: Profile, seed: int, clip: FrozenClip):
    """SEARLE-OTI's stand-in network: OTI of each reference image it is given, with SEARLE's settings
    and the concepts of the training captions."""
    from dataclasses import replace

    from .oti_queries import OTIQueryTokens

    return OTIQueryTokens(clip, searle_phrases(p, clip), replace(p.searle, seed=seed), seed)


def _stage_benchmarks(p: Profile) -> tuple[str, ...]:
    """The registered benchmarks the profile's evaluation stages score, in registry order: the paper's
    switched on in paper_data.benchmarks; the demo's all but notebook 08's (no demo analogue)."""
    if p.kind == "paper":
        return tuple(n for n in BENCHMARKS if n in p.paper_data.benchmarks)
    return tuple(n for n, b in BENCHMARKS.items() if b.stage != "08_more_benchmarks")


def invert_query_images(p: Profile) -> dict[int, int]:
    """The searle_oti stage: per seed, SEARLE-OTI's token of every reference image the evaluation
    stages compose from ({seed: images inverted}), saved where token_mappers reads it.

    It runs each benchmark's protocol with SEARLE-OTI alone, so the images come in the order an
    evaluation presents them; those results go to a scratch folder and are discarded (the test-server
    files are Pic2Word's, so no test query is inverted). The store is saved after each benchmark: a
    stopped stage resumes from it.
    Switched off (`eval.searle_oti: false`), it inverts nothing and leaves a note."""
    import tempfile
    from dataclasses import replace

    from .checkpoint import CheckpointError

    counts: dict[int, int] = {}
    if not _switch_note(p.models_dir / "searle_oti", p.eval.searle_oti,
                        "eval.searle_oti is false in params.yaml: no query image was inverted"):
        return counts
    for seed in p.seeds:
        clip, store = clip_for(p, seed), p.oti_store_path(seed)
        oti = oti_query_tokens(p, seed, clip)
        try:
            resumed = oti.load(store, report_misses=False) if store.is_file() else 0
        except CheckpointError as err:  # made with an earlier CLIP or other settings: start over
            log.warning("%s; inverting again", err)
            resumed = 0
        with tempfile.TemporaryDirectory(prefix="searle_oti_") as scratch:
            scratch_p = replace(p, results_root=scratch, eval=replace(p.eval, test_submissions=False))
            for name in _stage_benchmarks(p):
                BENCHMARKS[name].evaluate(EvalContext(scratch_p, seed, clip, {"searle_oti": oti}))
                oti.save(store)
        counts[seed] = len(oti.tokens) - resumed
        log.info("seed %d: %d query images in %s (%d inverted now)", seed, len(oti.tokens), store, counts[seed])
    return counts


def oti_store_table(p: Profile):
    """Per seed, what the searle_oti stage stored: images, batches, and the % of tokens whose
    `a photo of *` retrieves their own image first among the stored images (oti_queries.own_image_first)."""
    import pandas as pd

    from .checkpoint import read_checkpoint
    from .oti_queries import own_image_first

    rows = []
    for seed in p.seeds:
        saved = read_checkpoint(p.oti_store_path(seed), "SEARLE-OTI token store", "run invert_query_images first")
        n = len(saved["tokens"])
        rows.append({"seed": seed, "query images": n, "OTI batches": saved["batches"],
                     "own image first (%)": round(own_image_first(clip_for(p, seed), saved["images"], saved["tokens"]), 1),
                     "chance (%)": round(100 / max(n, 1), 2)})
    return pd.DataFrame(rows).set_index("seed")


def rendition_domains(p: Profile) -> tuple[str, ...]:
    """Domain names in label-index order: the demo's renditions or ImageNet-R's four."""
    from .datasets.imagenet_r import PAPER_DOMAINS
    from .demo.world import RENDITIONS

    return RENDITIONS if p.kind == "demo" else PAPER_DOMAINS


def _switched_off(p: Profile, task: str, seed: int) -> dict | None:
    """The results document of a paper benchmark left out of paper_data.benchmarks (else None)."""
    if p.kind != "paper" or task in p.paper_data.benchmarks:
        return None
    result = {"profile": p.name, "seed": seed, "skipped": "not in paper_data.benchmarks (params.yaml)"}
    _record(p, task, seed, result)
    return result


def evaluate_benchmark(p: Profile, name: str, seed: int, clip: FrozenClip | None = None, mapper=None) -> dict:
    """Evaluate one registered benchmark for `seed` and record its results files (see benchmarks.py)."""
    if (skipped := _switched_off(p, name, seed)) is not None:
        return skipped
    clip = clip or clip_for(p, seed)
    ctx = EvalContext(profile=p, seed=seed, clip=clip, mapper=mapper if mapper is not None else token_mappers(p, seed, clip))
    result = BENCHMARKS[name].evaluate(ctx)
    _record(p, name, seed, result)
    return result


def evaluate_domain_conversion_stage(p: Profile, seed: int, clip: FrozenClip | None = None) -> dict:
    return evaluate_benchmark(p, "domain_conversion", seed, clip)


def evaluate_fashion_iq_stage(p: Profile, seed: int, clip: FrozenClip | None = None) -> dict:
    return evaluate_benchmark(p, "fashion_iq", seed, clip)


def evaluate_more_benchmarks(p: Profile, seed: int) -> dict[str, dict]:
    """Notebook 08's benchmarks (CIRR, CIRCO, COCO object composition), those switched on in
    paper_data.benchmarks, plus the CIRR/CIRCO test submission files. A switched-off benchmark's
    results file says so."""
    clip = clip_for(p, seed)
    mapper = token_mappers(p, seed, clip)
    (p.results_dir / "submissions").mkdir(parents=True, exist_ok=True)  # a DVC out even when no file is written
    return {name: evaluate_benchmark(p, name, seed, clip, mapper) for name in benchmarks_of_stage("08_more_benchmarks")}


def _record(p: Profile, task: str, seed: int, result: dict) -> None:
    """Write the first seed's result as the headline file; every seed's into the all-seeds file."""
    if seed == p.seeds[0]:
        atomic_write_json(p.metrics_path(task), result)
    path = p.all_seeds_path(task)
    everything = json.loads(path.read_text()) if path.is_file() else {"profile": p.name, "seeds": {}}
    if everything.get("profile") != p.name:
        everything = {"profile": p.name, "seeds": {}}
    everything["seeds"][str(seed)] = result
    everything["seeds"] = {k: everything["seeds"][k] for k in sorted(everything["seeds"], key=int) if int(k) in p.seeds}
    atomic_write_json(path, everything)
    atomic_write_json(p.summary_path(task), summary_metrics(everything, BENCHMARKS[task].summary_keys))


# -- per-notebook steps over all seeds ---------------------------------------------------

def pretrain_clips(p: Profile) -> dict[int, dict[str, float]]:
    """Demo: pretrain one CLIP per seed and record its zero-shot sanity table. Paper: nothing."""
    if p.kind != "demo":
        return {}
    from .demo.sanity import zero_shot_table

    import shutil

    tables = {}
    plots = p.results_dir / "plots" / "clip_loss"
    plots.mkdir(parents=True, exist_ok=True)
    for seed in p.seeds:
        pretrain_demo_clip(p, seed)
        shutil.copyfile(p.clip_dir(seed) / "pretrain_log.csv", plots / f"seed{seed}.csv")  # for `dvc plots show`
        tables[seed] = zero_shot_table(clip_for(p, seed), p.world_dir, p.cache_dir)
    atomic_write_json(p.results_dir / "metrics" / "demo_clip_sanity.json",
                      {"profile": p.name, "zero_shot_accuracy": {str(s): t for s, t in tables.items()}})
    atomic_write_json(p.summary_path("demo_clip"), sanity_summary(tables))
    return tables


def train_mappers(p: Profile) -> dict:
    """Train one mapper per seed; the loss logs are also copied to results/plots for `dvc plots`."""
    import shutil

    runs = {}
    for seed in p.seeds:
        runs[seed] = train_mapper_stage(p, seed) if p.launch.nproc_per_node == 1 else _torchrun_training(p, seed)
        plots = p.results_dir / "plots" / "mapper_loss"
        plots.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(runs[seed].log_csv, plots / f"seed{seed}.csv")
    return runs


def _switch_note(folder: Path, enabled: bool, note: str) -> bool:
    """`enabled`, after leaving `note` in `folder` when a method is switched off (a DVC output must
    exist) and removing it when the method is switched back on."""
    marker = folder / "SWITCHED_OFF.txt"
    if enabled:
        marker.unlink(missing_ok=True)
        return True
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text(note + "\n")
    return False


def _train_each_seed(p: Profile, method: str, label: str, enabled: bool, stage) -> dict:
    """Train `method` per seed with `stage(p, seed)`; loss logs are copied to results/plots/<method>_loss.
    Switched off (`<method>.enabled: false`), it trains nothing and leaves a note where the models would be."""
    import shutil

    runs, plots = {}, p.results_dir / "plots" / f"{method}_loss"
    plots.mkdir(parents=True, exist_ok=True)
    if not _switch_note(p.models_dir / method, enabled, f"{method}.enabled is false in params.yaml: no {label} "
                        "model was trained"):
        return runs
    for seed in p.seeds:
        runs[seed] = stage(p, seed)
        shutil.copyfile(runs[seed].log_csv, plots / f"seed{seed}.csv")
    return runs


def train_lincirs(p: Profile) -> dict:
    """LinCIR's phi per seed (captions only)."""
    return _train_each_seed(p, "lincir", "LinCIR", p.lincir.enabled, train_lincir_stage)


def train_searles(p: Profile) -> dict:
    """SEARLE per seed: OTI of its images, then phi distilled from the tokens."""
    return _train_each_seed(p, "searle", "SEARLE", p.searle.enabled, train_searle_stage)


def _torchrun_training(p: Profile, seed: int):
    """Train under torchrun, one process per GPU (`python -m p2w_lib train`), then read the result back."""
    import csv
    import subprocess
    import sys

    from .checkpoint import load_mapper
    from .train import CHECKPOINT_NAME, LOG_NAME, TrainResult

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={p.launch.nproc_per_node}",
           "-m", "p2w_lib", "train", "--profile", p.name, "--seed", str(seed)]
    log.info("launching %s", " ".join(cmd))
    subprocess.run(cmd, check=True)  # a failing rank fails the stage with torchrun's own report
    with open(p.mapper_dir(seed) / LOG_NAME, newline="") as fh:
        last = list(csv.DictReader(fh))[-1]
    checkpoint = p.mapper_dir(seed) / CHECKPOINT_NAME
    return TrainResult(mapper=load_mapper(checkpoint, clip_for(p, seed)), steps=int(last["step"]),
                       last_loss=float(last["loss"]), checkpoint=checkpoint, log_csv=p.mapper_dir(seed) / LOG_NAME)


def require_trained(p: Profile, seed: int) -> None:
    """FileNotFoundError saying how to get them when the run's CLIP or mapper is not there yet."""
    from .train import CHECKPOINT_NAME

    from .phi_runs import CHECKPOINT_NAME as PHI_CHECKPOINT

    needed = [] if p.eval.mapper_checkpoint else [p.mapper_dir(seed) / CHECKPOINT_NAME]
    needed += [p.phi_dir(method, seed) / PHI_CHECKPOINT
               for method, (enabled, released) in p.phi_methods().items() if enabled and not released]
    if p.kind == "demo":
        needed.insert(0, p.clip_dir(seed) / "clip")
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        raise FileNotFoundError(
            f"no trained model for profile {p.name!r}, seed {seed}: {', '.join(missing)} missing. Run `make reproduce` "
            "to train it, or pass a mapper checkpoint (`--mapper`, or eval.mapper_checkpoint in params.yaml)")


def clip_and_mapper(p: Profile, seed: int):
    clip = clip_for(p, seed)
    return clip, mapper_for(p, seed, clip)


def qualitative_examples(p: Profile, seed: int, n: int = 4) -> dict[str, list[dict]]:
    """Example queries with the top-5 of Pic2Word and image+text, for both protocols."""
    from .qualitative import domain_conversion_examples, fashion_examples

    clip, mapper = clip_and_mapper(p, seed)
    on = {task: p.kind == "demo" or task in p.paper_data.benchmarks for task in ("domain_conversion", "fashion_iq")}
    return {
        "domain_conversion": domain_conversion_examples(
            clip, mapper, p.world_dir, rendition_domains(p), n=n, seed=seed, cache_dir=p.cache_dir,
            max_bad_fraction=p.eval.max_bad_fraction) if on["domain_conversion"] else [],
        "fashion_iq": [ex for c in ("dress", "shirt", "toptee") for ex in fashion_examples(
            clip, mapper, p.world_dir / "fashion-iq", c, n=1, seed=seed, cache_dir=p.cache_dir)] if on["fashion_iq"] else [],
    }


def default_query(p: Profile, image: str | None, gallery: str | None) -> tuple[str, str]:
    """The notebook's default query: the first Fashion-IQ dress candidate, searched in its image folder."""
    from .datasets.fashion_iq import read_triplets

    fiq = p.world_dir / "fashion-iq"
    if image is None:
        image = str(fiq / "images" / f"{read_triplets(fiq, 'dress')[0].candidate}.png")
    return image, gallery or str(fiq / "images")
