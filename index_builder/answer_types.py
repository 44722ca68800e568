"""What kind of answer a question asks for (a date, an amount, a phone number, an organisation,
a place, a list, a yes or no), by its question words, and whether a passage has that shape.

Policy QA answers are often fragments that do not repeat the question's subject ("宣布疫情解除
后两个月内" for "……期限延长至何时？"): topic words cannot tell such a fragment from its
neighbours, but its shape can. The re-ranker gets one feature per type: +1 when the question asks
for that type and the passage has its shape, -1 when it asks and the passage lacks it, 0 when the
question does not ask for it. Light on purpose: regular expressions, microseconds a candidate.
"""
from __future__ import annotations

import re

_CN_NUM = "一二三四五六七八九十两百千万亿"

# (type, question cue, answer shape). A question may ask for several (多少天: amount and date).
TYPES: tuple[tuple[str, re.Pattern, re.Pattern], ...] = (
    ("phone",
     re.compile(r"电话|热线|号码|联系方式|打哪个|拨打"),
     re.compile(r"\d{3,4}[-－—]\d{5,8}|\d{5,}")),
    ("date",
     re.compile(r"何时|什么时候|哪天|哪一天|几月|几号|截止|截至|延长至|延长到|延至|推迟至|推迟到|期限|多久|"
                r"多长时间|时间是|有效期|时限|几天|哪个时间"),
     re.compile(rf"\d+\s*(年|月|日|号|天|小时|个?工作日|周|个月)|[{_CN_NUM}]+\s*(个月|天|日|周|年|小时|个?工作日)|"
                r"之前|以前|之内|以内|期间|截至|截止|届满|结束后|解除后|起")),
    ("amount",
     re.compile(r"多少|几[个家所项人次万元倍名台批]|比例|标准是|金额|额度|数量|规模|幅度|上限"),
     re.compile(rf"\d|[{_CN_NUM}]+(元|万|倍|个|家|所|人|项|名|台|批|成)|百分之|全额|减半")),
    ("org",
     re.compile(r"哪家|哪个(单位|部门|企业|公司|机构|医院|银行)|哪些(单位|部门|企业|公司|机构|医院|银行)|"
                r"谁|由哪|什么(单位|部门|机构)"),
     re.compile(r"(公司|集团|局|委|委员会|部|厅|办|院|中心|医院|银行|协会|学校|大学|政府|机构|单位|部门)"
                r"([、，,。；]|$)")),
    ("place",
     re.compile(r"哪里|在哪|何处|地址|网址|网站|哪个平台|哪个网|什么平台|什么渠道|哪个渠道|途径"),
     re.compile(r"[路街道号区县市省]|http|www|网站|平台|网|APP|app|公众号|小程序|窗口|渠道")),
    ("list",
     re.compile(r"哪些|哪几|包括|有何|措施|举措|要求"),
     re.compile(r"[；;、]|一是|其一|首先|（[一二三四五1-9]）|\([1-9一二三]\)|^[1-9一二三][、.．]")),
    ("yesno",
     re.compile(r"是否|能否|可否|能不能|可不可以|有没有|会不会|需不需要|要不要"),
     re.compile(r"^(可以|是|否|不|能|没有|有|需要|无需|不需要|不能|不可以|暂不|应当|必须)")),
)
NAMES: tuple[str, ...] = tuple(name for name, _, _ in TYPES)


def asked_types(question: str) -> tuple[bool, ...]:
    """For each of TYPES, whether the question asks for it."""
    return tuple(bool(cue.search(question)) for _, cue, _ in TYPES)


def shape(passage: str) -> tuple[bool, ...]:
    """For each of TYPES, whether the passage has its shape."""
    text = passage.strip()
    return tuple(bool(form.search(text)) for _, _, form in TYPES)


def match(asked: tuple[bool, ...], has: tuple[bool, ...]) -> list[float]:
    """The re-ranker's features: +1 asked and present, -1 asked and absent, 0 not asked."""
    return [(1.0 if h else -1.0) if a else 0.0 for a, h in zip(asked, has)]
