class DataFormatError(ValueError):
    """A dataset file exists but does not have the expected format; the message names file and line."""


def require_file(path, what: str, hint: str) -> None:
    """Raise FileNotFoundError naming the path, what it should be and how to get it."""
    from pathlib import Path

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: missing {what}. {hint}")
