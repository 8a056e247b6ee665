"""The README's generated parts (the first screen's expectations and the results section, demo)
and the paper tables, from results files: no result in the README is typed by hand.

Application layer: only `python -m p2w_lib report` uses it; no notebook imports it, so it is in no
stage's generated code deps and rewording the README never re-runs the pipeline.
"""

from __future__ import annotations

from pathlib import Path

from p2w_lib.app.benchmarks import BENCHMARKS
from p2w_lib.app.floors import check_floors
from p2w_lib.app.report import (
    METHOD_LABELS,
    load_json,
    load_result,
    markdown_table,
    metrics_frame,
    paper_comparison,
    published_sources,
)
from p2w_lib.core.files import atomic_write_text
from p2w_lib.methods.registry import QUERY_METHODS
from p2w_lib.protocols.comparisons import verdict
from p2w_lib.protocols.published import SPLITS
from p2w_lib.protocols.results_schema import AllSeeds, check_document, group_key
from p2w_lib.protocols.results_schema import groups as group_names

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
EXPECT_START, EXPECT_END = "<!-- expectations:start -->", "<!-- expectations:end -->"
TIMING_START, TIMING_END = "<!-- timing:start -->", "<!-- timing:end -->"


def _cell(values: list[float]) -> str:
    """Mean over seeds, then each seed's value: `12.34 (12.00 / 12.68)`."""
    mean = sum(values) / len(values)
    return f"{mean:.2f}" + (f" ({' / '.join(f'{v:.2f}' for v in values)})" if len(values) > 1 else "")


def _seed_table(all_seeds: dict, keys: tuple[str, ...]) -> str:
    """Per method and metric: the mean over seeds and each seed's value."""
    runs = list(all_seeds["seeds"].values())
    lines = ["| method | " + " | ".join(f"{k}" for k in keys) + " |", "|---|" + "---|" * len(keys)]
    for m in runs[0]["methods"]:
        lines.append(
            f"| {METHOD_LABELS.get(m, m)} | "
            + " | ".join(_cell([r["methods"][m][k] for r in runs]) for k in keys)
            + " |"
        )
    return "\n".join(lines)


def _group_table(all_seeds: AllSeeds, key: str = "R@10") -> str:
    """Per method and domain/category: `key`, mean over seeds and each seed's value."""
    runs = list(all_seeds["seeds"].values())
    by, groups = group_key(runs[0]), group_names(runs[0])
    lines = ["| method | " + " | ".join(f"{g} {key}" for g in groups) + " |", "|---|" + "---|" * len(groups)]
    for m in runs[0]["methods"]:
        cells = [_cell([r["methods"][m][by][g][key] for r in runs]) for g in groups]
        lines.append(f"| {METHOD_LABELS.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _sanity_table(sanity: dict) -> str:
    tables = list(sanity["zero_shot_accuracy"].values())
    keys = list(tables[0])
    lines = [
        "| | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
        "| mean (seeds) | " + " | ".join(_cell([t[k] for t in tables]) for k in keys) + " |",
    ]
    return "\n".join(lines)


def _claims(dc: dict, fiq: dict) -> list[str]:
    """The demo's headline comparisons per seed, computed from the results (never typed in)."""
    lines = []
    for seed, r in dc["seeds"].items():
        m = r["methods"]
        ratio = m["pic2word"]["R@10"] / max(m["image_text"]["R@10"], 1e-9)
        share = 100 * m["pic2word"]["R@10"] / max(m.get("oracle_text", {}).get("R@10", float("nan")), 1e-9)
        lines.append(
            f"- seed {seed}, domain conversion: Pic2Word's R@10 is {ratio:.1f}x image + text's and "
            f"{share:.0f}% of the oracle text's (ceiling {sum(c['R@10'] for c in r['ceiling'].values()) / len(r['ceiling']):.1f})."
        )
    for seed, r in fiq["seeds"].items():
        d = r["paired_difference"]["R@10"]
        lines.append(
            f"- seed {seed}, Fashion-IQ analogue: Pic2Word - image + text = {d['mean']:+.2f} R@10 points, "
            f"95% paired bootstrap interval [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] "
            f"({sum(c['evaluable'] for c in r['counts'].values())} queries)."
        )
    return lines


# What a verdict claims: a direction measured in each seed's queries, not beyond the seeds run.
VERDICT_WORDS = {
    "above": "**above** in every seed",
    "below": "**below** in every seed",
    "no clear difference": "no clear difference",
}


def _interval(i: dict) -> str:
    return f"{i['mean']:+.1f} [{i['ci_low']:+.1f}, {i['ci_high']:+.1f}]"


def comparison_table(benchmarks: dict[str, AllSeeds], key: str = "R@10", field: str = "comparisons", only=None) -> str:
    """Each method minus the baseline of `field` (image + text; `comparisons_to_pic2word`: Pic2Word) per
    benchmark: every seed's mean and 95% interval, and the verdict those intervals allow
    (comparisons.verdict). only: the methods to show (None: all)."""
    cells: dict[str, list[str]] = {}
    for name, doc in benchmarks.items():
        runs = list(doc["seeds"].values())
        if not all(key in r.get(field, {}) for r in runs):
            raise ValueError(
                f"{name}: a seed's results have no `{field}` at {key}; re-run its stage (dvc repro) "
                "to write them, then the README"
            )
        for method in runs[0][field][key]:
            if only is not None and method not in only:
                continue
            per_seed = [r[field][key][method] for r in runs]
            words = VERDICT_WORDS[verdict(per_seed)]
            cells.setdefault(method, []).extend([" / ".join(map(_interval, per_seed)), words])
    head = " | ".join(f"{name} | verdict" for name in benchmarks)
    lines = [f"| method | {head} |", "|---|" + "---|---|" * len(benchmarks)]
    lines += [f"| {METHOD_LABELS.get(m, m)} | " + " | ".join(c) + " |" for m, c in cells.items()]
    return "\n".join(lines)


def _supervised(benchmarks: dict[str, AllSeeds]) -> list[str]:
    """The supervised methods scored on every benchmark, in registry order."""
    present = [set(next(iter(d["seeds"].values()))["methods"]) for d in benchmarks.values()]
    return [m for m, q in QUERY_METHODS.items() if q.supervised and all(m in p for p in present)]


def transfer_table(benchmarks: dict[str, AllSeeds], keys: dict[str, str] | None = None) -> str:
    """Every method (zero-shot and supervised) on every benchmark: its headline metric (keys: benchmark
    -> metric, R@10 where not given), mean over seeds (each seed)."""
    first = {name: list(d["seeds"].values()) for name, d in benchmarks.items()}
    key = {name: (keys or {}).get(name, "R@10") for name in first}
    methods = [m for m in next(iter(first.values()))[0]["methods"] if all(m in r[0]["methods"] for r in first.values())]
    lines = ["| method | " + " | ".join(f"{n} {key[n]}" for n in first) + " |", "|---|" + "---|" * len(first)]
    for m in methods:
        cells = [  # a toy gallery smaller than K has no score at K (fixtures): "n/a", not a gap in the row
            _cell([r["methods"][m][key[n]] for r in runs]) if all(key[n] in r["methods"][m] for r in runs) else "n/a"
            for n, runs in first.items()
        ]
        lines.append(f"| {METHOD_LABELS.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _supervised_section(benchmarks: dict[str, AllSeeds]) -> list[str]:
    """The paper's argument: each supervised row on the benchmark it was trained for and elsewhere."""
    supervised = _supervised(benchmarks)
    if not supervised:
        return []
    return [
        "**The supervised comparison**: Combiner is trained on labeled triplets of one source (the training split "
        "of the Fashion-IQ or the CIRR analogue: images of their own); the zero-shot methods never see one. Each "
        "Combiner's R@10 minus Pic2Word's, per seed with the 95% paired bootstrap interval, and the verdict as above:",
        "",
        comparison_table(benchmarks, field="comparisons_to_pic2word", only=supervised),
        "",
    ]


def prompts_table(fiq: AllSeeds, key: str = "R@10") -> str:
    """The methods scored under their own papers' prompts by default: their Fashion-IQ-analogue scores
    under those and under Pic2Word's, mean over seeds (then each seed)."""
    runs = list(fiq["seeds"].values())
    if not all("under_pic2word_prompts" in r for r in runs):
        raise ValueError("fashion_iq results have no `under_pic2word_prompts`; re-run the fashion_iq stage")
    lines = [
        f"| method | own paper's prompts, {key} | Pic2Word's prompts, {key} |",
        "|---|---|---|",
    ]
    for m in runs[0]["under_pic2word_prompts"]:
        own = _cell([r["methods"][m][key] for r in runs])
        pic2word = _cell([r["under_pic2word_prompts"][m][key] for r in runs])
        lines.append(f"| {METHOD_LABELS.get(m, m)} | {own} | {pic2word} |")
    return "\n".join(lines)


def load_all_seeds(path: Path) -> AllSeeds:
    """A `<benchmark>_all_seeds.json`, each seed's document checked (results_schema.check_document)."""
    doc = load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("seeds"), dict):
        raise ValueError(f"{path}: no 'seeds' mapping, so not an all-seeds results file; re-run its stage (dvc repro)")
    for seed, run in doc["seeds"].items():
        check_document(run, f"{path} (seed {seed})")
    return doc


def readme_section(results_dir: str | Path = "results") -> str:
    """The README's results section, generated from the metrics files of the last run."""
    metrics = Path(results_dir) / "metrics"
    dc = load_all_seeds(metrics / "domain_conversion_all_seeds.json")
    fiq = load_all_seeds(metrics / "fashion_iq_all_seeds.json")
    cirr = load_all_seeds(metrics / "cirr_all_seeds.json")
    every = {"domain conversion": dc, "Fashion-IQ analogue": fiq, "CIRR analogue": cirr}
    sanity = load_json(metrics / "demo_clip_sanity.json")
    seeds = " and ".join(dc["seeds"])
    parts = [
        f"Profile `{dc['profile']}`, seeds {seeds}; generated by `make reproduce` from `results/metrics/*.json` (do not "
        "edit by hand). Each cell is the mean over seeds, then each seed's value in parentheses.",
        "",
        "**The demo CLIP**: zero-shot accuracy (%) on held-out demo images (chance: class 6.25, domain 20, colour 12.5):",
        "",
        _sanity_table(sanity),
        "",
        "**Every method on every benchmark**, R@10 (domain conversion: true recall %, mean of four domains, at most "
        "33.3; the Fashion-IQ analogue: hit rate %, mean of three categories; the CIRR analogue: hit rate %). The "
        "Combiner rows are supervised. More metrics, the oracle rows, each domain and category: "
        "[docs/results.md](docs/results.md).",
        "",
        transfer_table(every),
        "",
        "![domain conversion](results/figures/domain_conversion.png)",
        "",
        *_claims(dc, fiq),
        "",
        "**The demo's floors** (means over seeds, checked by every `make reproduce`; `python -m p2w_lib report` "
        "prints them):",
        "",
        *[f"- {c.line()}" for c in check_floors(results_dir)],
        "",
        "**How sure each comparison is**: each method minus image + text in R@10 points; per seed, the difference "
        "with its 95% paired bootstrap interval over queries. The verdict says above or below only where every "
        "seed's interval excludes zero. The intervals cover the choice of queries, not of the training run "
        "(a rebuild on another machine: [docs/reproducibility.md](docs/reproducibility.md)).",
        "",
        comparison_table(every),
        "",
        *_supervised_section(every),
        "![fashion-iq](results/figures/fashion_iq.png)",
        "",
        "![cirr](results/figures/cirr.png)",
        "",
        "![qualitative domain conversion](results/figures/qualitative_domain_conversion.png)",
        "",
        "![qualitative fashion-iq](results/figures/qualitative_fashion_iq.png)",
        "",
        "![qualitative cirr](results/figures/qualitative_cirr.png)",
    ]
    return "\n".join(parts)


def _n(doc: AllSeeds, key: str) -> int:
    return next(iter(doc["seeds"].values()))[key]


def paper_section(results_dir: str | Path = "results/paper") -> str:
    """Markdown tables of a paper-kind run: each benchmark's scores, and the paper's numbers beside ours."""
    metrics = Path(results_dir) / "metrics"
    parts = []
    for task in BENCHMARKS:
        path = metrics / f"{task}.json"
        if not path.is_file():
            continue
        result = load_result(path)
        parts += [f"**{task}** (`{path}`)", ""]
        if "skipped" in result:
            parts += [f"skipped: {result['skipped']}", ""]
            continue
        parts += [markdown_table(metrics_frame(result, keys=None)), ""]
        comparison = paper_comparison(result, task)
        if not comparison.empty:
            ours_split, paper_split = SPLITS[task]
            caveat = (
                ""
                if ours_split == paper_split
                else (
                    f" Ours are on {ours_split}, the papers' on {paper_split}: not the same queries; submit "
                    f"results/paper/submissions/ to the server for a {paper_split} number."
                )
            )
            sources = [f"- {line}" for line in published_sources(task)]
            parts += [
                f"Beside the published ViT-L/14 numbers.{caveat}",
                "",
                markdown_table(comparison),
                "",
                "Sources:",
                "",
                *sources,
                "",
            ]
    if not parts:
        raise FileNotFoundError(f"{metrics}: no results files of the paper benchmarks; run the paper pipeline first")
    scored = {
        task: doc
        for task in BENCHMARKS
        if (metrics / f"{task}_all_seeds.json").is_file()
        and "methods" in next(iter((doc := load_all_seeds(metrics / f"{task}_all_seeds.json"))["seeds"].values()))
    }
    if _supervised(scored):
        parts += ["**Transfer**: every method, the supervised Combiners included, on every benchmark run:", ""]
        parts += [transfer_table(scored, {t: BENCHMARKS[t].summary_keys[0] for t in scored}), ""]
    return "\n".join(parts)


def expectations_section(results_dir: str | Path = "results") -> str:
    """One sentence for the first screen: how often a demo query finds what it asks for."""
    metrics = Path(results_dir) / "metrics"
    dc = load_all_seeds(metrics / "domain_conversion_all_seeds.json")
    fiq = load_all_seeds(metrics / "fashion_iq_all_seeds.json")

    def mean(doc: AllSeeds, method: str, key: str) -> float:
        runs = doc["seeds"].values()
        return sum(r["methods"][method][key] for r in runs) / len(runs)

    seeds = " and ".join(dc["seeds"])
    return (
        f"What a demo query finds (mean of seeds {seeds}, from `results/metrics/`): of a Pic2Word query's top 10 "
        f"images, {mean(dc, 'pic2word', 'P@10'):.0f}% show the right class in the asked-for domain (image + text: "
        f"{mean(dc, 'image_text', 'P@10'):.0f}%); on the Fashion-IQ analogue the one target is in the top 10 for "
        f"{mean(fiq, 'pic2word', 'R@10'):.0f}% of queries (image + text: {mean(fiq, 'image_text', 'R@10'):.0f}%)."
    )


def stage_minutes(results_dir: str | Path = "results") -> dict[str, float]:
    """{stage: minutes} of the committed run, from papermill's duration in each executed notebook
    (the cells' time: the kernel's start, the HTML export and DVC's checks come on top)."""
    times = {}
    for path in sorted((Path(results_dir) / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        duration = load_json(path).get("metadata", {}).get("papermill", {}).get("duration")
        if duration is None:
            raise ValueError(f"{path}: no papermill duration; re-run the stage with `dvc repro`")
        times[path.stem[3:]] = duration / 60
    return times


def timing_section(results_dir: str | Path = "results") -> str:
    """The per-stage split of the committed run, for docs/performance.md."""
    times = stage_minutes(results_dir)
    split = ", ".join(f"{stage} {m:.1f}" for stage, m in times.items())
    return (
        f"The committed run's notebooks took {sum(times.values()):.0f} min on 2 cores: {split} "
        "(a stage that found its model trained only checks it)."
    )


def generated_parts(results_dir: str | Path = "results") -> dict[tuple[str, str], str]:
    """Each generated block of the README, keyed by its markers."""
    return {
        (EXPECT_START, EXPECT_END): expectations_section(results_dir),
        (README_START, README_END): readme_section(results_dir),
    }


PROMPTS_START, PROMPTS_END = "<!-- prompts:start -->", "<!-- prompts:end -->"
GROUPS_START, GROUPS_END = "<!-- groups:start -->", "<!-- groups:end -->"


def groups_section(results_dir: str | Path = "results") -> str:
    """docs/results.md's tables: each benchmark's metrics per method, and per domain and category."""
    metrics = Path(results_dir) / "metrics"
    dc = load_all_seeds(metrics / "domain_conversion_all_seeds.json")
    fiq = load_all_seeds(metrics / "fashion_iq_all_seeds.json")
    cirr = load_all_seeds(metrics / "cirr_all_seeds.json")
    return "\n".join(
        [
            "**Domain conversion** (ImageNet-R protocol; true recall %, the mean over the four rendition domains):",
            "",
            _seed_table(dc, ("R@10", "R@50", "P@10")),
            "",
            "Per rendition domain:",
            "",
            _group_table(dc),
            "",
            "**Fashion-IQ analogue** (hit-rate recall %, the mean over the three categories):",
            "",
            _seed_table(fiq, ("R@10", "R@50")),
            "",
            "Per category:",
            "",
            _group_table(fiq),
            "",
            f"**CIRR analogue** (CIRR's protocol: hit-rate recall % over {_n(cirr, 'n_gallery')} photos, the "
            f"reference left out; Recall_subset within the query's set of six; {_n(cirr, 'n_queries')} queries):",
            "",
            _seed_table(cirr, ("R@1", "R@5", "R@10", "R@50", "Rs@1", "Rs@2", "Rs@3")),
        ]
    )


def docs_parts(results_dir: str | Path = "results") -> dict[str, dict[tuple[str, str], str]]:
    """The generated blocks of docs pages: {page: {markers: body}}."""
    fiq = load_all_seeds(Path(results_dir) / "metrics" / "fashion_iq_all_seeds.json")
    return {
        "docs/methods.md": {(PROMPTS_START, PROMPTS_END): prompts_table(fiq)},
        "docs/results.md": {(GROUPS_START, GROUPS_END): groups_section(results_dir)},
        "docs/performance.md": {(TIMING_START, TIMING_END): timing_section(results_dir)},
    }


def replace_block(text: str, start: str, end: str, body: str, where: str = "README.md") -> str:
    if start not in text or end not in text:
        raise ValueError(f"{where}: missing the {start} / {end} markers; restore them from git")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def write_readme_section(readme: str | Path = "README.md", results_dir: str | Path = "results") -> None:
    """Rewrite every generated block of `readme` from `results_dir` (one atomic write)."""
    readme = Path(readme)
    text = readme.read_text()
    for (start, end), body in generated_parts(results_dir).items():
        text = replace_block(text, start, end, body, str(readme))
    atomic_write_text(readme, text)
    for page, blocks in docs_parts(results_dir).items():  # beside the README: docs/ pages' generated blocks
        path = readme.parent / page
        doc = path.read_text()
        for (start, end), body in blocks.items():
            doc = replace_block(doc, start, end, body, str(path))
        atomic_write_text(path, doc)
