"""The qualitative figures' CIRR examples rank the way the CIRR protocol does, checked against a
brute-force ranking written from the protocol's definition (whole val gallery, the query's own
reference removed, the only hit its target)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from p2w_lib.app.qualitative import cirr_examples
from p2w_lib.clip.features import embed_images
from p2w_lib.data.cirr import read_image_split, read_queries
from p2w_lib.methods.pic2word.network import Mapper
from p2w_lib.methods.registry import compose_queries
from tests.conftest import tiny_clip, tiny_world


def test_cirr_examples_rank_as_the_protocol(tmp_path, monkeypatch):
    p = tiny_world(tmp_path, monkeypatch)
    clip = tiny_clip()
    torch.manual_seed(0)
    mapper = Mapper(clip.embed_dim, clip.token_dim, hidden_dim=32).eval()
    root = p.world_dir / "cirr"
    examples = cirr_examples(clip, mapper, root, n=3, seed=0, k=5)
    assert len(examples) == 3

    files = read_image_split(root, "val")
    names = sorted(files)
    by_path = {str(files[n]): n for n in names}
    raw = embed_images(clip, [str(files[n]) for n in names]).tensor()  # [N, D]
    gallery = F.normalize(raw, dim=-1)
    queries = {(str(files[q.reference]), f"a photo of * , {q.caption}"): q for q in read_queries(root, "val")}
    for ex in examples:
        q = queries[(ex["query"], ex["text"])]
        assert ex["target"] == str(files[q.target])
        ref = names.index(q.reference)
        composed = compose_queries(clip, mapper, raw[ref : ref + 1], [ex["text"]], text_only=[q.caption])
        for method in ("pic2word", "image_text"):
            sims = F.normalize(composed[method], dim=-1)[0] @ gallery.T  # [N]
            sims[ref] = -float("inf")  # the reference is never a candidate
            expected = [names[i] for i in sims.argsort(descending=True)[:5].tolist()]
            got = [by_path[path] for path, _ in ex["results"][method]]
            assert got == expected, method
            assert [hit for _, hit in ex["results"][method]] == [n == q.target for n in expected]
