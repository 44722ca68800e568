import json

import pytest
import yaml

from conftest import FIXTURE_GUIDES, CountingEncoder
from index_builder.builder import MANIFEST, build_index, builds_root
from index_builder.knowledge import KnowledgeError
from index_builder.passages import split
from index_builder.knowledge import load_source
from index_builder.retriever import Retriever


def test_build_writes_manifest_and_swaps_atomically(kb_dir, tmp_path):
    out = tmp_path / "index"
    report = build_index(kb_dir, out, CountingEncoder(), progress=False)
    assert out.is_symlink() and out.resolve() == report.build_dir.resolve()
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["encoder"] == "counting" and manifest["dim"] == 64
    assert manifest["counts"]["guides"] == 4 and manifest["counts"]["policy_sections"] == 32
    assert manifest["counts"]["passages"] == report.passages == len(split(load_source(kb_dir)))
    assert len(manifest["corpus_hash"]) == 64 and manifest["faiss_index"] == "IndexFlatIP"


def test_incremental_rebuild_embeds_only_changed_guide(kb_dir, tmp_path):
    out = tmp_path / "index"
    first = CountingEncoder()
    build_index(kb_dir, out, first, progress=False)
    again = CountingEncoder()
    report = build_index(kb_dir, out, again, progress=False)
    assert again.embedded == [] and report.reused == report.passages

    changed = dict(FIXTURE_GUIDES[0], fee="收取工本费")
    (kb_dir / "guides" / "marriage.yml").write_text(yaml.safe_dump(changed, allow_unicode=True), encoding="utf-8")
    third = CountingEncoder()
    report = build_index(kb_dir, out, third, progress=False)
    assert report.embedded == 1  # only the 办理时限和收费 passage of one guide changed
    assert "收取工本费" in third.embedded[0]


def test_schema_error_stops_build_and_keeps_old_index(kb_dir, tmp_path):
    out = tmp_path / "index"
    build_index(kb_dir, out, CountingEncoder(), progress=False)
    before = out.resolve()
    bad = dict(FIXTURE_GUIDES[1], channels=["信鸽"])
    (kb_dir / "guides" / "restaurant.yml").write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    with pytest.raises(KnowledgeError, match=r"restaurant\.yml.*channels\[0\]"):
        build_index(kb_dir, out, CountingEncoder(), progress=False)
    assert out.resolve() == before
    assert Retriever(out, encoder=CountingEncoder()).search("结婚").hits


def test_failure_mid_build_leaves_old_index_and_no_debris(kb_dir, tmp_path):
    out = tmp_path / "index"
    build_index(kb_dir, out, CountingEncoder(), progress=False)
    before = out.resolve()
    (kb_dir / "guides" / "extra.yml").write_text(yaml.safe_dump(
        dict(FIXTURE_GUIDES[0], id="extra", title="新增事项"), allow_unicode=True), encoding="utf-8")
    with pytest.raises(RuntimeError, match="mid-build"):
        build_index(kb_dir, out, CountingEncoder(fail_after=0), progress=False)
    assert out.resolve() == before
    assert len([p for p in builds_root(out).iterdir()]) == 1


def test_old_builds_are_pruned(kb_dir, tmp_path):
    out = tmp_path / "index"
    for _ in range(4):
        build_index(kb_dir, out, CountingEncoder(), progress=False)
    assert len(list(builds_root(out).iterdir())) == 2


def test_faq_table_source(tmp_path):
    table = tmp_path / "faq.tsv"
    table.write_text("id\tquestion\tanswer\na1\t\t企业可以延期申报纳税\na2\t\t居住证可以网上续签\n", encoding="utf-8")
    out = tmp_path / "index"
    build_index(table, out, CountingEncoder(), progress=False)
    r = Retriever(out, encoder=CountingEncoder())
    assert [p.doc_id for p in r.passages] == ["a1", "a2"]
    assert r.search("居住证续签", mode="bm25").hits[0].passage.doc_id == "a2"


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(KnowledgeError, match="does not exist"):
        build_index(tmp_path / "nowhere", tmp_path / "index", CountingEncoder(), progress=False)
