"""Command line: `python -m p2w_lib <command>`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from p2w_lib.app import models, prepare, profile, training
from p2w_lib.app.downloads import ChecksumError
from p2w_lib.app.figures import save_figure, search_grid
from p2w_lib.app.floors import check_floors
from p2w_lib.app.readme import paper_section, readme_section, write_readme_section
from p2w_lib.clip.backbone import load_clip, resolve_model_name
from p2w_lib.clip.weights import check_clip_settings
from p2w_lib.core.config import ClipConfig, ConfigError
from p2w_lib.data.errors import DataFormatError
from p2w_lib.data.images import BadImagesError
from p2w_lib.methods.phi_runs import load_phi
from p2w_lib.methods.pic2word.checkpoint import load_mapper
from p2w_lib.methods.registry import QUERY_METHODS
from p2w_lib.methods.slerp import DEFAULT_ALPHA
from p2w_lib.protocols.submissions import SubmissionError
from p2w_lib.retrieval.gallery import (
    SearchInputError,
    build_prompt,
    check_search_inputs,
    search,
)
from p2w_lib.tools.rehearsal import run_rehearsal
from p2w_lib.tools.smoke import run_smoke
from p2w_lib.training.checkpoint import CheckpointError


def _smoke(args: argparse.Namespace) -> int:
    out = run_smoke(seed=args.seed)
    print(f"smoke run: {out['train_steps']} mapper steps, last loss {out['last_loss']:.4f}")
    print("true recall@10 (tiny random CLIP, colour-class relevance; near chance by design):")
    for method, m in out["methods"].items():
        print(f"  {method:<11} {m['R@10']:6.2f}")
    return 0


PHI_METHODS = ("lincir", "searle")  # the methods whose network --phi loads


def _search_networks(args: argparse.Namespace):
    """(CLIP, {method: network}) for `search`: the checkpoints named on the command line, or the
    profile's trained ones. A trained method without its network is refused with what to pass."""

    if args.method not in QUERY_METHODS:
        raise SearchInputError(f"--method {args.method}: choose one of {', '.join(QUERY_METHODS)}")
    if args.phi and args.method not in PHI_METHODS:
        raise SearchInputError(f"--phi is the network of {' or '.join(PHI_METHODS)}; pass --method with one of them")
    if args.method == "searle_oti" and (args.mapper or args.phi):
        raise SearchInputError(
            "--method searle_oti fits the query's token by OTI with the profile's CLIP and "
            "concepts; drop --mapper/--phi (it uses the profile of params.yaml)"
        )
    if args.mapper or args.phi:
        clip = load_clip(ClipConfig(model=args.clip, pretrained=args.pretrained, device=args.device))
        mappers = {"pic2word": load_mapper(args.mapper, clip)} if args.mapper else {}
        if args.phi:
            mappers[args.method] = load_phi(args.phi, clip)
    else:
        p = profile.load_profile(args.params, args.profile)
        seed = p.seeds[0] if args.seed is None else args.seed
        models.require_trained(p, seed)
        clip = models.clip_for(p, seed)
        mappers = models.token_mappers(p, seed, clip)
        if args.method == "searle_oti" and args.method not in mappers:  # asked for by name: on even where
            mappers[args.method] = models.oti_query_tokens(p, seed, clip)  # evaluation leaves it off
    if QUERY_METHODS[args.method].trained and args.method not in mappers:
        how = "--mapper" if args.method == "pic2word" else f"--phi (or switch {args.method} on in params.yaml)"
        raise SearchInputError(f"--method {args.method} needs its trained network; pass {how}")
    return clip, mappers


def _search(args: argparse.Namespace) -> int:
    import json

    check_search_inputs(args.image, args.text, args.gallery, args.k)  # before minutes of model loading
    if args.nprobe < 1:
        raise SearchInputError(f"--nprobe {args.nprobe}: scan at least one cell (e.g. --nprobe 32)")
    if args.alpha is not None and args.method != "slerp":
        raise SearchInputError(f"--alpha is Slerp's setting; pass --method slerp (got --method {args.method})")
    if args.alpha is not None and not 0.0 <= args.alpha <= 1.0:
        raise SearchInputError(f"--alpha {args.alpha}: must lie in [0, 1] (0: image only, 1: text only)")
    if args.out and not args.out.lower().endswith(".png"):
        raise SearchInputError(f"--out {args.out}: the grid is written as PNG; name a .png file")
    clip, mapper = _search_networks(args)
    hits = search(
        clip,
        mapper,
        args.image,
        args.text,
        args.gallery,
        k=args.k,
        method=args.method,
        cache_dir=args.cache_dir,
        approximate=args.index == "approx",
        nprobe=args.nprobe,
        options={"slerp": {"alpha": args.alpha}} if args.alpha is not None else None,
    )
    if args.out:
        save_figure(search_grid(args.image, args.text, hits, method=args.method), args.out)
    # Slerp's alpha is part of what was searched: name it, the default included.
    alpha = {"alpha": DEFAULT_ALPHA if args.alpha is None else args.alpha} if args.method == "slerp" else {}
    if args.json:
        print(
            json.dumps(
                {
                    "image": str(args.image),
                    "text": args.text,
                    "prompt": build_prompt(args.text),
                    "method": args.method,
                    **alpha,
                    "results": [
                        {"rank": r, "path": path, "score": round(score, 6)}
                        for r, (path, score) in enumerate(hits, start=1)
                    ],
                },
                indent=1,
            )
        )
        return 0
    how = f"{args.method}, alpha {alpha['alpha']}" if alpha else args.method
    print(f"query: {printable(args.image)} + {build_prompt(args.text)!r} ({how})")
    for rank, (path, score) in enumerate(hits, start=1):
        print(f"{rank:3d}  {score:.4f}  {printable(path)}")
    if args.out:
        print(f"grid written to {printable(args.out)}")
    return 0


def printable(text) -> str:
    """`text` with control characters escaped (a newline as \\n, ESC as \\x1b): a file name must not
    be able to forge a result line or drive the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def _train(args: argparse.Namespace) -> int:
    """Train the mapper(s) of a profile; under torchrun, one process per GPU with an all-gathered loss."""
    import os
    from dataclasses import replace

    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    p = profile.load_profile(args.params, args.profile)
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
            p = replace(p, clip=replace(p.clip, device=f"cuda:{local}"))
    try:
        for seed in [args.seed] if args.seed is not None else p.seeds:
            result = training.train_seed(p, "pic2word", seed)
            if int(os.environ.get("RANK", "0")) == 0:
                print(
                    f"seed {seed}: {result.steps} steps, last loss {result.last_loss:.4f}, checkpoint {result.checkpoint}"
                )
    finally:
        if world > 1:
            torch.distributed.destroy_process_group()
    return 0


def _check_profile(args: argparse.Namespace) -> int:
    from pathlib import Path

    p = profile.load_profile(args.params, args.profile)
    demo_profile = profile.read_params(Path(args.params)).get("demo_profile")
    if profile.load_profile(args.params, demo_profile).kind != "demo":
        print(
            f"{args.params}: demo_profile {demo_profile!r} must be a demo-kind profile (demo or tiny): "
            "dvc.yaml runs it, and DVC refuses two pipelines that share the paper profile's folders",
            file=sys.stderr,
        )
        return 2
    if p.kind == "demo" and p.name != demo_profile:
        print(
            f"{args.params}: profile {p.name!r} but demo_profile {demo_profile!r}; dvc.yaml runs demo_profile, "
            f"so set `demo_profile: {p.name}` as well",
            file=sys.stderr,
        )
        return 2
    if args.print_kind:
        if p.kind == "paper" and p.name != "paper":
            print(
                f"profile {p.name!r} is paper-kind but pipelines/paper/dvc.yaml runs the profile named 'paper'; "
                "rename it or run its notebooks directly",
                file=sys.stderr,
            )
            return 2
        print(p.kind)
        return 0
    if p.kind != args.kind:
        where = "pipelines/paper/dvc.yaml" if p.kind == "paper" else "dvc.yaml"
        print(
            f"params.yaml selects profile {p.name!r} ({p.kind}); this pipeline runs {args.kind}-kind profiles only. "
            f"Run `make reproduce` (it picks {where}"
            + (", linking it to pipeline.yaml first" if p.kind == "paper" else "")
            + f") or `dvc repro {where}`.",
            file=sys.stderr,
        )
        return 2
    print(f"profile {p.name!r} ({p.kind}), seeds {list(p.seeds)}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    import json

    p = profile.load_profile(args.params, args.profile)
    print(json.dumps(prepare.prepare_data(p), indent=1))
    return 0


def _check_weights(args: argparse.Namespace) -> int:
    p = profile.load_profile(args.params, args.profile)
    print(
        check_clip_settings(
            resolve_model_name(p.clip.model),
            p.clip.pretrained,
            p.clip.cache_dir,
            f"{args.params}:profiles.{p.name}.clip",
        )
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    if not (Path(args.results) / "metrics" / "demo_clip_sanity.json").is_file():  # a paper-kind run
        if args.write_readme:
            print("--write-readme embeds the demo's results only; printing the paper tables instead", file=sys.stderr)
        print(paper_section(args.results))
        return 0
    if args.write_readme:
        write_readme_section(args.readme, args.results)
        print(f"updated the results section of {args.readme}")
    else:
        print(readme_section(args.results))
    for check in check_floors(args.results):  # the demo's floors, on every re-run
        print(("floor " if check.met else "FLOOR NOT MET ") + check.line(), file=sys.stderr)
    return 0


def _rehearse(args: argparse.Namespace) -> int:
    import json
    import tempfile
    from pathlib import Path

    logging.getLogger("p2w_lib").setLevel(logging.INFO)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="p2w-rehearsal-")) / "run"
    summary = run_rehearsal(Path(__file__).resolve().parents[1], args.reference, out, reduced=args.reduced)
    print(json.dumps(summary, indent=2))
    print(
        f"rehearsal passed: repository built in {summary['seconds']['build']} s, "
        f"dvc repro pipelines/paper/dvc.yaml in {summary['seconds']['dvc_repro']} s ({summary['repo']})"
    )
    return 0


PARAMS_HELP = "parameters file (default: params.yaml)"
PROFILE_HELP = "profile of the parameters file to use (default: its `profile`)"


def _program_name() -> str:
    """`p2w` when started through the installed script, else the module form."""
    return "p2w" if Path(sys.argv[0]).name == "p2w" else "python -m p2w_lib"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("p2w_lib")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed; run `make venv`)"


def _profile_options(parser: argparse.ArgumentParser, seed_help: str | None = None) -> None:
    parser.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
    parser.add_argument("--profile", default=None, help=PROFILE_HELP)
    if seed_help:
        parser.add_argument("--seed", type=int, default=None, help=seed_help)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or _program_name(), description=__doc__.replace("`python -m p2w_lib", f"`{prog or _program_name()}")
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    smoke = sub.add_parser("smoke", help="one-minute end-to-end run on a tiny random CLIP")
    smoke.add_argument(
        "--seed", type=int, default=0, help="seed of the random CLIP, the toy data and the mapper (default: 0)"
    )
    smoke.set_defaults(func=_smoke)
    srch = sub.add_parser("search", help="compose a query from an image and a text; search a folder of images")
    srch.add_argument("--image", required=True, help="query image file")
    srch.add_argument("--text", required=True, help="modification text, or a prompt containing *")
    srch.add_argument("--gallery", required=True, help="folder of images to search (recursively)")
    srch.add_argument("--k", type=int, default=10, help="number of results (default: 10)")
    srch.add_argument(
        "--method",
        default="pic2word",
        metavar="METHOD",
        help="how the query is composed: pic2word (default), lincir, searle, searle_oti, slerp, "
        "image_text, image_only, text_only (the registry in p2w_lib/methods/registry.py)",
    )
    srch.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="with --method slerp: how far from the image towards the text, in [0, 1] "
        "(default: 0.8; the paper's 0.9 for CIRR-like captions)",
    )
    srch.add_argument(
        "--out", default=None, metavar="GRID.png", help="also write the query and its results as a PNG grid"
    )
    srch.add_argument(
        "--json", action="store_true", help="print the results as JSON (rank, path, score) instead of a table"
    )
    _profile_options(srch, seed_help="use this seed's trained CLIP and mapper (default: the profile's first seed)")
    srch.add_argument("--mapper", default=None, help="a mapper checkpoint (ours or official); overrides the profile")
    srch.add_argument(
        "--phi",
        default=None,
        help="with --method lincir or searle: a phi checkpoint (ours or official); overrides the profile",
    )
    srch.add_argument("--clip", default="ViT-L-14", help="with --mapper/--phi: open_clip model name or CLIP folder")
    srch.add_argument("--pretrained", default="openai", help="with --mapper/--phi: pretrained tag or weights file")
    srch.add_argument("--device", default="cpu", help="with --mapper/--phi: torch device for CLIP (default: cpu)")
    srch.add_argument("--cache-dir", default=None, help="embedding cache folder (speeds up repeated searches)")
    srch.add_argument(
        "--index",
        default="exact",
        choices=["exact", "approx"],
        help="exact: exhaustive search (default); approx: a faiss IVF index, built once and kept in "
        "--cache-dir, for galleries of a million images and more (see make bench)",
    )
    srch.add_argument(
        "--nprobe", type=int, default=32, help="with --index approx: cells scanned per query (default: 32)"
    )
    srch.set_defaults(func=_search)
    tr = sub.add_parser("train", help="train the profile's mapper(s); run under torchrun for several GPUs/nodes")
    _profile_options(tr, seed_help="train only this seed (default: every seed of the profile)")
    tr.set_defaults(func=_train)
    chk = sub.add_parser(
        "check-profile", help="fail unless params.yaml's profile is of the given kind (or print its kind)"
    )
    chk.add_argument("--kind", choices=["demo", "paper"], help="the kind of profile the calling pipeline runs")
    chk.add_argument("--print-kind", action="store_true", help="print the selected profile's kind (demo or paper)")
    _profile_options(chk)
    chk.set_defaults(func=_check_profile)
    prep = sub.add_parser(
        "prepare", help="the profile's data preparation (notebook 01): paper data fetched, linked, checked"
    )
    _profile_options(prep)
    prep.set_defaults(func=_prepare)
    wts = sub.add_parser(
        "check-weights", help="are the profile's CLIP weights cached or downloadable? (fails in a second if not)"
    )
    _profile_options(wts)
    wts.set_defaults(func=_check_weights)
    reh = sub.add_parser(
        "rehearse", help="dress rehearsal of the paper pipeline: real annotation files, placeholder images, tiny CLIP"
    )
    reh.add_argument(
        "--reference",
        default="../shared/reference",
        help="folder with pic2word-imagenet-r/, fashion-iq/, cirr/, circo/ annotation files",
    )
    reh.add_argument(
        "--out", default=None, help="where to build the scratch repository (default: a new temporary folder)"
    )
    reh.add_argument(
        "--reduced", action="store_true", help="only the stages that read annotation files (no figures), as CI runs it"
    )
    reh.set_defaults(func=_rehearse)
    rep = sub.add_parser("report", help="results tables (markdown) from results/metrics; optionally into README.md")
    rep.add_argument("--results", default="results", help="results folder to read (default: results, the demo's)")
    rep.add_argument("--readme", default="README.md", help="README whose results section --write-readme replaces")
    rep.add_argument("--write-readme", action="store_true", help="replace the README's generated results section")
    rep.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check-profile" and not (args.kind or args.print_kind):
        parser.error("check-profile needs --kind or --print-kind")

    try:
        return args.func(args)
    except (
        FileNotFoundError,
        ConfigError,
        DataFormatError,
        ChecksumError,
        BadImagesError,
        CheckpointError,
        SearchInputError,
        SubmissionError,
    ) as err:
        # Input problems whose message says what to do: print it, not a traceback from deep inside.
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
