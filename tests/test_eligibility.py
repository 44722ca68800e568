"""The eligibility engine: every rule branch of every bundle, answer parsing, ask_if, skip,
correction and the tailored checklist."""
from __future__ import annotations

import json

import pytest

from assistant.bundles import load_bundles
from assistant.eligibility import (
    SKIPPED, Session, apply_answer, detect_correction, evaluate, next_question, parse_answer, parse_number,
    parse_yes_no,
)

S = SKIPPED

# bundle → [(rule id, answers, partial)]: `partial` cases are evaluated directly; the others are
# also driven through next_question, which must ask exactly the slots the case answers.
CASES = {
    "kaiban-qiye": [
        ("geti", {"company_type": "个体工商户"}, False),
        ("outside-qingpu", {"company_type": "有限责任公司", "in_qingpu": False}, False),
        ("qingpu-company", {"company_type": "合伙企业", "in_qingpu": True, "need_seal": True, "need_invoice": False,
                            "hire_staff": True}, False),
        ("other-type", {"company_type": "其他", "in_qingpu": True}, False),
    ],
    "gongcheng-jianshe": [
        ("government", {"investment": "政府投资"}, False),
        ("not-industrial", {"investment": "社会投资", "project_kind": "非产业类"}, False),
        ("over-threshold", {"investment": "社会投资", "project_kind": "产业类", "floor_area": 12000}, False),
        ("no-land", {"investment": "社会投资", "project_kind": "产业类", "floor_area": 8000, "has_land": False}, False),
        ("small-industrial", {"investment": "社会投资", "project_kind": "产业类", "floor_area": 10000,
                              "has_land": True, "wastewater": True}, False),
        ("unclear", {}, True),
    ],
    "xinshenger-chusheng": [
        ("local-hukou", {"parent_hukou": "本市户籍", "married": True, "mother_insured": True}, False),
        ("permit-holder", {"parent_hukou": "外省市户籍", "parent_permit": True, "mother_insured": False}, False),
        ("no-permit", {"parent_hukou": "外省市户籍", "parent_permit": False}, False),
        ("unclear", {"parent_hukou": "外省市户籍", "parent_permit": S, "mother_insured": True}, False),
    ],
    "yiliao-fufei": [
        ("local-insured", {"insurance": "本市职工医保", "for_whom": "家人", "suishenban": False}, False),
        ("local-insured", {"insurance": "本市城乡居民医保", "for_whom": "本人", "suishenban": True}, False),
        ("other-province", {"insurance": "外省市医保"}, False),
        ("uninsured", {"insurance": "未参保"}, False),
        ("unknown-insurance", {"insurance": S}, False),
    ],
    "gongmin-shenhou": [
        ("no-pension", {"relationship": "子女", "deceased_hukou": "本市户籍", "pension": "没有参保"}, False),
        ("civil-servant", {"relationship": "配偶", "deceased_hukou": "本市户籍", "pension": "机关事业单位"}, False),
        ("resident-pension", {"relationship": "子女", "deceased_hukou": "外省市户籍", "pension": "城乡居民养老保险"},
         False),
        ("not-relative", {"relationship": "非亲属", "deceased_hukou": "本市户籍", "pension": "职工养老保险"}, False),
        ("employee-relative", {"relationship": "配偶", "deceased_hukou": "本市户籍", "pension": "职工养老保险",
                               "has_fund": True}, False),
        ("unknown-pension", {"relationship": "子女", "deceased_hukou": "本市户籍", "pension": S}, False),
    ],
    "tuixiu": [
        ("no-pension", {"pension": "没有参保"}, False),
        ("resident-under-60", {"pension": "城乡居民养老保险", "age": 59}, False),
        ("resident-60", {"pension": "城乡居民养老保险", "age": 60}, False),
        ("man-under-60", {"pension": "职工养老保险", "gender": "男", "age": 59}, False),
        ("woman-under-50", {"pension": "职工养老保险", "gender": "女", "post": "工人岗位", "age": 49}, False),
        ("woman-cadre-under-55", {"pension": "职工养老保险", "gender": "女", "post": "管理技术岗位", "age": 54}, False),
        ("not-yet-reached", {"pension": "职工养老保险", "gender": "男", "age": 61, "reached_age": False}, False),
        ("short-contribution", {"pension": "职工养老保险", "gender": "男", "age": 63, "reached_age": True,
                                "years_paid": 10}, False),
        ("employee-eligible", {"pension": "职工养老保险", "gender": "女", "post": "工人岗位", "age": 55,
                               "reached_age": True, "years_paid": 15, "employment": "灵活就业", "has_fund": True},
         False),
        ("to-confirm", {"pension": "职工养老保险", "gender": "男", "age": 62, "reached_age": S, "years_paid": 20},
         False),
    ],
    "xiaoxue-ruxue": [
        ("too-young", {"child_age": 5}, False),
        ("other-district", {"child_age": 6, "hukou": "本市户籍", "in_qingpu": False}, False),
        ("local", {"child_age": 6, "hukou": "本市户籍", "in_qingpu": True}, False),
        ("migrant-permit", {"child_age": 7, "hukou": "外省市户籍", "in_qingpu": True, "parent_permit": True}, False),
        ("migrant-no-permit", {"child_age": 6, "hukou": "外省市户籍", "in_qingpu": True, "parent_permit": False},
         False),
        ("permit-unknown", {"child_age": 6, "hukou": "外省市户籍", "in_qingpu": True, "parent_permit": S}, False),
    ],
    "canjiren": [
        ("non-local", {"hukou": "外省市户籍"}, False),
        ("no-card", {"hukou": "本市户籍", "has_card": False, "applicant": "本人"}, False),
        ("both-subsidies", {"hukou": "本市户籍", "has_card": True, "level": "一级", "low_income": True,
                            "applicant": "监护人或家属"}, False),
        ("nursing", {"hukou": "本市户籍", "has_card": True, "level": "二级", "low_income": False,
                     "applicant": "本人"}, False),
        ("living", {"hukou": "本市户籍", "has_card": True, "level": "四级", "low_income": True,
                    "applicant": "本人"}, False),
        ("neither", {"hukou": "本市户籍", "has_card": True, "level": "三级", "low_income": False}, False),
        ("to-confirm", {"hukou": "本市户籍", "has_card": True, "level": S, "low_income": False}, False),
    ],
}
FLAT = [(b, rule, answers, partial) for b, cases in CASES.items() for rule, answers, partial in cases]


@pytest.fixture(scope="module")
def bundles():
    return load_bundles()


def test_every_rule_of_every_bundle_has_a_case(bundles):
    assert set(CASES) == set(bundles), "add branch cases for new bundles"
    for bundle_id, bundle in bundles.items():
        assert {r.id for r in bundle.rules} == {rule for rule, _, _ in CASES[bundle_id]}, bundle_id


@pytest.mark.parametrize("bundle_id,rule,answers,partial", FLAT,
                         ids=[f"{b}:{r}:{i}" for i, (b, r, _, _) in enumerate(FLAT)])
def test_rule_branch(bundles, bundle_id, rule, answers, partial):
    bundle = bundles[bundle_id]
    outcome = evaluate(bundle, answers)
    assert outcome.rule_id == rule
    assert outcome.status == bundle.rule(rule).outcome
    if outcome.status == "eligible":
        assert outcome.explanation.startswith("符合条件，因为")
        assert outcome.materials and outcome.steps
    elif outcome.status == "not_eligible":
        assert outcome.explanation.startswith("暂不符合：") and "，可以" in outcome.explanation
    else:
        assert "可以" in outcome.explanation
    for cited in outcome.cited:  # the explanation names the answers that decided it
        assert cited["answer"] in outcome.explanation
    text = outcome.to_text()
    assert outcome.title in text and "12345" in text
    json.dumps(outcome.to_dict(), ensure_ascii=False)
    if not partial:  # the form reaches this outcome asking exactly these questions
        asked: dict = {}
        while (q := next_question(bundle, asked)) is not None:
            assert q.slot in answers, f"{bundle_id}/{rule}: asked unexpected '{q.slot}'"
            asked = apply_answer(bundle, asked, q.slot, answers[q.slot])
        assert asked == answers
        assert evaluate(bundle, asked).rule_id == rule


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize("text,value", [
    ("65", 65), ("六十五", 65), ("七十岁", 70), ("两个", 2), ("十", 10), ("十五", 15), ("二十", 20),
    ("1万2千 平方米", 12000), ("一万二千平方米", 12000), ("一万二", 12000), ("0.8万", 8000), ("1.2万平方米", 12000),
    ("两千五", 2500), ("三百五", 350), ("一百零五", 105), ("一千零八十", 1080), ("12,000平", 12000),
    ("８０００㎡", 8000), ("3000m2", 3000), ("我今年65了", 65), ("一共八千平米", 8000), ("一点五万", 15000),
    ("九千九百九十九", 9999), ("二零二四", 2024),
])
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["不记得了", "三四千", "很多", ""])
def test_parse_number_none(text):
    assert parse_number(text) is None


@pytest.mark.parametrize("text,value", [
    ("是的", True), ("对", True), ("嗯", True), ("要", True), ("需要", True), ("有", True), ("嗯，要的", True),
    ("没错", True), ("有的", True), ("yes", True),
    ("没有", False), ("不要", False), ("不是", False), ("不用", False), ("暂时不", False), ("还没", False),
    ("不需要", False), ("对，不需要", False), ("还没有呢", False), ("不是的", False), ("no", False),
])
def test_parse_yes_no(text, value):
    assert parse_yes_no(text) is value


def test_question_words_for_yes_no(bundles):
    q = bundles["kaiban-qiye"].question("in_qingpu")
    assert parse_answer(q, "在徐泾镇").value is True
    assert parse_answer(q, "在松江").value is False
    assert parse_answer(q, "不在青浦").value is False


@pytest.mark.parametrize("text,value", [
    ("上海户口", "本市户籍"), ("本地户口", "本市户籍"), ("沪籍", "本市户籍"), ("我们是外地户口", "外省市户籍"),
    ("外地", "外省市户籍"), ("非沪籍", "外省市户籍"), ("不是上海户口", "外省市户籍"), ("2", "外省市户籍"),
    ("第一个", "本市户籍"), ("外省市户籍", "外省市户籍"),
])
def test_parse_choice_synonyms(bundles, text, value):
    q = bundles["xiaoxue-ruxue"].question("hukou")
    parsed = parse_answer(q, text)
    assert parsed.ok and parsed.value == value


def test_longest_synonym_wins(bundles):
    q = bundles["kaiban-qiye"].question("company_type")
    assert parse_answer(q, "想开个股份有限公司").value == "股份有限公司"
    assert parse_answer(q, "开个分公司").value == "其他"
    assert parse_answer(q, "个体户").value == "个体工商户"


@pytest.mark.parametrize("bundle_id,slot,text,words", [
    ("xiaoxue-ruxue", "hukou", "我也不太懂", ["本市户籍", "外省市户籍", "序号"]),
    ("xiaoxue-ruxue", "hukou", "上海户口和外地户口都有", ["请确认"]),
    ("kaiban-qiye", "in_qingpu", "你猜", ["是", "不是"]),
    ("tuixiu", "age", "挺老的了", ["数字", "岁"]),
    ("tuixiu", "age", "一百五十岁", ["范围 16–120岁"]),
    ("xiaoxue-ruxue", "child_age", "", ["没有收到"]),
    ("kaiban-qiye", "company_type", "不知道", ["不能跳过", "12345"]),
])
def test_invalid_answer_says_what_is_expected(bundles, bundle_id, slot, text, words):
    parsed = parse_answer(bundles[bundle_id].question(slot), text)
    assert not parsed.ok and parsed.message
    for word in words:
        assert word in parsed.message


@pytest.mark.parametrize("text", ["跳过", "不清楚", "不知道"])
def test_skip_where_allowed(bundles, text):
    parsed = parse_answer(bundles["kaiban-qiye"].question("need_invoice"), text)
    assert parsed.ok and parsed.skipped and parsed.value == SKIPPED


def test_text_question_takes_any_text():
    from assistant.bundles import Question
    q = Question(slot="note", label="备注", prompt="还有什么要说明的？", type="text")
    assert parse_answer(q, "  公司在华新镇  ").value == "公司在华新镇"


# ---------------------------------------------------------------- ask_if, skip, early stop


def test_ask_if_only_when_relevant(bundles):
    b = bundles["xinshenger-chusheng"]
    assert next_question(b, {"parent_hukou": "外省市户籍"}).slot == "parent_permit"
    assert next_question(b, {"parent_hukou": "本市户籍"}).slot == "married"
    # changing the answer drops the answer that no longer applies
    answers = apply_answer(b, {"parent_hukou": "外省市户籍", "parent_permit": True}, "parent_hukou", "本市户籍")
    assert answers == {"parent_hukou": "本市户籍"}


def test_ask_if_on_female_post(bundles):
    b = bundles["tuixiu"]
    assert next_question(b, {"pension": "职工养老保险", "gender": "男"}).slot == "age"
    assert next_question(b, {"pension": "职工养老保险", "gender": "女"}).slot == "post"


def test_decided_outcome_stops_asking(bundles):
    assert next_question(bundles["kaiban-qiye"], {"company_type": "个体工商户"}) is None
    assert next_question(bundles["tuixiu"], {"pension": "职工养老保险", "gender": "男", "age": 50}) is None


def test_skipped_answer_gives_caveat_and_conditional_items(bundles):
    b = bundles["kaiban-qiye"]
    answers = {"company_type": "有限责任公司", "in_qingpu": True, "need_seal": True, "need_invoice": S,
               "hire_staff": False}
    outcome = evaluate(b, answers)
    invoice = [m for m in outcome.materials if "发票" in m["name"]]
    assert invoice and invoice[0]["conditional"]
    assert "（如适用）" in outcome.to_text()
    gc = bundles["gongcheng-jianshe"]
    outcome = evaluate(gc, {"investment": "社会投资", "project_kind": "产业类", "floor_area": 8000, "has_land": S,
                            "wastewater": False})
    assert outcome.status == "eligible" and "已取得建设用地" in outcome.caveats[0]


# ---------------------------------------------------------------- checklist tailoring


def test_kaiban_checklist_follows_answers(bundles):
    b = bundles["kaiban-qiye"]
    base = {"company_type": "有限责任公司", "in_qingpu": True, "need_seal": False}
    yes = evaluate(b, {**base, "need_invoice": True, "hire_staff": True})
    no = evaluate(b, {**base, "need_invoice": False, "hire_staff": False})
    names = lambda o: " ".join(m["name"] for m in o.materials)  # noqa: E731
    assert "发票票种核定" in names(yes) and "发票票种核定" not in names(no)
    assert "招用人员" in names(yes) and "招用人员" not in names(no)
    assert "公司章程" in names(yes) and "合伙协议" not in names(yes)
    assert any("暂不刻章" in s["text"] for s in no.steps)
    text = yes.to_text()
    for part in ("免于提交", "2 个环节 2 天", "一窗通", "青浦区行政服务中心", "网上办理入口", "办理时长"):
        assert part in text
    data = yes.to_dict()
    assert data["status"] == "eligible" and data["checklist"]["online"] and data["checklist"]["timeline"]
    assert any(m["exempt"] and m["exempt_reason"] == "电子证照" for m in data["checklist"]["materials"])


def test_general_route_checklist(bundles):
    outcome = evaluate(bundles["gongcheng-jianshe"],
                       {"investment": "社会投资", "project_kind": "产业类", "floor_area": 20000})
    assert outcome.status == "other_route"
    assert any("一般流程" in s["text"] for s in outcome.steps)
    assert not any("23 天" in t["text"] for t in outcome.timeline)


def test_rule_conditioned_items(bundles):
    b = bundles["canjiren"]
    card = evaluate(b, {"hukou": "本市户籍", "has_card": False, "applicant": "监护人或家属"})
    assert any("残疾人证申请表" == m["name"] for m in card.materials)
    assert any("监护人" in m["name"] for m in card.materials)
    subsidy = evaluate(b, {"hukou": "本市户籍", "has_card": True, "level": "一级", "low_income": True,
                           "applicant": "本人"})
    assert not any("残疾人证申请表" == m["name"] for m in subsidy.materials)
    assert any("两项补贴" in m["name"] for m in subsidy.materials)


# ---------------------------------------------------------------- corrections


def test_correction_to_earlier_choice(bundles):
    b = bundles["xiaoxue-ruxue"]
    answers = {"child_age": 6, "hukou": "本市户籍", "in_qingpu": True}
    c = detect_correction(b, answers, "刚才说错了，是外地户口")
    assert c.slot == "hukou" and c.old == "本市户籍" and c.new == "外省市户籍"
    assert "外省市户籍" in c.message
    fixed = apply_answer(b, answers, c.slot, c.new)
    assert next_question(b, fixed).slot == "parent_permit"


def test_correction_number_and_yes_no(bundles):
    t = bundles["tuixiu"]
    c = detect_correction(t, {"pension": "职工养老保险", "gender": "男", "age": 58}, "说错了，我今年六十二岁")
    assert (c.slot, c.new) == ("age", 62)
    k = bundles["kaiban-qiye"]
    answers = {"company_type": "有限责任公司", "in_qingpu": True, "need_seal": True, "need_invoice": False}
    c = detect_correction(k, answers, "不对，其实要发票")
    assert (c.slot, c.new) == ("need_invoice", True)
    c = detect_correction(k, answers, "刚才说错了，注册地址在松江")
    assert (c.slot, c.new) == ("in_qingpu", False)


def test_correction_needs_a_cue_unless_asked_not_to(bundles):
    b = bundles["xiaoxue-ruxue"]
    answers = {"child_age": 6, "hukou": "本市户籍"}
    assert detect_correction(b, answers, "外地户口") is None
    assert detect_correction(b, answers, "外地户口", require_cue=False).new == "外省市户籍"
    assert detect_correction(b, answers, "刚才说错了") is None


def test_plain_correction_applies_to_last_answer(bundles):
    b = bundles["kaiban-qiye"]
    c = detect_correction(b, {"company_type": "有限责任公司", "in_qingpu": True, "need_seal": False},
                          "刚才说错了，要的")
    assert (c.slot, c.new) == ("need_seal", True)


# ---------------------------------------------------------------- a whole conversation


def test_session_with_correction_skip_reprompt_and_outcome(bundles):
    s = Session(bundles["xinshenger-chusheng"])
    assert "出生" in s.start().message
    assert s.handle("外地户口").question.slot == "parent_permit"
    turn = s.handle("你猜")
    assert turn.kind == "reprompt" and "是" in turn.message and turn.question.slot == "parent_permit"
    turn = s.handle("刚才说错了，是上海户口")
    assert turn.kind == "corrected" and s.answers == {"parent_hukou": "本市户籍"}
    assert turn.question.slot == "married"
    assert s.handle("跳过").kind == "skipped"
    turn = s.handle("没有")
    assert turn.done and turn.outcome.status == "eligible"
    assert "符合条件，因为" in turn.message and "出生一件事" in turn.message
    assert s.answers == {"parent_hukou": "本市户籍", "married": S, "mother_insured": False}


def test_session_stop_and_choice_given_to_wrong_question(bundles):
    s = Session(bundles["xiaoxue-ruxue"], {"child_age": 6, "hukou": "本市户籍"})
    turn = s.handle("外地户口")  # said while in_qingpu is asked: taken as a correction of hukou
    assert turn.kind == "corrected" and s.answers["hukou"] == "外省市户籍"
    assert s.handle("算了，不办了").kind == "stopped"


def test_weak_cue_answers_the_current_question(bundles):
    s = Session(bundles["tuixiu"], {"pension": "职工养老保险", "gender": "男", "age": 62, "reached_age": True})
    turn = s.handle("应该是三十年吧")  # "应该是" is no correction of the age here
    assert turn.kind == "answered" and s.answers["years_paid"] == 30 and s.answers["age"] == 62
    s = Session(bundles["xinshenger-chusheng"], {"parent_hukou": "外省市户籍"})
    turn = s.handle("其实是上海户口")  # a weak cue with a clear match corrects the earlier choice
    assert turn.kind == "corrected" and s.answers == {"parent_hukou": "本市户籍"}


def test_no_caveat_for_questions_that_do_not_apply(bundles):
    outcome = evaluate(bundles["tuixiu"], {"pension": "职工养老保险", "gender": "男", "age": 63, "reached_age": True,
                                           "years_paid": 20, "employment": "单位在职", "has_fund": False})
    assert outcome.status == "eligible" and outcome.caveats == []
