"""The repository's two DVC pipelines, and how the paper's becomes visible to DVC.

DVC reads every file named dvc.yaml in the repository, so a paper pipeline kept as
pipelines/paper/dvc.yaml would fill a demo clone's `dvc status` with the stages of data it never
had. It is kept as pipelines/paper/pipeline.yaml instead, and a paper run links
pipelines/paper/dvc.yaml to it (a git-ignored symlink): from then on DVC sees both pipelines, and
an edit through either name edits the one file.
"""

from __future__ import annotations

import sys
from pathlib import Path

DEMO = "dvc.yaml"
PAPER = "pipelines/paper/dvc.yaml"  # what DVC runs: a link to PAPER_SOURCE
PAPER_SOURCE = "pipelines/paper/pipeline.yaml"  # the committed file


class PipelineLinkError(RuntimeError):
    pass


def link_paper_pipeline(root: str | Path = ".") -> Path:
    """Make `root/PAPER` a relative symlink to PAPER_SOURCE (idempotent); returns the link.

    A regular file in its place is never overwritten: it may hold edits."""
    link, source = Path(root) / PAPER, Path(root) / PAPER_SOURCE
    if not source.is_file():
        raise PipelineLinkError(f"{source} is missing: the paper pipeline is not in this checkout")
    if link.is_symlink():
        if link.resolve() == source.resolve():
            return link
        link.unlink()
    elif link.exists():
        raise PipelineLinkError(
            f"{link} is a regular file, not the link to {PAPER_SOURCE}: move its edits into "
            f"{PAPER_SOURCE}, delete it, and run again"
        )
    link.symlink_to(source.name)
    return link


if __name__ == "__main__":  # make reproduce (paper profile): `python -m p2w_lib.app.pipelines`
    try:
        print(f"linked {link_paper_pipeline()} -> {Path(PAPER_SOURCE).name}")
    except PipelineLinkError as err:
        print(err, file=sys.stderr)
        sys.exit(2)
