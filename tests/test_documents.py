"""Readers for real document formats and the structure-aware passages they give. Every
fixture is written here from real text: a .docx by python-docx, a PDF printed from HTML by
Debian's chromium (so it has a real text layer), an HTML page with navigation around the
content, spreadsheets by openpyxl; the Shanghai documents in ../shared are read in place."""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, CountingEncoder
from index_builder.documents import DocumentRefused, link_versions, load_document
from index_builder.documents.metadata import expiry, split_front_matter
from index_builder.documents.structure import sections
from index_builder.documents.readers import read_body
from index_builder.knowledge import load_source, load_sources
from index_builder.passages import document_passages

POLICIES = ROOT.parent / "shared" / "policies" / "shanghai"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

RULES = [  # from 《上海市建筑工程施工许可管理规定》, shortened
    "第一章 总则",
    "第一条【目的依据】为了加强本市建筑工程施工许可管理，规范施工许可行为，根据有关法律法规，制定本规定。",
    "第二条【适用范围】在本市行政区域内从事各类房屋建筑及其附属设施的建造、装修装饰和与其配套的线路、管道、设备的安装，以及城镇市政基础设施工程的施工，适用本规定。",
    "第二章 申请与审批",
    "第三条【申请条件】申请领取施工许可证，应当具备下列条件：",
    "（一）已经办理该建筑工程用地批准手续；",
    "（二）依法应当办理建设工程规划许可证的，已经取得建设工程规划许可证；",
    "（三）有满足施工需要的资金安排、施工图纸及技术资料。",
]


def _passages(path: Path):
    return document_passages(load_document(path))


# ---------------------------------------------------------------- Word


def _docx(path: Path, with_field_code: bool = True) -> Path:
    import docx
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    d = docx.Document()
    d.core_properties.title = "关于印发《上海市建筑工程施工许可管理规定》的通知"
    d.add_paragraph("沪住建规范〔2023〕2号")
    d.add_paragraph("现将《上海市建筑工程施工许可管理规定》印发给你们，请遵照执行。")
    d.add_paragraph("2023年3月21日")
    for text in RULES:
        if text.startswith("第") and "章" in text[:4]:
            d.add_heading(text, level=1)
        else:
            p = d.add_paragraph(text)
            if with_field_code and text.startswith("（一）"):
                # a form field: its code (instrText) is not text and must not reach a passage
                run = p.add_run()
                begin = OxmlElement("w:fldChar")
                begin.set(qn("w:fldCharType"), "begin")
                code = OxmlElement("w:instrText")
                code.text = " FORMTEXT "
                run._r.append(begin)
                run._r.append(code)
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "材料", "份数"
    table.cell(1, 0).text, table.cell(1, 1).text = "施工许可申请表", "1"
    d.save(str(path))
    return path


def test_docx_articles_headings_table_and_citation(tmp_path):
    doc = load_document(_docx(tmp_path / "shigong-xuke.docx"))
    assert doc.doc_id == "shigong-xuke" and doc.format == "docx"
    assert doc.meta.doc_number == "沪住建规范〔2023〕2号" and doc.meta.date == "2023-03-21"
    passages = document_passages(doc)
    by_section = {p.section: p for p in passages}
    art3 = by_section["第三条"]
    assert "已经办理该建筑工程用地批准手续" in art3.text and "（三）" in art3.text  # items stay with their article
    assert art3.meta["heading_path"][0] == "第二章 申请与审批"
    assert art3.citation == "《上海市建筑工程施工许可管理规定》第三条（沪住建规范〔2023〕2号，2023-03-21）"
    assert all("FORMTEXT" not in p.text for p in passages)
    assert any("施工许可申请表｜1" in p.text for p in passages)  # the table, row by row


def test_broken_docx_is_refused(tmp_path):
    bad = tmp_path / "bad.docx"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DocumentRefused, match="Word"):
        load_document(bad)


# ---------------------------------------------------------------- PDF


def _print_pdf(html: Path, pdf: Path) -> Path:
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                    f"--print-to-pdf={pdf}", html.as_uri()], check=True, capture_output=True, timeout=120)
    return pdf


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make system-deps)")
def test_pdf_printed_by_chromium_has_pages_in_citations(tmp_path):
    body = "".join(f"<p>{t}</p>" for t in RULES[:3]) + '<p style="page-break-before: always">' + \
        "</p><p>".join(RULES[3:]) + "</p>"
    html = tmp_path / "rules.html"
    html.write_text(f"<html><head><meta charset='utf-8'><title>上海市建筑工程施工许可管理规定</title></head>"
                    f"<body><p>沪住建规范〔2023〕2号</p>{body}</body></html>", encoding="utf-8")
    passages = _passages(_print_pdf(html, tmp_path / "rules.pdf"))
    by_section = {p.section: p for p in passages}
    assert by_section["第二条"].meta["pages"] == [1, 1]
    art3 = by_section["第三条"]
    assert art3.meta["pages"] == [2, 2] and "已经取得建设工程规划许可证" in art3.text.replace("\n", "")
    assert "（第2页，沪住建规范〔2023〕2号）" in art3.citation


def test_pdf_without_text_layer_is_refused_with_reason(tmp_path):
    from pypdf import PdfWriter

    w = PdfWriter()
    w.add_blank_page(595, 842)
    w.add_blank_page(595, 842)
    scan = tmp_path / "scan.pdf"
    with scan.open("wb") as fh:
        w.write(fh)
    with pytest.raises(DocumentRefused, match="没有文字层.*扫描件"):
        load_document(scan)
    kb = load_source(tmp_path)  # a folder with only that scan: refused, reported, nothing indexed
    assert not kb.documents and kb.refused[0].path.endswith("scan.pdf") and "OCR" in kb.refused[0].reason


# ---------------------------------------------------------------- HTML


PAGE = """<html><head><meta charset="utf-8"><title>青浦区人民政府</title>
<meta name="ArticleTitle" content="青浦区公共租赁住房管理实施办法">
<meta name="PubDate" content="2024-09-09 10:00"><meta name="ContentSource" content="青浦区房管局"></head>
<body><header><a href="/">首页</a> 政务公开 | 办事服务 | 互动交流</header>
<nav class="menu"><ul><li>网站地图</li><li>无障碍浏览</li></ul></nav>
<div class="breadcrumb">首页 &gt; 政策文件</div>
<div id="zoom"><h1>青浦区公共租赁住房管理实施办法</h1>
<p>第一条  为了健全和完善本区租赁型住房保障体系，制定本实施办法。</p>
<p>第二条  公共租赁住房按略低于市场水平的租赁价格，向规定对象供应。</p>
<p>第三条  租赁合同期限一般为2年，期满可以申请续租。<br>承租人应当按时缴纳租金。</p></div>
<div class="share">分享到：微信 微博</div><footer>版权所有 上海市青浦区人民政府 沪ICP备</footer>
<script>var x = "第九条 不是正文";</script></body></html>"""


def test_html_main_content_only_with_portal_meta(tmp_path):
    page = tmp_path / "gongzufang.html"
    page.write_text(PAGE, encoding="utf-8")
    doc = load_document(page)
    assert doc.meta.title == "青浦区公共租赁住房管理实施办法" and doc.meta.date == "2024-09-09"
    assert doc.meta.issuer == "青浦区房管局"
    text = "\n".join(b.text for b in doc.blocks)
    for noise in ("网站地图", "首页", "分享到", "版权所有", "不是正文", "政务公开"):
        assert noise not in text
    sections = {p.section: p for p in document_passages(doc)}
    assert set(sections) == {"第一条", "第二条", "第三条"}
    assert "承租人应当按时缴纳租金" in sections["第三条"].text


# ---------------------------------------------------------------- spreadsheets


def test_xlsx_faq_and_material_list(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["问题", "答案"])
    sheet.append(["公租房租期多久？", "租赁合同期限一般为2年；期满可申请续租。"])
    sheet.append(["在哪里申请？", "向户籍或工作所在街镇的受理窗口申请。"])
    faq = tmp_path / "faq" / "gongzufang-wenda.xlsx"
    faq.parent.mkdir()
    book.save(faq)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["材料名称", "形式", "份数"])
    for i in range(10):
        sheet.append([f"材料{i + 1}", "原件", 1])
    listing = tmp_path / "faq" / "cailiao.xlsx"
    book.save(listing)
    kb = load_source(tmp_path / "faq")
    rows = {f.doc_id: f for f in kb.faqs}
    assert rows["gongzufang-wenda-1"].question == "公租房租期多久？"
    assert rows["gongzufang-wenda-1"].answer == "租赁合同期限一般为2年；期满可申请续租。"  # '；' inside an answer survives
    (table,) = kb.documents
    passages = document_passages(table)
    assert [p.section for p in passages] == ["第1–8行", "第9–10行"]
    assert "材料名称：材料1；形式：原件；份数：1" in passages[0].text


def test_csv_material_list(tmp_path):
    path = tmp_path / "fees.csv"
    path.write_text("项目,收费标准\n施工许可证核发,不收费\n", encoding="utf-8")
    (p,) = _passages(path)
    assert p.section == "第1行" and "施工许可证核发" in p.text and p.citation.startswith("《fees》第1行")


# ---------------------------------------------------------------- Markdown, metadata, validity


def test_outline_numbering_nests_and_does_not_take_decimals_for_items():
    text = "一、总体要求\n（一）工作目标\n到2025年，全面完成改造。\n3.5米以下的道路纳入日常养护。\n" \
           "（二）基本原则\n1.坚持统筹。\n2.坚持便民。\n二、保障措施\n加强组织领导。"
    secs = sections(read_body(text, markdown=False), max_chars=45)
    keys = [s.keys for s in secs]
    assert ("一", "（一）") in keys and ("二",) in keys
    first = next(s for s in secs if s.keys == ("一", "（一）"))
    assert "3.5米以下" in first.text  # "3.5" is no item number
    assert first.locator == "一、（一）"


def test_expired_and_superseded_documents_are_flagged(tmp_path):
    old = tmp_path / "gzf-2019.md"
    old.write_text("---\n标题: 关于印发青浦区公共租赁住房管理实施办法的通知\n文号: 青府规发〔2019〕2号\n"
                   "发布日期: 2019-05-07\n状态: 失效\n---\n第一条 租赁期限为3年。\n", encoding="utf-8")
    new = tmp_path / "gzf-2024.md"
    new.write_text("---\ntitle: 关于印发修改后的《青浦区公共租赁住房管理实施办法》的通知\ndoc_number: 青房管规〔2024〕1号\n"
                   "date: 2024-09-09\n---\n第一条 租赁合同期限一般为2年。\n"
                   "第二条 本办法自2024年10月1日起施行，有效期至2029年6月30日。\n", encoding="utf-8")
    docs = [load_document(old), load_document(new)]
    link_versions(docs)
    assert docs[0].meta.superseded_by == "gzf-2024" and "青房管规〔2024〕1号" in docs[0].meta.superseded_by_title
    assert "青府规发〔2019〕2号" in docs[1].meta.replaces
    assert expiry(docs[0].meta) == "该文件已失效"
    assert docs[1].meta.valid_until == "2029-06-30"
    assert expiry(docs[1].meta, today=dt.date(2029, 7, 1)) == "该文件有效期至2029年6月30日，已过有效期"
    assert expiry(docs[1].meta, today=dt.date(2026, 12, 2)) is None


def test_newer_version_ranks_first_and_answers_say_so(tmp_path):
    from assistant.answers import answer_from
    from index_builder.builder import build_index
    from index_builder.retriever import Retriever

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "gzf-2019.md").write_text(
        "---\n标题: 关于印发青浦区公共租赁住房管理实施办法的通知\n文号: 青府规发〔2019〕2号\n发布日期: 2019-05-07\n"
        "状态: 失效\n---\n第一条 公共租赁住房的租赁合同期限为3年，期满可以续租一次。\n", encoding="utf-8")
    (docs / "gzf-2024.md").write_text(
        "---\n标题: 关于印发修改后的《青浦区公共租赁住房管理实施办法》的通知\n文号: 青房管规〔2024〕1号\n"
        "发布日期: 2024-09-09\n---\n第一条 公共租赁住房租赁合同期限一般为2年。\n", encoding="utf-8")
    build_index(docs, tmp_path / "index", CountingEncoder(), progress=False)
    r = Retriever(tmp_path / "index", encoder=CountingEncoder(), model=None)
    asked = "公共租赁住房的租赁合同期限为3年吗，期满可以续租一次吗"  # worded like the old text
    assert r.search(asked, mode="fusion").hits[0].passage.doc_id == "gzf-2024"
    assert r.search("2019年的" + asked, mode="fusion").hits[0].passage.doc_id == "gzf-2019"
    old = next(p for p in r.passages if p.doc_id == "gzf-2019")
    new = next(p for p in r.passages if p.doc_id == "gzf-2024")
    assert "该文件已失效，已被《青浦区公共租赁住房管理实施办法》（青房管规〔2024〕1号）替代" in answer_from(r, old, 1.0).text
    assert "本文件替代了《青浦区公共租赁住房管理实施办法》（青府规发〔2019〕2号）" in answer_from(r, new, 1.0).text


def test_unsupported_and_old_formats_are_refused_with_reason(tmp_path):
    (tmp_path / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / "notes.md").write_text("第一条 这是正文。\n", encoding="utf-8")
    kb = load_source(tmp_path)
    assert [d.doc_id for d in kb.documents] == ["notes"]
    assert "另存为 .docx" in kb.refused[0].reason


def test_front_matter_blocks_merge_first_wins():
    fields, rest = split_front_matter("title: A\ndoc_number: 沪〔2023〕2号 (metadata: -)\n---\n---\n标题: B\n"
                                      "状态: 有效\n---\n\n正文")
    assert fields == {"title": "A", "doc_number": "沪〔2023〕2号 (metadata: -)", "status": "有效"}
    assert rest.strip() == "正文"


# ---------------------------------------------------------------- the Shanghai documents


@pytest.mark.skipif(not POLICIES.exists(), reason="../shared/policies/shanghai not present")
def test_shanghai_documents_read_with_metadata_and_articles():
    kb = load_sources([POLICIES])
    assert len(kb.documents) == 40 and not kb.refused
    by_id = {d.doc_id: d for d in kb.documents}
    rules = by_id["14-shigong-xuke-guanli-guiding"]
    assert rules.meta.doc_number == "沪住建规范〔2023〕2号"
    passages = document_passages(rules)
    assert any(p.citation.startswith("《上海市建筑工程施工许可管理规定》第十二条（沪住建规范〔2023〕2号") for p in passages)
    assert all("索取号" not in p.text for p in passages)  # the portal's information table is metadata, not text
    assert by_id["06-qingpu-gongzufang-2019"].meta.superseded_by == "05-qingpu-gongzufang-2024"
    assert expiry(by_id["07-qingpu-gengdi-zhiliang-butie"].meta, today=dt.date(2026, 12, 2))
    located = sum(bool(p.meta.get("keys")) for d in kb.documents for p in document_passages(d))
    total = sum(len(document_passages(d)) for d in kb.documents)
    assert located / total > 0.9


# ---------------------------------------------------------------- upload


def test_add_document_rebuilds_incrementally_and_refusal_changes_nothing(tmp_path, kb_dir):
    from index_builder.builder import build_index
    from index_builder.retriever import Retriever
    from index_builder.upload import add_documents

    index = tmp_path / "index"
    enc = CountingEncoder()
    build_index(kb_dir, index, enc, progress=False)
    live = Retriever(index, encoder=enc, model=None)
    before = len(live.passages)
    new = tmp_path / "incoming" / "yejian-shigong.md"
    new.parent.mkdir()
    new.write_text("# 上海市建设工程夜间施工作业证明管理办法\n第一条 夜间施工应当提前3个工作日申请。\n"
                   "第二条 每次申请的夜间施工时间原则上不得超过3天。\n", encoding="utf-8")
    folder = tmp_path / "documents"
    enc2 = CountingEncoder()
    report = add_documents([new], folder, index, default_source=kb_dir, encoder=enc2)
    assert report.added == ["yejian-shigong"] and report.passages == 2
    assert len(enc2.embedded) == 2  # only the new document's passages were embedded
    assert (folder / "yejian-shigong.md").exists()
    assert live.stale()  # a running server sees the switch and reloads
    fresh = live.refreshed()
    assert fresh is not live and fresh.refreshed() is fresh
    assert len(fresh.passages) == before + 2 and len(enc.embedded) == before
    assert any(p.citation.startswith("《上海市建设工程夜间施工作业证明管理办法》第二条") for p in fresh.passages)
    scan = tmp_path / "incoming" / "scan.pdf"
    from pypdf import PdfWriter

    w = PdfWriter()
    w.add_blank_page(595, 842)
    with scan.open("wb") as fh:
        w.write(fh)
    with pytest.raises(DocumentRefused):
        add_documents([scan], folder, index, default_source=kb_dir, encoder=enc2)
    assert not (folder / "scan.pdf").exists() and not fresh.stale()
    with pytest.raises(FileExistsError):
        add_documents([new], folder, index, default_source=kb_dir, encoder=enc2)
