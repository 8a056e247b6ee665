"""A profile: every setting of one section of params.yaml, typed, with the paths derived from its name.

The core sections (world, clip, eval, ...) are fields; the sections a method owns (Pic2Word's
`mapper` and `train`, `lincir`, `searle`, ...) are declared by the method (methods/base.py,
Training.sections) and read from the registry, so a new method's section needs no edit here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from p2w_lib.app.paper_data import PaperDataConfig
from p2w_lib.app.sources import SOURCES, DemoSource, PaperSource
from p2w_lib.core.config import ClipConfig, ConfigError, LaunchConfig, from_dict
from p2w_lib.demo.config import DemoClipConfig, DemoWorldConfig
from p2w_lib.methods import registry


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings.

    Every default is the official protocol; the alternatives are this project's named extras.
    prompts: "own" (each method under its own paper's prompts: Pic2Word's for Pic2Word and the
        baselines, SEARLE's `a photo of * that {caption}` for SEARLE, SEARLE-OTI and LinCIR, on
        Fashion-IQ, CIRR and CIRCO), or "pic2word" / "searle" (every method under that one family).
    imagenet_r_queries: "all" (official: a query whose class has no rendition in a domain scores 0
        there) or "evaluable" (such queries left out of that domain's mean).
    coco_prompt: "with_class" (official: `a photo of * and {query class} and {others}`) or
        "class_free" (`a photo of * and {others}`).
    mapper_checkpoint: evaluate this checkpoint (ours, or the official Pic2Word release) instead of
        the profile's trained mapper.
    lincir_checkpoint: the same for LinCIR's phi (ours, or the official release, `{"Phi": ...}`).
    searle_checkpoint: the same for SEARLE's phi (ours, or the official SEARLE / SEARLE-XL release).
    combiner_checkpoint_fashion_iq: the same for the Combiner trained on Fashion-IQ (ours, or CLIP4Cir's
        release for OpenAI RN50x4, `{"Combiner": ...}`, which needs that CLIP);
        combiner_checkpoint_cirr: the same for the Combiner trained on CIRR.
    searle_oti: also score SEARLE-OTI, the inversion of every query's reference image with the
        `searle` settings; the searle_oti stage inverts them into a token store that the evaluations
        read (no training; costly: docs/performance.md).
    test_submissions: also write the CIRR test1 / CIRCO test files for the evaluation servers.
    """

    ks: tuple[int, int] = (10, 50)
    max_bad_fraction: float = 0.01
    prompts: str = "own"
    imagenet_r_queries: str = "all"
    coco_prompt: str = "with_class"
    mapper_checkpoint: str | None = None
    lincir_checkpoint: str | None = None
    searle_checkpoint: str | None = None
    combiner_checkpoint_fashion_iq: str | None = None
    combiner_checkpoint_cirr: str | None = None
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
    eval: EvalConfig = field(default_factory=EvalConfig)
    paper_data: PaperDataConfig = field(default_factory=PaperDataConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    methods: Mapping[str, Any] = field(default_factory=dict)  # the methods' own sections, by name
    results_root: str | None = None  # where metrics/figures go; None: the committed folder (see results_dir)

    def __getattr__(self, name: str) -> Any:
        """A method's section as an attribute (`p.lincir`, `p.train`); its defaults when params.yaml has none."""
        sections = method_sections()
        if name not in sections:
            raise AttributeError(f"{type(self).__name__!r} has no setting {name!r}")
        return self.__dict__.get("methods", {}).get(name) or sections[name]()

    def with_sections(self, **changes: Any) -> Profile:
        """A copy with some sections replaced, core ones and methods' alike."""
        core = {k: v for k, v in changes.items() if k not in method_sections()}
        methods = {**self.methods, **{k: v for k, v in changes.items() if k in method_sections()}}
        return replace(self, **core, methods=methods)

    def setting(self, dotted: str) -> Any:
        """The value of a dotted setting (`lincir.enabled`, `eval.searle_oti`)."""
        section, key = dotted.split(".", 1)
        return getattr(getattr(self, section), key)

    @property
    def source(self) -> DemoSource | PaperSource:
        """Where this profile's CLIP and data come from (sources.py): every demo/paper difference."""
        return SOURCES[self.kind]

    # -- methods, as their declarations say (methods/base.py, Training) ---
    def method_settings(self, method: str) -> dict[str, Any]:
        """{section: typed config} of the sections `method` declares."""
        return {s: getattr(self, s) for s in registry.QUERY_METHODS[method].training.sections}

    def enabled(self, method: str) -> bool:
        switch = registry.QUERY_METHODS[method].training.switch
        return True if switch is None else bool(self.setting(switch))

    def released(self, method: str) -> str | None:
        """The released checkpoint params.yaml names for `method` instead of training it, or None."""
        key = registry.QUERY_METHODS[method].training.released
        return None if key is None else self.setting(key)

    def model_dir(self, method: str, seed: int) -> Path:
        return Path(self.models_dir) / registry.QUERY_METHODS[method].training.folder / f"seed{seed}"

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
        return Path("results") if self.source.results_subdir is None else Path("results") / self.name

    def clip_dir(self, seed: int) -> Path:
        return Path(self.models_dir) / "clip" / f"seed{seed}"

    def mapper_dir(self, seed: int) -> Path:
        return self.model_dir("pic2word", seed)

    def phi_dir(self, method: str, seed: int) -> Path:
        return self.model_dir(method, seed)

    def lincir_dir(self, seed: int) -> Path:
        return self.model_dir("lincir", seed)

    def searle_dir(self, seed: int) -> Path:
        return self.model_dir("searle", seed)

    def oti_store_path(self, seed: int) -> Path:
        """SEARLE-OTI's tokens of the benchmarks' query images (the searle_oti stage writes them)."""
        return self.model_dir("searle_oti", seed) / "query_tokens.pt"

    def metrics_path(self, task: str) -> Path:
        """The headline results file of `task` (first seed), in the schema external checks read."""
        return self.results_dir / "metrics" / f"{task}.json"

    def all_seeds_path(self, task: str) -> Path:
        return self.results_dir / "metrics" / f"{task}_all_seeds.json"

    def summary_path(self, task: str) -> Path:
        """The small file `dvc metrics show` prints: mean and std over seeds per method."""
        return self.results_dir / "metrics" / "summary" / f"{task}.json"


CORE_SECTIONS = {
    "world": DemoWorldConfig,
    "clip_pretrain": DemoClipConfig,
    "clip": ClipConfig,
    "eval": EvalConfig,
    "paper_data": PaperDataConfig,
    "launch": LaunchConfig,
}


def method_sections() -> dict[str, type]:
    """{section: config class} of every registered trained method (two methods may share one, e.g. SEARLE's)."""
    out: dict[str, type] = {}
    for m in registry.trained().values():
        for section, cls in m.training.sections.items():
            if out.setdefault(section, cls) is not cls:
                raise TypeError(f"params.yaml section {section!r} is declared by two methods with other types")
    return out


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
        raise ConfigError(
            f"{params_path}: expected the settings ({', '.join(TOP_LEVEL_KEYS)}), but the file is "
            f"{'empty' if not params else type(params).__name__}; restore it from git"
        )
    unknown = sorted(set(params) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(
            f"{params_path}: unknown top-level setting(s) {unknown}; expected only {list(TOP_LEVEL_KEYS)} "
            "(profile settings go under profiles.<name>)"
        )
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
    sections = {k: from_dict(cls, raw.pop(k, None), f"{where}.{k}") for k, cls in CORE_SECTIONS.items()}
    methods = {k: from_dict(cls, raw.pop(k, None), f"{where}.{k}") for k, cls in method_sections().items()}
    required = {"kind", "seeds"}
    missing, unknown = required - set(raw), set(raw) - required
    if missing or unknown:
        raise ConfigError(f"{where}: missing settings {sorted(missing)}; unknown settings {sorted(unknown)}")
    if raw["kind"] not in ("demo", "paper"):
        raise ConfigError(f"{where}.kind: expected 'demo' or 'paper', got {raw['kind']!r}")
    if not raw["seeds"] or not all(isinstance(s, int) for s in raw["seeds"]):
        raise ConfigError(f"{where}.seeds: expected a non-empty list of integers, got {raw['seeds']!r}")
    if raw["kind"] not in SOURCES:
        raise ConfigError(f"{where}.kind: expected one of {sorted(SOURCES)}, got {raw['kind']!r}")
    _check_choices(sections, where)
    return Profile(name=name, kind=raw["kind"], seeds=tuple(raw["seeds"]), methods=methods, **sections)


INTERACTIVE_RESULTS = Path("runs") / "interactive"


def notebook_profile(
    profile: str | None = None,
    results_dir: str | None = None,
    seeds=None,
    mapper_checkpoint: str | None = None,
    params_path: str | Path = "params.yaml",
) -> Profile:
    """The profile a notebook runs, with its papermill parameters applied, and a line saying where it writes.

    results_dir: None when a person steps through the notebook: metrics and figures then go to
    runs/interactive/<profile>/, never over the DVC-tracked results/ (the DVC stage passes results/).
    """

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
    print(
        f"profile {p.name} ({p.kind}), seeds {list(p.seeds)}; metrics and figures -> {where}; "
        f"data {p.world_dir}/, models {p.models_dir}/ (reused when their settings match)"
    )
    return p


# Settings with a fixed set of values: checked when params.yaml is read, not hours later in a stage.
_CHOICES = {
    ("eval", "prompts"): ("own", "pic2word", "searle"),
    ("eval", "imagenet_r_queries"): ("all", "evaluable"),
    ("eval", "coco_prompt"): ("with_class", "class_free"),
    ("paper_data", "coco_query_rule"): ("official", "relative"),
}


def _check_choices(sections: dict, where: str) -> None:
    for (section, key), allowed in _CHOICES.items():
        value = getattr(sections[section], key)
        if value not in allowed:
            raise ConfigError(
                f"{where}.{section}.{key}: {value!r} is not one of {allowed} (the first is the paper's protocol)"
            )


def enter_repo_root(start: str | Path | None = None) -> Path:
    """chdir to the folder holding params.yaml and dvc.yaml, wherever a notebook was started from
    (papermill runs from the repository root, JupyterLab from notebooks/)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file() and (folder / "dvc.yaml").is_file():
            os.chdir(folder)
            return folder
    raise FileNotFoundError(f"no params.yaml + dvc.yaml in {here} or above; open the notebook inside the repository")
