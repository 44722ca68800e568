"""The intake facade the actions, the copilot and the channel share: reading the caller's answer
to a draft, the read-back, and filing with the number the channel kept encrypted."""
from __future__ import annotations

import base64
import os

import pytest

from assistant.intake.service import Intake, status_text
from assistant.intake.store import TicketStore


@pytest.fixture
def intake(tmp_path) -> Intake:
    key = base64.b64decode(base64.b64encode(os.urandom(32)))
    return Intake(TicketStore(tmp_path / "tickets.db", key=key), model=None)


@pytest.mark.parametrize("text,kind", [
    ("确认提交", "confirm"), ("好的", "confirm"), ("对，就这样", "confirm"),
    ("算了不投诉了", "cancel"), ("取消吧", "cancel"), ("不用了", "no_callback"),
    ("不用回电", "no_callback"), ("需要回电", "callback"),
    ("我的电话是139****5678", "contact"),
    ("还有，晚上十点以后更吵", "more"),
])
def test_answers_to_the_read_back(text, kind):
    assert Intake.understand(text).kind == kind


def test_draft_is_masked_and_read_back_in_a_few_lines(intake):
    draft = intake.draft("我是13912345678，盈浦街道XX小区门口路灯坏了一个月了，晚上很黑，希望尽快修")
    assert "13912345678" not in str(draft) and draft["summary"]
    text = Intake.readback(draft)
    assert text.count("\n") <= 2 and "工单" in text and draft["department"] in text
    assert draft["category"] is None  # no model: the agent or the hotline office chooses


def test_filing_uses_the_number_the_channel_kept_and_stores_it_encrypted(intake, tmp_path):
    masked = intake.remember_contact("web-123", "13912345678")
    assert masked == "139****5678"
    draft = intake.draft("小区门口的路灯坏了一个多月了")
    draft.update(callback=True, contact_masked=masked)
    ticket = intake.file(draft, "web-123")
    assert ticket["id"].startswith("QP") and ticket["contact_masked"] == "139****5678"
    assert intake.store.contact(ticket["id"]) == "13912345678"
    assert b"13912345678" not in (tmp_path / "tickets.db").read_bytes()
    assert ticket["id"] in status_text(intake.status(ticket["id"].lower()), ticket["id"])


def test_callback_without_a_number_is_refused(intake):
    draft = intake.draft("小区门口的路灯坏了一个多月了")
    draft["callback"] = True
    with pytest.raises(ValueError, match="联系电话"):
        intake.file(draft, "web-no-number")


def test_more_details_redraft_from_everything_said(intake):
    draft = intake.draft("楼下饭店油烟很大")
    more = Intake.add_details(draft, "在朱家角镇XX路88号，每天晚上十点以后", intake)
    assert "朱家角镇" in (more["place"] or "") and more["source_text"].startswith("楼下饭店油烟很大")


def test_unknown_ticket_status_says_so(intake):
    assert "没有找到" in status_text(intake.status("QP20990101-000001"), "QP20990101-000001")


def test_the_question_part_of_a_mixed_message():
    assert Intake.question_part("楼下新开的饭店油烟很大，我想投诉；另外我自己也想开个小吃店，要办什么证") == \
        "另外我自己也想开个小吃店，要办什么证"
    assert Intake.question_part("楼下饭店每天晚上油烟很大还很吵") == "楼下饭店每天晚上油烟很大还很吵"
