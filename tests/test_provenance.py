"""A checkpoint's code fingerprint is the hash of its training entry point's import closure, so an
edit anywhere that training runs changes it, and an edit elsewhere does not. The modules below are
the ones that hand-kept lists once left out (the prefix cache for the mapper, the batch plan and the
CLIP loader for the demo CLIP, the prefix cache and the feature cache for SEARLE-OTI)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from p2w_lib.training.provenance import code_fingerprint

ROOT = Path(__file__).resolve().parents[1]

# training entry point -> (a module deep in what it runs, a module it does not run)
CASES = {
    "p2w_lib.methods.pic2word.train": ("p2w_lib/clip/prefix_cache.py", "p2w_lib/app/readme.py"),
    "p2w_lib.methods.lincir.train": ("p2w_lib/methods/lincir/keywords.py", "p2w_lib/methods/searle/oti.py"),
    "p2w_lib.methods.searle.train": ("p2w_lib/methods/searle/oti.py", "p2w_lib/methods/pic2word/train.py"),
    "p2w_lib.methods.searle_oti": ("p2w_lib/clip/prefix_cache.py", "p2w_lib/cli.py"),
    "p2w_lib.demo.clip_pretrain": ("p2w_lib/demo/batches.py", "p2w_lib/methods/pic2word/train.py"),
}


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "p2w_lib", tmp_path / "p2w_lib", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _append_comment(path: Path) -> None:
    path.write_text(path.read_text() + "\n# an edit\n")


@pytest.mark.parametrize("entry", sorted(CASES))
def test_an_edit_deep_in_the_closure_changes_the_fingerprint_and_one_outside_does_not(entry, package_copy):
    inside, outside = CASES[entry]
    before = code_fingerprint(entry, package_copy)
    assert before == code_fingerprint(entry, ROOT)  # the copy hashes as the package does: paths are relative
    _append_comment(package_copy / outside)
    assert code_fingerprint(entry, package_copy) == before, f"{outside} is not run by {entry}"
    _append_comment(package_copy / inside)
    assert code_fingerprint(entry, package_copy) != before, f"{inside} is run by {entry}"


def test_the_clip_model_configs_are_part_of_the_demo_clips_code(package_copy):
    before = code_fingerprint("p2w_lib.demo.clip_pretrain", package_copy)
    config = package_copy / "p2w_lib" / "clip" / "model_configs" / "p2w-tiny" / "open_clip_config.json"
    config.write_text(config.read_text().replace("}", " }", 1))
    assert code_fingerprint("p2w_lib.demo.clip_pretrain", package_copy) != before


def test_an_unknown_entry_point_is_an_error():
    with pytest.raises(ModuleNotFoundError, match="no source"):
        code_fingerprint("p2w_lib.methods.no_such_method")
