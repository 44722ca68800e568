"""Answer composition over the fixture index built with the default encoder."""
import pytest

from assistant.answers import asked_section, compose


def test_confident_answer_is_short_and_cited(retriever):
    answer = compose(retriever, retriever.search("结婚登记要带什么材料"))
    assert answer.confident
    assert answer.text.startswith("根据《结婚登记》申请材料：需要准备：")
    assert "户口簿" in answer.text and "咨询电话：12345" in answer.text
    assert 2 <= answer.text.count("。") <= 5 and len(answer.text) < 200
    assert answer.sources[0]["doc_id"] == "marriage"
    assert 1 <= len(answer.buttons) <= 3 and all(b["title"] != "申请材料" for b in answer.buttons)
    assert answer.payload()["answer_id"] == answer.answer_id


def test_section_asked_for_is_cited_first_and_not_offered_again(retriever):
    answer = compose(retriever, retriever.search("开个小饭店要准备啥"))
    assert answer.sources[0]["citation"] == "《食品经营许可》申请材料"
    assert "申请材料" not in [b["title"] for b in answer.buttons]


def test_low_confidence_offers_closest_guides_and_a_person(retriever):
    answer = compose(retriever, retriever.search("今天晚上的足球比赛谁会赢"))
    assert not answer.confident
    assert "不太确定" in answer.text and "12345" in answer.text and "《" in answer.text
    assert answer.buttons[0]["payload"] == "/request_human"


def test_empty_question_gets_a_polite_prompt(retriever):
    answer = compose(retriever, retriever.search("🙂🙂"))
    assert not answer.confident and answer.sources == [] and "例如" in answer.text


def test_policy_answer_cites_task(retriever):
    answer = compose(retriever, retriever.search("好差评工作谁牵头"))
    assert "第29项" in answer.text and "区府办、区政务办" in answer.text


@pytest.mark.parametrize("query,section", [
    ("结婚要带啥", "申请材料"), ("营业执照办下来要多久", "办理时限和收费"), ("居住证在哪里办", "办理方式和地点"),
    ("公积金怎么提取", None),
])
def test_section_cues(query, section):
    assert asked_section(query) == section
