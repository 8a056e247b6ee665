"""The interactive composer of notebook 7: pick or upload a query image, type the modification,
choose the gallery folder, and see the top-k of Pic2Word beside image + text, searched again on
every change (a text box's change counts when Enter is pressed or it loses focus).

The widget is a thin shell over `Composer.run` (query image + text -> ranked results -> grid
figure), which tests drive without a browser.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path

import torch

from p2w_lib.app.figures import compare_grid
from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.methods.pic2word.network import Mapper
from p2w_lib.methods.registry import QUERY_METHODS
from p2w_lib.retrieval.gallery import (
    GalleryIndex,
    SearchInputError,
    build_prompt,
    embed_query,
)

METHODS = ("pic2word", "image_text")


class Composer:
    """State of one composer: the gallery embedded once per folder, the query embedded once per image."""

    def __init__(
        self,
        clip: FrozenClip,
        mapper: Mapper,
        gallery: str | Path,
        cache_dir=None,
        k: int = 5,
        image: str | Path | None = None,
        text: str = "",
        methods: Sequence[str] = METHODS,
    ):
        self.clip, self.mapper, self.cache_dir, self.k, self.methods = clip, mapper, cache_dir, k, tuple(methods)
        self.index = GalleryIndex.build(clip, gallery, cache_dir)
        self.image = str(image or self.index.files[0])
        self.text = text
        self._query: tuple[str, torch.Tensor] | None = None
        self.results: dict[str, list[tuple[str, float]]] = {}
        self.figure = None
        self._widget = None
        self._uploads = Path(tempfile.mkdtemp(prefix="p2w-upload-"))
        # uploads go with the composer: close(), or its collection, or at the latest the kernel's exit
        self._remove_uploads = weakref.finalize(self, shutil.rmtree, self._uploads, True)

    # -- the callback core --------------------------------------------------------------
    def run(
        self,
        image: str | Path | None = None,
        text: str | None = None,
        gallery: str | Path | None = None,
        k: int | None = None,
    ) -> dict[str, list[tuple[str, float]]]:
        """Search with whatever changed; returns {method: [(path, cosine), ...]} and draws `self.figure`."""

        if gallery is not None and str(gallery) != self.index.folder:
            self.index = GalleryIndex.build(self.clip, gallery, self.cache_dir)
        self.image = str(image) if image is not None else self.image
        self.text = text if text is not None else self.text
        self.k = k or self.k
        build_prompt(self.text)  # a text with two `*` is refused before any work
        if self._query is None or self._query[0] != self.image:
            self._query = (self.image, embed_query(self.clip, self.image))
        self.results = self.index.search(self.clip, self.mapper, self._query[1], self.text, self.k, self.methods)
        self.figure = compare_grid(self.image, build_prompt(self.text), self.results)
        return self.results

    def upload(self, name: str, content: bytes) -> str:
        """Save an uploaded image in the composer's upload folder, in place of the previous upload, and
        return its path (run(image=path) makes it the query). The folder is removed with the composer."""
        for old in self._uploads.iterdir():
            old.unlink()
        path = self._uploads / Path(name).name
        path.write_bytes(bytes(content))
        return path.as_posix()

    def close(self) -> None:
        """Close the widget's controls and delete the uploaded images."""
        stack = [self._widget] if self._widget is not None else []
        while stack:
            widget = stack.pop()
            stack.extend(getattr(widget, "children", ()))
            widget.close()
        self._widget = None
        self._remove_uploads()

    # -- the widget ---------------------------------------------------------------------
    def describe(self) -> str:
        """What the live widget shows, in words: the plain-text form of the composer's output."""
        methods = " and ".join(QUERY_METHODS[m].label for m in self.methods)
        return (
            f"Interactive composer: the top {self.k} of {methods} for the query image "
            f"{Path(self.image).name} and the text {self.text!r}, over the {len(self.index.files)} images of "
            f"{self.index.folder}, updated whenever the query, the text, the folder or k changes. "
            "Its controls need a running kernel: step through this notebook in JupyterLab to use them."
        )

    def _repr_mimebundle_(self, **kwargs):
        """The widget where a kernel renders it; elsewhere (the executed copy, its HTML) `describe()`."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self.describe()
        return bundle

    @property
    def widget(self):
        if self._widget is None:
            self._widget = self._build_widget()
        return self._widget

    def _build_widget(self):
        import ipywidgets as w

        pick = w.Dropdown(
            options=[(Path(f).name, f) for f in self.index.files],
            value=self.image if self.image in self.index.files else None,
            description="query",
            layout=w.Layout(width="320px"),
        )
        upload = w.FileUpload(accept="image/*", multiple=False, description="upload query")
        text = w.Text(
            value=self.text,
            description="text",
            continuous_update=False,
            layout=w.Layout(width="420px"),
            placeholder="is red with a white logo  |  a sketch of *",
        )
        folder = w.Text(
            value=self.index.folder, description="gallery", continuous_update=False, layout=w.Layout(width="420px")
        )
        k = w.IntSlider(value=self.k, min=1, max=20, description="top k")
        mode = w.HTML(
            "<i>Searches again on every change: pick or upload a query, move the slider, or press Enter in a text box.</i>"
        )
        status, out = w.HTML(), w.Output()
        syncing = []  # set while the query list is refilled, so refilling triggers no search

        def follow_gallery():
            """The query list is the current gallery's images; a query from elsewhere (an upload) is none of them."""
            syncing.append(True)
            try:
                if [v for _, v in pick.options] != self.index.files:
                    pick.options = [(Path(f).name, f) for f in self.index.files]
                pick.value = self.image if self.image in self.index.files else None
            finally:
                syncing.clear()

        def refresh(**changes):
            try:
                self.run(**changes)
            except (SearchInputError, FileNotFoundError, OSError, ValueError) as err:
                status.value = f"<span style='color:#c62828'>{err}</span>"
                out.clear_output()  # no grid of an earlier query under the message
                return
            follow_gallery()
            where = "the gallery's" if self.image in self.index.files else "uploaded"
            status.value = (
                f"query: {where} {Path(self.image).name}; {len(self.index.files)} images in the gallery; "
                f"prompt <code>{build_prompt(self.text)}</code>"
            )
            out.clear_output(wait=True)
            with out:
                _show(self.figure)

        pick.observe(lambda c: c["new"] and not syncing and refresh(image=c["new"]), names="value")
        text.observe(lambda c: refresh(text=c["new"]), names="value")
        folder.observe(lambda c: refresh(gallery=c["new"]), names="value")
        k.observe(lambda c: refresh(k=c["new"]), names="value")
        upload.observe(
            lambda c: c["new"] and refresh(image=self.upload(c["new"][0]["name"], c["new"][0]["content"])),
            names="value",
        )
        self._refresh = refresh  # tests and notebooks can trigger a search as a widget event would
        refresh()
        return w.VBox([w.HBox([pick, upload]), text, folder, k, mode, status, out])


def _show(fig) -> None:
    """Display a figure as a PNG in the current output, then release it (no duplicate inline copy)."""
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(buf.getvalue()))
