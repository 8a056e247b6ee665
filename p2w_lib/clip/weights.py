"""Is a pretrained CLIP's weight file available here, and if not, can it be downloaded?

open_clip resolves a tag (`ViT-L-14` + `openai`) to a Hugging Face Hub file or a URL and
downloads it on first use. Without network that ends in retries and a traceback from deep inside
huggingface_hub. `require_weights` answers first, in well under a second: it looks in the local
caches, and only if the file is absent probes the download hosts with a short timeout.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlparse


class WeightsUnavailableError(FileNotFoundError):
    """The pretrained weights are neither cached nor downloadable from here."""


@dataclass(frozen=True)
class WeightsSource:
    """Where open_clip would get a (model, tag)'s weights: candidate cache files and hosts to reach."""

    model: str
    tag: str
    files: tuple[str, ...]  # every local path open_clip would accept as the cached file
    hosts: tuple[str, ...]  # host names it would download from
    describe: str  # the remote file, for the error message


def weights_source(model: str, tag: str, cache_dir: str | None = None) -> WeightsSource | None:
    """The source of open_clip's pretrained (model, tag); None when open_clip does not download it."""
    from open_clip import pretrained as oc_pretrained

    cfg = oc_pretrained.get_pretrained_cfg(model, tag)
    if not cfg or "file" in cfg:
        return None
    hub, url = cfg.get("hf_hub", ""), cfg.get("url", "")
    if hub and oc_pretrained.has_hf_hub():  # open_clip prefers the Hub whenever it has an entry
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.constants import HF_HUB_CACHE

        repo, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        hits = [try_to_load_from_cache(repo, name, cache_dir=cache_dir) for name in names]
        files = [h for h in hits if isinstance(h, str)] or [
            f"{cache_dir or HF_HUB_CACHE}/models--{repo.replace('/', '--')}"
        ]
        host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
        return WeightsSource(model, tag, tuple(files), (host,), f"huggingface.co/{repo} ({' or '.join(names)})")
    if not url:
        return None
    folder = cache_dir or os.path.expanduser("~/.cache/clip")
    files, hosts, describe = [os.path.join(folder, os.path.basename(url))], [urlparse(url).hostname or ""], url
    return WeightsSource(model, tag, tuple(files), tuple(h for h in hosts if h), describe)


def reachable(host: str, port: int = 443, timeout: float = 0.4) -> bool:
    """Can a TCP connection to host:port open within `timeout` seconds (DNS lookup included)?"""

    def connect() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(connect).result(timeout=timeout)
    except concurrent.futures.TimeoutError:  # a hanging DNS lookup counts as unreachable
        return False
    finally:
        pool.shutdown(wait=False)


def require_weights(model: str, tag: str, cache_dir: str | None = None, probe=None) -> str | None:
    """Return the cached weight file, None if it will be downloaded; raise if neither can happen.

    probe(host) -> bool tells whether a download host answers (default: `reachable`)."""
    probe = probe or reachable
    source = weights_source(model, tag, cache_dir)
    if source is None:
        return None
    for path in source.files:
        if os.path.isfile(path):
            return path
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    if not offline and any(probe(host) for host in source.hosts):
        return None
    raise WeightsUnavailableError(
        f"CLIP weights {model}/{tag} are not cached here (looked for {', '.join(source.files) or 'a cached copy'}) "
        f"and {', '.join(source.hosts)} cannot be reached{' (HF_HUB_OFFLINE is set)' if offline else ''}. "
        f"Download {source.describe} on a machine with internet (e.g. run "
        f"`python -c \"import open_clip; open_clip.create_model('{model}', pretrained='{tag}')\"` there) and copy the "
        "Hugging Face cache (~/.cache/huggingface/hub) here, or set clip.pretrained in params.yaml to the weights file's path."
    )


WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def check_clip_settings(model: str, pretrained: str | None, cache_dir: str | None = None, where: str = "clip") -> str:
    """Say, in one line, where the CLIP weights will come from, or raise naming the setting.

    A `pretrained` that looks like a file path must exist; a tag must be one open_clip knows for
    the model and be cached or downloadable (require_weights). Runs in milliseconds, so the paper
    pipeline checks it before hours of data preparation.
    """
    if not pretrained:
        return f"{model}: random weights (pretrained: null)"
    if os.sep in pretrained or pretrained.endswith(WEIGHT_SUFFIXES):
        if not os.path.isfile(os.path.expanduser(pretrained)):
            raise FileNotFoundError(
                f"{where}.pretrained: weights file {pretrained} not found; fix the path in "
                "params.yaml, or use an open_clip tag such as `openai`"
            )
        return f"{model}: weights from {pretrained}"
    from open_clip import pretrained as oc_pretrained

    if model.startswith(("local-dir:", "hf-hub:")) or os.path.isdir(model):
        return f"{model}: weights from the model folder"
    tags = oc_pretrained.list_pretrained_tags_by_model(model)
    if tags and pretrained not in tags:
        raise FileNotFoundError(
            f"{where}.pretrained: open_clip has no weights {pretrained!r} for {model}; choose one of {sorted(tags)}"
        )
    found = require_weights(model, pretrained, cache_dir)
    return f"{model}/{pretrained}: " + (
        f"cached at {found}" if found else "not cached; will be downloaded on first use"
    )
