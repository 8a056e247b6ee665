"""Fetching small public files (annotation lists) with a sha256 check.

Every file is written atomically and only after its checksum matched, so a half-finished or
tampered download never lands under data/. A file already in place with the right checksum is
not fetched again. `source` may be an https URL, a file:// URL or a local path (for machines
without internet: download elsewhere, copy the file over, point the source at it).
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from p2w_lib.core.files import atomic_path

PIC2WORD_RAW = "https://raw.githubusercontent.com/google-research/composed_image_retrieval/main/data"


@dataclass(frozen=True)
class RemoteFile:
    name: str  # path relative to the data root where the file belongs
    url: str
    sha256: str


# Pic2Word's ImageNet-R domain-conversion lists (Apache-2.0), with the checksums of the published files.
PIC2WORD_IMAGENET_LISTS = (
    RemoteFile(
        "imgnet/imgnet_real_query.txt",
        f"{PIC2WORD_RAW}/imgnet/imgnet_real_query.txt",
        "cd19c2d76f7fee0c47afba6dfc182c3fd5dbf800c0a80149feca6e0547936d1e",
    ),
    RemoteFile(
        "imgnet/imgnet_targets.txt",
        f"{PIC2WORD_RAW}/imgnet/imgnet_targets.txt",
        "4cc6b22d493b783f2f7fce356276096c0d5ec38be95bd3a3349c8458b8a4a311",
    ),
)


FASHION_IQ_RAW = "https://raw.githubusercontent.com/XiaoxiaoGuo/fashion-iq/master"
_FIQ_SHA256 = {
    "captions/cap.dress.val.json": "5e5117d45695df9c3ca91fac3e0bc49e6422ae9c8b3793f0ac9b3ab83adb7de9",
    "captions/cap.shirt.val.json": "7b7ca3797b85dddfd83e74cdb4454cb63e3e7c09acef2590155efbacea6d7feb",
    "captions/cap.toptee.val.json": "b4e09f428e6c255cc4b4ec46e77908305ab83075d82840c960be81af15cdc5eb",
    "image_splits/split.dress.val.json": "21ff91d53c23859da91bfd49f3acc139b7f3a3dc944fc4e4a80194468cf14bab",
    "image_splits/split.shirt.val.json": "b82effbf7352a6f828b38c45eb32e53d726bd4d6fd81d6290c81eeb2c68e3234",
    "image_splits/split.toptee.val.json": "ee42b2505275dd7a19b11ddb88c9264aab2d77f4e59b075fb1c7c3095d02f412",
}
# Fashion-IQ's validation captions and splits (CDLA), with the checksums of the released files.
FASHION_IQ_VAL_FILES = tuple(
    RemoteFile(f"fashion-iq/{name}", f"{FASHION_IQ_RAW}/{name}", sha) for name, sha in _FIQ_SHA256.items()
)
# Its training captions and splits: the labeled triplets the supervised Combiner learns from.
_FIQ_TRAIN_SHA256 = {
    "captions/cap.dress.train.json": "1691bd52e5bbda755b0c1f14d1024000be2c57a0cc29511a327af1372636a946",
    "captions/cap.shirt.train.json": "0999ce5da01a38f0cef1547941b738f4c56e225fdd9b8e03e2a6edaf292f94c3",
    "captions/cap.toptee.train.json": "6daa171a9e744823087780a3b69b8b697bd05526adb6dd55a38ee6c4904ab348",
    "image_splits/split.dress.train.json": "dcb1c7329003e85e39a3010147a620cee4b7de6a5ddf2626f253bc9a2cdd78e5",
    "image_splits/split.shirt.train.json": "1552c05d866d31b43321a719b2cb8a65f02c53e9a6bc355861fe1d62498b9983",
    "image_splits/split.toptee.train.json": "aa9b3a55332340f21360fb6a3fe174badd27ce389fe7d78d890bf2b9032ffe05",
}
FASHION_IQ_TRAIN_FILES = tuple(
    RemoteFile(f"fashion-iq/{name}", f"{FASHION_IQ_RAW}/{name}", sha) for name, sha in _FIQ_TRAIN_SHA256.items()
)


class ChecksumError(RuntimeError):
    """A fetched file's sha256 differs from the expected one; nothing was written."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _copy_stream(response, out, total: int | None, desc: str) -> None:
    from tqdm import tqdm

    with tqdm(
        total=total, unit="B", unit_scale=True, desc=desc, leave=False, disable=not total or total < (1 << 24)
    ) as bar:
        while block := response.read(1 << 20):
            out.write(block)
            bar.update(len(block))


def fetch_verified(source: str, dest: str | Path, sha256: str | None, timeout: float = 30.0) -> Path:
    """Copy or download `source` to `dest` if `dest` is not already the file with `sha256`.

    sha256=None (a file without a published checksum, e.g. ImageNet-R's tar) skips the check and
    any file already at `dest` is kept.
    """
    dest = Path(dest)
    if dest.is_file() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        try:
            if "://" in source:
                with urllib.request.urlopen(source, timeout=timeout) as response, open(tmp, "wb") as out:
                    length = response.headers.get("Content-Length")
                    _copy_stream(response, out, int(length) if length else None, f"downloading {dest.name}")
            else:
                shutil.copyfile(source, tmp)
        except OSError as err:  # URLError is an OSError
            raise FileNotFoundError(
                f"could not fetch {source} for {dest} ({err}). Without internet, download it on another "
                f"machine and copy it to {dest}" + (f" (expected sha256 {sha256})." if sha256 else ".")
            ) from err
        got = sha256_file(tmp) if sha256 else None
        if got != sha256:
            raise ChecksumError(
                f"{source}: sha256 {got} differs from the expected {sha256}; {dest} was not written. "
                "The source changed or the download is corrupt: fetch it again or check the URL."
            )
    return dest


def fetch_pic2word_lists(root: str | Path, sources: dict[str, str] | None = None) -> list[Path]:
    """Put Pic2Word's two ImageNet-R lists under `root/imgnet/`, verified.

    sources: optional list name -> URL or local path replacing the public URL.
    """
    sources = sources or {}
    return [
        fetch_verified(sources.get(Path(f.name).name, f.url), Path(root) / f.name, f.sha256)
        for f in PIC2WORD_IMAGENET_LISTS
    ]


def fetch_missing(root: str | Path, files: tuple[RemoteFile, ...], base: str | None = None) -> list[str]:
    """Fetch each of `files` absent under `root` (from `base`/<name> when given); files already in
    place are the user's and are left alone. Returns the names fetched."""
    fetched = []
    for f in files:
        dest = Path(root) / f.name
        if dest.is_file():
            continue
        rel = f.name.split("/", 1)[1]
        fetch_verified(f"{base.rstrip('/')}/{rel}" if base else f.url, dest, f.sha256)
        fetched.append(f.name)
    return fetched
