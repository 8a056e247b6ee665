"""Reading a dataset's JSON annotation file with errors that name the file and the fix."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import DataFormatError, require_file


def load_json(path: str | Path, what: str, hint: str):
    path = Path(path)
    require_file(path, what, hint)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}: malformed JSON ({err})") from err
