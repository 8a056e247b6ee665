"""Reading a dataset's JSON annotation file with errors that name the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

from p2w_lib.data.errors import DataFormatError, require_file

_KIND = {list: "list", dict: "object"}


def load_json(path: str | Path, what: str, hint: str, expect: type | None = None, non_empty: bool = True):
    """The file's JSON; with `expect` (list or dict) the top level must be of that kind and, with
    `non_empty`, hold something: `null`, a number or `{}` is a clear error, never zero queries."""
    path = Path(path)
    require_file(path, what, hint)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM written by an editor is fine
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}: malformed JSON ({err})") from err
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not UTF-8 text ({err}); save it as UTF-8") from err
    if expect is not None and not isinstance(data, expect):
        raise DataFormatError(
            f"{path}: the {what} must be a JSON {_KIND[expect]}, got {type(data).__name__} "
            f"({json.dumps(data)[:60]}). {hint}"
        )
    if expect is not None and non_empty and not data:
        raise DataFormatError(f"{path}: the {what} is empty. {hint}")
    return data
