"""Reading image files for CLIP: a dataset that never crashes on one bad file, and a report
that makes every skipped file visible (and fails the run when too many are bad)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from p2w_lib.data.webdataset import is_member_ref, open_member


class BadImagesError(RuntimeError):
    """More images than allowed could not be read."""


class UnreadableImageError(OSError):
    """A file exists but does not decode as an image (corrupt, truncated, not an image)."""


# What PIL's decoders raise for a damaged file besides OSError: a broken PNG chunk or APNG frame
# sequence raises SyntaxError, short reads struct.error or EOFError, bad headers ValueError or
# IndexError, a bad zlib stream zlib.error.
_DECODE_ERRORS = (SyntaxError, ValueError, IndexError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image fully (so truncated files fail here, not later) and convert to RGB.

    Raises FileNotFoundError for a missing file and UnreadableImageError (an OSError) naming the
    file for any file that does not decode, whichever exception the decoder used.
    """

    try:
        with Image.open(open_member(path) if is_member_ref(path) else path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError:
        raise
    except (OSError, *_DECODE_ERRORS) as err:
        raise UnreadableImageError(f"{path}: not a readable image ({type(err).__name__}: {err})") from err


class ImageListDataset(Dataset):
    """Images from a list of paths; yields (tensor, index, error) where error is '' when fine.

    A missing or unreadable file yields a zero tensor and the error text instead of raising,
    so the caller can count and report bad files without losing the rest of the batch.
    """

    def __init__(self, paths: Sequence[str | Path], transform: Callable, image_size: int):
        self.paths = [str(p) for p in paths]
        self.transform = transform
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = self.paths[i]
        try:
            return self.transform(load_rgb(path)), i, ""
        except FileNotFoundError:
            error = "missing"
        except UnreadableImageError as err:
            error = f"unreadable ({err.__cause__.__class__.__name__}: {err.__cause__})"
        except (OSError, ValueError) as err:  # the transform on a decoded image (e.g. a 0-pixel image)
            error = f"unreadable ({type(err).__name__}: {err})"
        return torch.zeros(3, self.image_size, self.image_size), i, error


@dataclass
class BadImageReport:
    """Which images were skipped and why; `check` enforces the allowed fraction."""

    total: int = 0
    bad: dict[str, str] = field(default_factory=dict)  # path -> reason

    def add(self, path: str, reason: str) -> None:
        self.bad[path] = reason

    @property
    def n_bad(self) -> int:
        return len(self.bad)

    def summary(self, what: str = "images", n_examples: int = 3) -> str:
        examples = "; ".join(f"{p}: {r}" for p, r in list(self.bad.items())[:n_examples])
        return f"{self.n_bad} of {self.total} {what} skipped" + (f" (e.g. {examples})" if examples else "")

    def check(self, max_fraction: float, what: str = "images") -> None:
        if self.total and self.n_bad / self.total > max_fraction:
            raise BadImagesError(
                f"{self.summary(what)}: more than the allowed {max_fraction:.1%}. Fix or remove the listed "
                "files, or raise max_bad_fraction if losing them is acceptable."
            )
