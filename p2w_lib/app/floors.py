"""The demo's floors (issue 27's restatement of issue 12's), checked on every re-run from the results
files: the demo must show the paper's effect plainly, on the mean over seeds.

- the demo CLIP recognises photos: class accuracy on held-out photos >= 60%;
- domain conversion: Pic2Word's R@10 >= 2.5 x image + text's;
- Fashion-IQ analogue: the lower end of the 95% paired bootstrap interval of Pic2Word minus image +
  text in R@10 >= +5 points.
`python -m p2w_lib report` prints them, the README's generated section states them, and the test of
the committed results fails when one is not met.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from p2w_lib.app.report import load_json


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _photo_accuracy(metrics: Path) -> float:
    sanity = load_json(metrics / "demo_clip_sanity.json")
    return _mean(s["class (photo)"] for s in sanity["zero_shot_accuracy"].values())


def _dc_ratio(metrics: Path) -> float:
    runs = load_json(metrics / "domain_conversion_all_seeds.json")["seeds"].values()
    p2w = _mean(r["methods"]["pic2word"]["R@10"] for r in runs)
    return p2w / max(_mean(r["methods"]["image_text"]["R@10"] for r in runs), 1e-9)


def _fiq_margin_low(metrics: Path) -> float:
    runs = load_json(metrics / "fashion_iq_all_seeds.json")["seeds"].values()
    return _mean(r["comparisons"]["R@10"]["pic2word"]["ci_low"] for r in runs)


@dataclass(frozen=True)
class Floor:
    name: str
    unit: str
    minimum: float
    measure: Callable[[Path], float]  # the metrics folder -> the value, mean over seeds


FLOORS = (
    Floor("demo CLIP photo class accuracy", "%", 60.0, _photo_accuracy),
    Floor("domain conversion: Pic2Word R@10 / image + text R@10", "x", 2.5, _dc_ratio),
    Floor("Fashion-IQ analogue: 95% lower end of Pic2Word - image + text, R@10", "points", 5.0, _fiq_margin_low),
)


@dataclass(frozen=True)
class FloorCheck:
    floor: Floor
    value: float

    @property
    def met(self) -> bool:
        return self.value >= self.floor.minimum

    def line(self) -> str:
        f = self.floor
        word = "met" if self.met else "**NOT met**"
        return f"{f.name}: {self.value:.2f} {f.unit} (floor {f.minimum:g}), {word}"


def check_floors(results_dir: str | Path = "results") -> list[FloorCheck]:
    metrics = Path(results_dir) / "metrics"
    return [FloorCheck(f, f.measure(metrics)) for f in FLOORS]
