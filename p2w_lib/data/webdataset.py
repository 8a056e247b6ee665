"""CC3M as WebDataset shards: a folder of `.tar` files whose members are grouped by key,
`<key>.jpg` (or .jpeg/.png/.webp) + `<key>.txt` (the caption), as img2dataset writes them.

An image inside a shard is addressed as `<shard.tar>::<member name>`, so it flows through the
same path-based code as a folder of files (embedding cache, bad-image reports). Reading one
member seeks straight to its bytes with an offset index built once per shard and process.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from p2w_lib.data.errors import DataFormatError

SEP = "::"
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")

_INDEX: dict[tuple[str, int], dict[str, tuple[int, int]]] = {}  # (shard, mtime) -> member -> (offset, size)


def is_member_ref(path: str | Path) -> bool:
    return SEP in str(path)


def split_ref(ref: str | Path) -> tuple[str, str]:
    shard, member = str(ref).split(SEP, 1)
    return shard, member


def _scan(shard: str, read_captions: bool) -> tuple[dict[str, tuple[int, int]], dict[str, bytes]]:
    """One sequential pass over a shard: member offsets, and the `.txt` members' bytes if asked.

    A truncated shard (an interrupted download) is an error: tarfile itself just stops early at
    the cut, which would lose the samples after it without a word.
    """
    offsets, texts = {}, {}
    size = os.path.getsize(shard)
    try:
        with tarfile.open(shard, "r:") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                if m.offset_data + m.size > size:
                    _truncated(
                        shard, f"member {m.name!r} needs bytes up to {m.offset_data + m.size:,}, the file has {size:,}"
                    )
                offsets[m.name] = (m.offset_data, m.size)
                if read_captions and m.name.endswith(".txt"):
                    texts[m.name] = tar.extractfile(m).read()
            end = tar.offset  # where the end-of-archive marker (two zero blocks) must start
    except tarfile.TarError as err:
        if "end of data" in str(err):  # tarfile's word for a cut inside a header or padding block
            _truncated(shard, str(err))
        raise DataFormatError(
            f"{shard}: not a readable (uncompressed) tar shard ({err}); re-create it or remove it"
        ) from err
    with open(shard, "rb") as fh:
        fh.seek(end)
        marker = fh.read(2 * tarfile.BLOCKSIZE)
    if len(marker) < 2 * tarfile.BLOCKSIZE or marker.strip(b"\0"):
        _truncated(shard, f"it ends at byte {size:,} without the end-of-archive marker after its last member")
    return offsets, texts


def _truncated(shard: str, what: str) -> None:
    raise DataFormatError(
        f"{shard}: truncated shard ({what}); the samples after the cut are lost. Download or "
        "re-create the shard, or move it out of the shards folder."
    )


def shard_index(shard: str) -> dict[str, tuple[int, int]]:
    """Member name -> (data offset, size) of a tar shard (cached per process)."""
    key = (shard, os.stat(shard).st_mtime_ns)
    if key not in _INDEX:
        _INDEX[key] = _scan(shard, read_captions=False)[0]
    return _INDEX[key]


def read_member(ref: str | Path) -> bytes:
    """The bytes of `<shard>::<member>`; FileNotFoundError when shard or member is absent."""
    shard, member = split_ref(ref)
    if not os.path.isfile(shard):
        raise FileNotFoundError(f"{shard}: shard not found")
    try:
        offset, size = shard_index(shard)[member]
    except KeyError:
        raise FileNotFoundError(f"{shard}: no member {member!r}") from None
    with open(shard, "rb") as fh:
        fh.seek(offset)
        return fh.read(size)


def open_member(ref: str | Path) -> io.BytesIO:
    return io.BytesIO(read_member(ref))


def read_shards(folder: str | Path) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(image ref, caption) pairs of every sample in `folder/*.tar`, in shard and member order,
    and counts of what was left out (samples without an image; an image without a caption
    keeps an empty caption, since mapper training needs images only)."""
    folder = Path(folder)
    shards = sorted(folder.glob("*.tar"))
    if not shards:
        raise FileNotFoundError(
            f"{folder}: no .tar shards; expected WebDataset shards (<key>.jpg + <key>.txt per sample)"
        )
    pairs: list[tuple[str, str]] = []
    skipped = {"samples_without_image": 0}
    for shard in shards:
        members, texts = _scan(str(shard), read_captions=True)
        _INDEX[(str(shard), os.stat(shard).st_mtime_ns)] = members  # later image reads seek straight to their bytes
        by_key: dict[str, dict[str, str]] = {}
        for name in members:
            stem, ext = os.path.splitext(name)
            by_key.setdefault(stem, {})[ext.lower()] = name
        for files in by_key.values():
            image = next((files[e] for e in IMAGE_EXTS if e in files), None)
            if image is None:
                skipped["samples_without_image"] += 1
                continue
            caption = texts[files[".txt"]].decode("utf-8", "replace").strip() if ".txt" in files else ""
            pairs.append((f"{shard}{SEP}{image}", caption))
    return pairs, skipped
