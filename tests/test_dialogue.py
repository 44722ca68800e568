"""The conversation core without Rasa: follow-ups, switches, clarifying questions, answers
that lead with the fact asked, and bad input. A small knowledge base of its own, with two
社保卡 guides that a short question cannot tell apart."""
from __future__ import annotations

import json

import pytest

from assistant.answers import CHOICE_ENTITY, CHOOSE_INTENT
from assistant.dialogue import Context, Dialogue
from index_builder.aspects import asked_aspect
from conftest import guide_dict, write_kb


def _guide(gid, title, keywords, scope, **fields):
    g = guide_dict(gid, title, keywords, scope)
    g.update(fields)
    return g


GUIDES = [
    _guide("marriage", "结婚登记", ["领结婚证", "登记结婚", "扯证"], "内地居民双方自愿结婚的登记。",
           materials=[{"name": "居民身份证", "form": "原件"}, {"name": "户口簿", "form": "原件"}],
           fee="不收费", time_limit={"promised": "当场办结"}),
    _guide("divorce", "离婚登记", ["离婚", "协议离婚", "离婚证"], "双方自愿离婚并已就财产和子女达成协议的登记。",
           materials=[{"name": "结婚证", "form": "原件"}, {"name": "离婚协议书", "form": "原件", "copies": 3}],
           fee="不收费"),
    _guide("card-new", "社会保障卡申领", ["社保卡", "办社保卡", "新办社保卡"], "第一次申领社会保障卡。",
           channels=["窗口办理", "网上办理"], online_entrance="在\"随申办\"搜索\"社保卡申领\"",
           fee="首次申领免费", time_limit={"promised": "20个工作日"}),
    _guide("card-lost", "社会保障卡挂失和补换", ["社保卡丢了", "社保卡挂失", "补办社保卡"],
           "社保卡丢失、损坏时挂失和补换。", fee="补换收取工本费20元", time_limit={"promised": "10个工作日"}),
    _guide("restaurant", "食品经营许可", ["开饭店", "开小饭店", "餐饮许可证", "小吃店"],
           "在青浦区从事餐饮服务、食品销售的经营者申请食品经营许可。", channels=["窗口办理"],
           consult_phone="021-59730000"),
]


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory) -> Dialogue:
    from index_builder.builder import build_index
    from index_builder.retriever import Retriever

    root = tmp_path_factory.mktemp("dialogue")
    kb = write_kb(root / "kb", GUIDES, with_plan=False)
    build_index(kb, root / "index", progress=False)
    return Dialogue(Retriever(root / "index"))


def talk(dialogue: Dialogue, *messages: str, audience: str = "citizen"):
    """Play messages in one conversation, passing the context along; the replies' turns."""
    ctx, out = Context(), []
    for m in messages:
        reply = dialogue.turn(m, ctx, audience=audience)
        ctx = reply.context
        out.append(reply)
    return out


def test_elliptical_follow_up_is_answered_from_the_guide_in_context(dialogue):
    first, then = talk(dialogue, "开个小饭店要准备啥", "那要多久能办下来")
    assert first.answer.turn["doc_id"] == "restaurant" and first.answer.turn["section"] == "申请材料"
    assert then.answer.turn == {**then.answer.turn, "kind": "answer", "mode": "followup", "doc_id": "restaurant",
                                "section": "办理时限和收费"}
    assert then.answer.text.startswith("根据《食品经营许可》办理时限和收费")


@pytest.mark.parametrize("follow_up,section", [
    ("得带啥", "申请材料"), ("在哪办啊", "办理方式和地点"), ("收钱不", "办理时限和收费"),
    ("网上能弄吗", "办理方式和地点"), ("打哪个电话", "咨询和投诉"), ("要什么条件", "申请条件"),
])
def test_each_section_can_be_reached_by_a_follow_up(dialogue, follow_up, section):
    _, then = talk(dialogue, "结婚登记怎么办理", follow_up)
    assert (then.answer.turn["doc_id"], then.answer.turn["section"]) == ("marriage", section)


def test_fee_question_leads_with_the_fee_not_the_time_limit(dialogue):
    _, then = talk(dialogue, "社保卡丢了怎么补", "收费吗")
    body = then.answer.text.split("：", 1)[1]
    assert body.startswith("收费标准：补换收取工本费20元")
    _, then = talk(dialogue, "社保卡丢了怎么补", "要多久")
    assert then.answer.text.split("：", 1)[1].startswith("承诺时限：10个工作日")


def test_online_question_gets_yes_or_no_and_the_entrance(dialogue):
    _, yes = talk(dialogue, "第一次办社保卡要带什么", "网上能办吗")
    assert "可以网上办理" in yes.answer.text and "随申办" in yes.answer.text
    _, no = talk(dialogue, "开饭店要什么许可", "网上能办吗")
    assert "不能全程网上办理" in no.answer.text


def test_naming_another_service_switches_and_keeps_the_aspect(dialogue):
    first, switch = talk(dialogue, "结婚要带什么材料", "那离婚呢")
    assert first.answer.turn["doc_id"] == "marriage"
    assert switch.answer.turn["mode"] == "switch"
    assert (switch.answer.turn["doc_id"], switch.answer.turn["section"]) == ("divorce", "申请材料")
    assert "离婚协议书" in switch.answer.text


def test_a_near_tie_with_the_guide_in_context_stays_on_the_topic(dialogue):
    """A follow-up whose words fit another guide's name better ("挂失" of 社保卡挂失和补换) leaves
    the topic only when retrieval puts that guide clearly ahead; when the guide in context is
    close behind, the topic in hand wins ("一年能取几次" had gone to the 小学一年级 guide)."""
    from index_builder.retriever import Hit, SearchResult

    r = dialogue.retriever
    text = "挂失要多少钱"
    content = dialogue.names.content_tokens(text)
    assert not dialogue.names.phrase_docs(text)  # no name said whole: the words decide

    def result(other_score: float) -> SearchResult:
        first = {}
        for i, p in enumerate(r.passages):
            first.setdefault(p.doc_id, (i, p))
        hits = [Hit(first["card-lost"][1], 1.0, 0.5, 5.0, first["card-lost"][0]),
                Hit(first["card-new"][1], other_score, 0.5, 4.0, first["card-new"][0])]
        return SearchResult(text, hits, confidence=0.9, threshold=0.5)

    assert not dialogue._names_other(content, "card-new", text, result(0.9))  # close behind: stay
    assert dialogue._names_other(content, "card-new", text, result(0.5))  # clearly behind: switch
    unsure = result(0.5)
    unsure.confidence = 0.1
    assert not dialogue._names_other(content, "card-new", text, unsure)  # retrieval unsure: stay


def test_a_new_complete_question_starts_afresh(dialogue):
    *_, fresh = talk(dialogue, "结婚登记怎么办", "要多久", "对了，开个小吃店要办什么许可证")
    assert fresh.answer.turn["doc_id"] == "restaurant"


def test_ambiguous_short_question_gets_one_clarifying_question_with_buttons(dialogue):
    ask, = talk(dialogue, "社保卡要带啥")
    turn = ask.answer.turn
    assert turn["kind"] == "clarify" and set(turn["options"]) == {"card-new", "card-lost"}
    assert ask.answer.text.startswith("您是要办理") and "还是" in ask.answer.text
    payloads = [b["payload"] for b in ask.answer.buttons]
    assert all(p.startswith(f"/{CHOOSE_INTENT}{{") for p in payloads)
    assert {json.loads(p[len(CHOOSE_INTENT) + 1:])[CHOICE_ENTITY] for p in payloads} == {"card-new", "card-lost"}
    assert ask.context.options and ask.context.pending_aspect == "materials"


def test_the_answer_to_a_clarifying_question_continues_with_the_aspect_asked(dialogue):
    ask, picked = talk(dialogue, "社保卡要带啥", "卡丢了")
    assert ask.answer.turn["kind"] == "clarify"
    assert picked.answer.turn["mode"] == "clarified"
    assert (picked.answer.turn["doc_id"], picked.answer.turn["section"]) == ("card-lost", "申请材料")


def test_a_clarification_button_continues_and_a_replayed_one_still_answers(dialogue):
    ask, = talk(dialogue, "社保卡要带啥")
    chosen = dialogue.turn("", ask.context, choice="card-new")
    assert (chosen.answer.turn["doc_id"], chosen.answer.turn["section"]) == ("card-new", "申请材料")
    # after a restart the context may be gone: the payload alone still answers that guide
    replayed = dialogue.turn("", Context(), choice="card-lost")
    assert replayed.answer.turn["doc_id"] == "card-lost" and replayed.answer.turn["kind"] == "answer"
    unknown = dialogue.turn("", Context(), choice="no-such-guide")
    assert unknown.answer.turn["kind"] == "ask"


def test_an_unrelated_reply_to_a_clarifying_question_is_a_new_question(dialogue):
    ask, other = talk(dialogue, "社保卡要带啥", "我想开个小饭店，要办什么许可")
    assert ask.answer.turn["kind"] == "clarify"
    assert other.answer.turn["doc_id"] == "restaurant" and not other.context.options


def test_a_question_that_names_one_guide_is_not_clarified(dialogue):
    reply, = talk(dialogue, "社保卡丢了咋办")
    assert reply.answer.turn["kind"] == "answer" and reply.answer.turn["doc_id"] == "card-lost"


def test_follow_up_as_the_first_message_asks_what_the_person_wants(dialogue):
    reply, = talk(dialogue, "要多久")
    assert reply.answer.turn["kind"] == "ask" and not reply.answer.confident
    assert "办理时限" in reply.answer.text and reply.context == Context()


def test_that_one_without_context_asks_and_with_context_offers_the_sections(dialogue):
    alone, = talk(dialogue, "那个呢")
    assert alone.answer.turn["kind"] == "ask" and not alone.answer.sources
    _, menu = talk(dialogue, "结婚登记怎么办", "那个呢")
    assert menu.answer.turn["kind"] == "ask" and menu.answer.turn["doc_id"] == "marriage"
    assert {"申请材料", "办理时限和收费"} <= {b["title"] for b in menu.answer.buttons}


def test_traditional_characters_and_a_very_long_follow_up(dialogue):
    _, trad = talk(dialogue, "結婚登記怎麼辦", "要帶什麼材料")
    assert (trad.answer.turn["doc_id"], trad.answer.turn["section"]) == ("marriage", "申请材料")
    long = "那个我想再确认一下，" * 150 + "要多久"
    _, reply = talk(dialogue, "结婚登记怎么办", long)
    assert reply.answer.turn["doc_id"] == "marriage" and len(reply.answer.text) < 300


def test_empty_and_emoji_messages_get_a_polite_prompt_and_keep_the_context(dialogue):
    first, empty = talk(dialogue, "结婚登记怎么办", "🙂🙂")
    assert empty.answer.turn["kind"] == "ask" and "例如" in empty.answer.text
    assert empty.context.doc_id == "marriage"


def test_context_round_trips_through_slots_and_ignores_unknown_guides(dialogue):
    ctx = Context("marriage", "fee", [], None)
    slots = ctx.to_slots()
    assert Context.from_slots(slots.get) == ctx
    stale = Context.from_slots({"topic_doc": "deleted-guide", "clarify_options": ["x", "y"]}.get)
    reply = dialogue.turn("要多久", stale)
    assert reply.answer.turn["kind"] == "ask"  # the stale guide is not used


def test_agent_replies_never_send_the_caller_to_12345(dialogue):
    replies = talk(dialogue, "结婚登记要带什么", "要多久", audience="agent")
    unsure = dialogue.turn("今天晚上的足球比赛谁会赢", Context(), audience="agent")
    for r in [*replies, unsure]:
        assert "拨打" not in r.answer.text and "12345" not in r.answer.text
    assert replies[0].answer.text.startswith("您好，根据《结婚登记》")


@pytest.mark.parametrize("text,aspect", [
    ("收钱不", "fee"), ("要多久", "time"), ("网上能弄吗", "online"), ("在哪办啊", "where"), ("打哪个电话", "phone"),
    ("那得带啥", "materials"), ("要什么条件", "conditions"), ("多少天之内得办", None), ("每个月给多少钱", None),
])
def test_aspects(text, aspect):
    assert asked_aspect(text) == aspect
