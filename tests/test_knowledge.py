from pathlib import Path

import pytest
import yaml

from conftest import PLAN, ROOT, guide_dict, write_kb
from index_builder.knowledge import KnowledgeError, load_faq_table, load_guide, load_source, parse_plan


def _write(tmp_path: Path, data: dict, name: str | None = None) -> Path:
    path = tmp_path / f"{name or data['id']}.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_valid_guide_loads(tmp_path):
    g = load_guide(_write(tmp_path, guide_dict("marriage", "结婚登记", ["领证", "结婚"], "结婚登记")))
    assert g.title == "结婚登记" and g.materials[0].form == "原件" and g.materials[0].copies == 1
    assert g.last_reviewed == "2026-11-25"


@pytest.mark.parametrize("field,value,expected_field", [
    ("title", None, "title"),
    ("channels", ["飞鸽传书"], "channels[0]"),
    ("audience", ["外星人"], "audience[0]"),
    ("keywords", ["只有一个"], "keywords"),
    ("materials", [{"name": "身份证", "form": "原件", "exempt": True}], "materials[0].exempt_reason"),
    ("materials", [{"name": "身份证", "form": "照片"}], "materials[0].form"),
    ("materials", [{"name": "身份证", "form": "原件", "copies": 0}], "materials[0].copies"),
    ("time_limit", "很快", "time_limit"),
    ("last_reviewed", "去年", "last_reviewed"),
    ("sample", "yes", "sample"),
])
def test_schema_error_names_file_and_field(tmp_path, field, value, expected_field):
    data = guide_dict("marriage", "结婚登记", ["领证", "结婚"], "结婚登记")
    data[field] = value
    path = _write(tmp_path, data)
    with pytest.raises(KnowledgeError) as err:
        load_guide(path)
    assert err.value.field == expected_field
    assert str(path) in str(err.value) and expected_field in str(err.value)


def test_id_must_match_file_name(tmp_path):
    path = _write(tmp_path, guide_dict("marriage", "结婚登记", ["领证", "结婚"], "x"), name="other")
    with pytest.raises(KnowledgeError, match="other"):
        load_guide(path)


def test_broken_yaml_names_file(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("id: bad\ntitle: [unclosed\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match="bad.yml.*YAML"):
        load_guide(path)


def test_duplicate_doc_ids_are_rejected(tmp_path):
    kb = write_kb(tmp_path / "kb", with_plan=False)
    (kb / "faq").mkdir()
    (kb / "faq" / "extra.tsv").write_text("id\tquestion\tanswer\nmarriage\t\t重复的编号\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match="marriage"):
        load_source(kb)


def test_bundled_knowledge_base_is_valid_and_marked_as_sample():
    kb = load_source(ROOT / "knowledge_base")
    assert len(kb.guides) >= 60
    assert all(g.sample for g in kb.guides), "bundled guides are sample content"
    assert all(g.source for g in kb.guides)
    assert {p.doc_id for p in kb.policies} >= {"plan2020-goals", "plan2020-task-1", "plan2020-task-31"}


def test_plan_split_word_for_word():
    sections = parse_plan(PLAN)
    original = PLAN.read_text(encoding="utf-8")
    assert [s.doc_id for s in sections] == ["plan2020-goals"] + [f"plan2020-task-{n}" for n in range(1, 32)]
    for s in sections:
        assert s.text in original  # not a word changed
    by_id = {s.doc_id: s for s in sections}
    task8 = by_id["plan2020-task-8"]
    assert task8.title == "提升开办企业获得感" and task8.lead == "区市场监管局"
    assert "2个环节2天" in task8.text
    assert "实现网上审批办结率达到60%" in by_id["plan2020-goals"].text
    assert "附件" not in by_id["plan2020-task-31"].text


@pytest.mark.parametrize("suffix,body", [
    (".tsv", "id\tquestion\tanswer\nq1\t\t答案一\nq2\t问题二\t答案二\n"),
    (".csv", "id,question,answer\nq1,,答案一\nq2,问题二,答案二\n"),
    (".jsonl", '{"id": "q1", "question": "", "answer": "答案一"}\n{"id": "q2", "question": "问题二", "answer": "答案二"}\n'),
])
def test_faq_tables(tmp_path, suffix, body):
    path = tmp_path / f"faq{suffix}"
    path.write_text(body, encoding="utf-8")
    rows = load_faq_table(path)
    assert [(r.doc_id, r.question, r.answer) for r in rows] == [("q1", "", "答案一"), ("q2", "问题二", "答案二")]


def test_faq_row_without_answer_names_row(tmp_path):
    path = tmp_path / "faq.tsv"
    path.write_text("id\tquestion\tanswer\nq1\t问\t\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match=r"row 1\.answer"):
        load_faq_table(path)
