"""Passage splitting, tokenisation with the user dictionary, normalisation, eval metrics."""
import pytest

from conftest import ROOT
from index_builder.evaluate import first_hit_rank, load_queries, metrics
from index_builder.knowledge import Material, load_source
from index_builder.normalize import is_meaningful, normalize, normalize_query
from index_builder.passages import guide_passages, material_line, user_dictionary_terms
from index_builder.tokens import Tokenizer


def test_guide_is_split_by_section_with_citations(kb_dir):
    kb = load_source(kb_dir)
    marriage = next(g for g in kb.guides if g.id == "marriage")
    passages = guide_passages(marriage)
    sections = [p.section for p in passages]
    assert sections[:8] == ["事项概述", "申请条件", "申请材料", "办理流程", "办理方式和地点", "办理时限和收费",
                            "设定依据", "咨询和投诉"]
    assert sections[8] == "常见问题1"
    materials = passages[2]
    assert materials.citation == "《结婚登记》申请材料" and "户口簿" in materials.text
    assert all(p.doc_id == "marriage" for p in passages)
    assert len({p.key for p in passages}) == len(passages)


def test_material_line_marks_exemption():
    m = Material("居民身份证", "原件", exempt=True, exempt_reason="电子证照", e_license="居民身份证电子证照")
    assert material_line(m) == "居民身份证，原件1份，免于提交（电子证照：居民身份证电子证照）"


def test_user_dictionary_keeps_domain_terms_whole(kb_dir):
    plain = Tokenizer()
    assert "一窗通" not in plain.tokens("开公司走一窗通")  # jieba alone splits it
    terms = user_dictionary_terms(load_source(kb_dir)) + ["一窗通"]
    assert "餐饮许可证" in terms and "食品经营许可" in terms
    with_dict = Tokenizer(terms)
    assert "一窗通" in with_dict.tokens("开公司走一窗通")
    assert "餐饮许可证" in with_dict.tokens("办个餐饮许可证")


def test_tokens_drop_stopwords_and_punctuation():
    toks = Tokenizer().tokens("请问，怎么办理结婚登记呢？！")
    assert "结婚" in toks and "登记" in toks
    assert not {"请问", "怎么", "呢", "，", "？"} & set(toks)


def test_normalisation():
    assert normalize("  開辦　企業\n要多久 ") == "开办 企业 要多久"
    assert normalize("ＡＢＣ１２３") == "ABC123"
    assert normalize_query("公" * 600) == ("公" * 512, True)
    assert not is_meaningful("？！…😀 ") and is_meaningful("a") and is_meaningful("办")


def test_eval_metrics_on_a_hand_checked_case():
    # ranks: hit at 1, hit at 3 (doc repeated among passages), miss, hit at 7
    ranked = [["a", "b"], ["x", "x", "y", "b"], ["p", "q"], ["1", "2", "3", "4", "5", "6", "z"]]
    expected = [frozenset({"a"}), frozenset({"b", "nope"}), frozenset({"c"}), frozenset({"z"})]
    ranks = [first_hit_rank(r, e) for r, e in zip(ranked, expected)]
    assert ranks == [1, 3, None, 7]
    m = metrics(ranks, [10.0, 20.0, 30.0, 40.0])
    assert m["n"] == 4 and m["recall@1"] == 0.25 and m["recall@5"] == 0.5 and m["recall@10"] == 0.75
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3 + 1 / 7) / 4, abs=1e-4)
    assert m["p50_ms"] == 25.0


def test_query_file_format(tmp_path):
    f = tmp_path / "q.tsv"
    f.write_text("query\texpected\n开饭店\trestaurant|plan2020-task-8\n", encoding="utf-8")
    assert load_queries(f)[0].expected == {"restaurant", "plan2020-task-8"}
    f.write_text("question\tanswer\nx\ty\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header"):
        load_queries(f)


def test_bundled_question_set_is_large_and_points_at_real_documents():
    queries = load_queries(ROOT / "knowledge_base" / "eval" / "questions.tsv")
    kb = load_source(ROOT / "knowledge_base")
    ids = {g.id for g in kb.guides} | {p.doc_id for p in kb.policies}
    assert len(queries) >= 150
    assert set().union(*(q.expected for q in queries)) <= ids
