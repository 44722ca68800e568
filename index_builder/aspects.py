"""Which aspect of a service a message asks about (材料, 多久, 收费, 在哪, 网上办, 电话 …), by
its words, and the guide section that holds it. Light on purpose (no model or index imports):
the Rasa process uses it to keep follow-ups like "窗口在哪" or "工本费多少" from being read as a
greeting or a hand-off, and the re-ranker uses it to favour the section a question asks for."""
from __future__ import annotations

import re

from .passages import BASIS, CHANNELS, CONDITIONS, CONTACT, MATERIALS, OVERVIEW, PROCESS, TIME_FEE

# (aspect, section that holds it, cue words). Order matters: the first aspect whose cue occurs
# wins, so the specific ("网上能办吗", "收费吗") come before the broad ("要啥").
ASPECTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("online", CHANNELS, ("网上", "线上", "网办", "在线", "手机上", "手机办", "手机能", "手机可以", "随申办上",
                          "app上", "APP上", "不用跑", "不出门", "网站上", "电脑上", "小程序")),
    ("fee", TIME_FEE, ("收费", "多少钱", "费用", "要钱", "收钱", "免费", "花钱", "交钱", "付钱", "几块钱", "掏钱",
                       "工本费", "手续费", "收不收", "贵不贵", "钱吗", "钱不", "钱么")),
    ("time", TIME_FEE, ("多久", "几天", "多长时间", "多少天", "时限", "多快", "啥时候能", "什么时候能", "工作日",
                        "办下来", "拿到", "下证", "出证", "当天", "当场", "等多长", "要等", "几个月", "多少时间")),
    ("overview", OVERVIEW, ("归哪个", "哪个部门管", "哪个单位管", "谁管", "主管部门", "是干嘛的", "是什么意思")),
    ("where", CHANNELS, ("在哪", "哪里", "哪儿", "地址", "地点", "哪个窗口", "去哪", "哪办", "什么地方", "啥地方",
                         "哪个地方", "到哪", "跑哪", "哪个部门", "找哪个", "哪个中心", "周末", "节假日", "几点",
                         "上班时间", "办公时间")),
    ("phone", CONTACT, ("电话", "号码", "热线", "联系方式", "打给谁", "打哪个", "怎么联系", "投诉", "找谁", "问谁")),
    ("basis", BASIS, ("依据", "法规", "哪个规定", "什么规定", "啥规定", "哪条规定", "哪个文件", "什么文件", "根据什么",
                      "政策依据", "法律")),
    ("conditions", CONDITIONS, ("条件", "符合", "资格", "够不够", "要求", "门槛", "谁能办", "谁可以", "限制",
                                "能不能办", "能办吗", "可以办吗", "能不能申请", "能申请吗", "有没有资格")),
    ("process", PROCESS, ("流程", "步骤", "怎么走", "程序", "环节", "先干嘛", "先做什么", "先去", "过程",
                          "怎么开通", "怎么操作", "怎么添加", "怎么拿", "咋拿", "怎么领", "咋领")),
    ("materials", MATERIALS, ("材料", "带什么", "带啥", "带些", "带哪些", "准备什么", "准备啥", "准备些", "准备哪些",
                              "准备点", "证件", "资料", "要啥", "需要啥", "要些啥", "要哪些", "提供什么", "提供啥",
                              "交什么", "交啥", "哪些东西", "什么东西", "啥东西", "要什么", "需要什么", "拿什么",
                              "拿啥", "带上")),
)
# Questions about a deadline to apply ("多少天之内得办") or about how much a benefit pays
# ("每个月给多少钱") look like time or fee questions but are answered elsewhere (申请条件, a
# 常见问题): no aspect, so the best passage of the guide answers them.
_NOT_AN_ASPECT = re.compile(r"之内|以内|期限|时间限制|满多久|多久内|过了.{0,4}(时间|日子)|"
                            r"(领|给|发|补|报|能拿|到手|到账).{0,3}(多少|几)|(多少|几).{0,3}(领|给|发|补)")
ASPECT_SECTION = {aspect: section for aspect, section, _ in ASPECTS}
ASPECT_LABEL = {"online": "网上办理", "fee": "收费", "time": "办理时限", "where": "办理地点",
                "phone": "咨询电话", "basis": "设定依据", "conditions": "申请条件", "process": "办理流程",
                "materials": "申请材料", "overview": "事项概述"}
SECTION_ASPECT = {OVERVIEW: "overview", CONDITIONS: "conditions", MATERIALS: "materials", PROCESS: "process",
                  CHANNELS: "where", TIME_FEE: "time", BASIS: "basis", CONTACT: "phone"}

# How official documents word each aspect: a follow-up asked in everyday words ("要多久能批
#下来") is searched within a document with these added, since articles say "5个工作日内".
DOCUMENT_WORDS = {"time": "工作日 日内 期限 办结", "materials": "提交 材料 申请表", "where": "窗口 平台 受理 地点",
                  "fee": "费用 收取 标准", "conditions": "条件 情形 符合", "process": "程序 流程 申请 审核",
                  "phone": "电话 联系", "basis": "依据 根据", "online": "网上 平台 一网通办", "overview": "适用 范围"}


def asked_aspect(text: str) -> str | None:
    """The aspect a message asks about by its words, or None."""
    low = text.lower()
    if _NOT_AN_ASPECT.search(low):
        return None
    return next((aspect for aspect, _, cues in ASPECTS if any(c.lower() in low for c in cues)), None)
