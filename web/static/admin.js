// Administrators' console: every figure comes from /api/admin/…; text is set with textContent only.
"use strict";
(() => {
  const {el, postJSON} = QP;
  const $ = id => document.getElementById(id);
  const FLAGS = {no_question: "无提问内容", too_fast: "回答后立即评价", many_bad_conversation: "同一会话多次差评",
                 many_bad_address: "同一地址多次差评"};
  const status = $("status");
  let me = null, view = "overview", ratingStatus = "", ratingOffset = 0;

  async function getJSON(url) {
    try {
      const r = await fetch(url, {credentials: "same-origin"});
      if (r.status === 401) { location.href = "/admin"; return null; }
      const data = await r.json().catch(() => ({}));
      if (!r.ok) { status.textContent = data.message || "加载失败，请稍后再试。"; return null; }
      return data;
    } catch (e) { status.textContent = "网络连接失败，请稍后再试。"; return null; }
  }
  const range = () => "since=" + $("since").value + "&until=" + $("until").value;
  const pct = (a, b) => b ? (100 * a / b).toFixed(1) + "%" : "—";
  function card(label, value, note) {
    const c = el("div", "stat");
    c.append(el("div", "value", value), el("div", "label", label));
    if (note) c.appendChild(el("div", "note", note));
    return c;
  }
  function row(cells, onClick) {
    const tr = el("tr");
    for (const c of cells) tr.appendChild(c instanceof Node ? cell(c) : el("td", null, c));
    if (onClick) { tr.classList.add("click"); tr.tabIndex = 0; tr.addEventListener("click", onClick);
                   tr.addEventListener("keydown", e => { if (e.key === "Enter") onClick(); }); }
    return tr;
  }
  function cell(node) { const td = el("td"); td.appendChild(node); return td; }

  // ------------------------------------------------------------ overview
  async function overview() {
    const o = await getJSON("/api/admin/overview?" + range());
    if (!o) return;
    const t = o.totals;
    $("cards").replaceChildren(
      card("会话", t.conversations), card("提问", t.answers),
      card("有把握回答", t.confident, "占 " + pct(t.confident, t.answers)), card("无把握或未能回答", t.unconfident),
      card("转人工", t.handoffs), card("好评", t.good), card("差评", t.bad, "满意率 " + pct(t.good, t.good + t.bad)),
      card("申诉成立（不计入考核）", t.excluded));
    for (const [name, svg] of Object.entries(o.charts)) {
      $("chart-" + name).src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(svg);
    }
    const body = $("guides").tBodies[0];
    body.replaceChildren(...o.guides.map(g => row([g.title, g.answers, g.confident, g.good, g.bad, pct(g.good, g.good + g.bad)])));
    if (!o.guides.length) body.appendChild(row(["所选日期内没有回答", "", "", "", "", ""]));
  }

  // ------------------------------------------------------------ 差评
  async function ratings(append) {
    if (!append) ratingOffset = 0;
    const q = "/api/admin/ratings?" + range() + (ratingStatus ? "&status=" + encodeURIComponent(ratingStatus) : "") + "&offset=" + ratingOffset;
    const r = await getJSON(q);
    if (!r) return;
    const filters = $("status-filter");
    const all = Object.values(r.by_status).reduce((a, b) => a + b, 0);
    filters.replaceChildren();
    for (const [name, n] of [["", all], ...Object.entries(r.by_status)]) {
      const b = el("button", "chip" + (name === ratingStatus ? " on" : ""), (name || "全部") + " " + n);
      b.type = "button";
      b.addEventListener("click", () => { ratingStatus = name; ratings(false); });
      filters.appendChild(b);
    }
    const body = $("ratings").tBodies[0];
    if (!append) body.replaceChildren();
    for (const i of r.items) {
      const st = el("span", "badge s-" + i.status, i.status);
      const tr = el("tr", "click");
      tr.dataset.id = i.answer_id;
      tr.append(el("td", "nowrap", i.rated_at.replace("T", " ").slice(0, 16)), el("td", null, i.question),
                el("td", "muted", i.reason || ""), cell(st));
      tr.tabIndex = 0;
      tr.addEventListener("click", () => {
        for (const other of body.querySelectorAll("tr.sel")) other.classList.remove("sel");
        tr.classList.add("sel"); detail(i.answer_id);
      });
      body.appendChild(tr);
    }
    if (!r.total) body.appendChild(row(["", "所选日期内没有差评", "", ""]));
    ratingOffset += r.items.length;
    $("more").hidden = ratingOffset >= r.total;
  }

  async function detail(id) {
    const d = await getJSON("/api/admin/ratings/" + encodeURIComponent(id));
    if (!d) return;
    const box = $("detail");
    box.replaceChildren();
    box.appendChild(el("h3", null, "差评详情"));
    const dl = el("dl");
    const add = (k, v) => { if (v === null || v === undefined || v === "") return; dl.append(el("dt", null, k), el("dd", null, v)); };
    add("市民问题", d.question); add("助手回答", d.answer || "（未记录回答原文）");
    add("引用来源", d.guides.map(g => "《" + g.title + "》").join("、"));
    add("回答把握", d.confident ? "有把握" : "无把握");
    add("差评原因", d.reason || "（未填写）");
    add("风险标记", d.flags.map(f => FLAGS[f] || f).join("、"));
    add("评价时间", d.rated_at.replace("T", " ")); add("当前状态", d.status + (d.appeal ? "（" + d.appeal + "）" : ""));
    add("处理说明", d.note); add("更新答复", d.reply);
    if (d.notices.length) add("回访推送", d.notices.map(n => n.delivered_at ? "已推送给市民 " + n.delivered_at.replace("T", " ") : "待市民再次打开对话时推送").join("；"));
    box.appendChild(dl);
    if (me.role === "admin" && d.next.length) box.appendChild(reviewForm(d));
    else if (me.role !== "admin") box.appendChild(el("p", "muted", "只读账号：可查看，不能修改状态。"));
    box.appendChild(el("h4", null, "处理记录"));
    const ol = el("ol", "trail");
    for (const a of d.audit) {
      ol.appendChild(el("li", null, a.at.replace("T", " ") + "  " + a.user + "：" + a.from + " → " + a.to +
                        (a.appeal ? "（" + a.appeal + "）" : "") + (a.note ? "。" + a.note : "")));
    }
    if (!d.audit.length) ol.appendChild(el("li", "muted", "尚未处理"));
    box.appendChild(ol);
  }

  function reviewForm(d) {
    const f = el("form", "review");
    const sel = el("select"); sel.name = "status"; sel.setAttribute("aria-label", "新状态");
    for (const s of d.next) sel.appendChild(Object.assign(el("option", null, s), {value: s}));
    const appeal = el("select"); appeal.name = "appeal"; appeal.setAttribute("aria-label", "申诉类型");
    for (const a of me.appeals) appeal.appendChild(Object.assign(el("option", null, a), {value: a}));
    const note = el("textarea"); note.name = "note"; note.rows = 3; note.maxLength = 500; note.placeholder = "处理说明（整改措施、申诉理由或复核意见）";
    const recheckBox = el("label", "check");
    const recheck = el("input"); recheck.type = "checkbox"; recheck.name = "recheck";
    recheckBox.append(recheck, document.createTextNode(" 市民再次打开对话时推送更新后的答复"));
    const reply = el("textarea"); reply.name = "reply"; reply.rows = 3; reply.maxLength = 1500; reply.placeholder = "更新后的答复（推送给市民）";
    const err = el("p", "err");
    const submit = el("button", null, "提交"); submit.type = "submit";
    const sync = () => {
      appeal.hidden = sel.value !== "申诉中";
      recheckBox.hidden = sel.value !== "已整改";
      reply.hidden = sel.value !== "已整改" || !recheck.checked;
    };
    sel.addEventListener("change", sync); recheck.addEventListener("change", sync); sync();
    f.append(el("h4", null, "处理"), sel, appeal, note, recheckBox, reply, err, submit);
    f.addEventListener("submit", async ev => {
      ev.preventDefault();
      const r = await postJSON("/api/admin/ratings/" + encodeURIComponent(d.answer_id) + "/review",
        {status: sel.value, note: note.value, appeal: sel.value === "申诉中" ? appeal.value : null,
         recheck: recheck.checked, reply: reply.value});
      if (!r.ok) { err.textContent = (r.data && r.data.message) || "提交失败"; return; }
      await detail(d.answer_id);
      ratings(false);
    });
    return f;
  }

  // ------------------------------------------------------------ knowledge gaps
  async function gaps() {
    $("gaps").replaceChildren(el("p", "muted", "正在归并话题……"));
    const g = await getJSON("/api/admin/gaps?" + range() + ($("by-count").checked ? "&sort=count" : ""));
    if (!g) return;
    $("gap-summary").textContent = "共 " + g.questions + " 次提问、" + g.distinct + " 个不同问题，归为 " + g.topics.length + " 个话题" +
      (g.shown < g.distinct ? "（只归并最近的 " + g.shown + " 个问题）" : "") + (g.clustered ? "" : "。索引未就绪，暂按原文归并");
    const box = $("gaps");
    box.replaceChildren();
    for (const t of g.topics) {
      const c = el("div", "card topic");
      const head = el("div", "topic-head");
      head.append(el("h3", null, t.label), el("span", "count", t.count + " 次"));
      c.appendChild(head);
      c.appendChild(el("p", "meta", "不同问法 " + t.distinct + " 个 · " + Object.entries(t.reasons).map(([k, v]) => k + " " + v).join(" · ") +
                       " · 最近 " + t.latest_at.replace("T", " ").slice(0, 16)));
      const ul = el("ul", "examples");
      for (const e of t.examples) ul.appendChild(el("li", null, e.text + (e.count > 1 ? "（" + e.count + " 次）" : "")));
      c.appendChild(ul);
      const b = el("button", "ghost", "查看相近指南"); b.type = "button";
      const out = el("div", "near");
      b.addEventListener("click", async () => {
        const r = await getJSON("/api/admin/guides?q=" + encodeURIComponent(t.label));
        if (!r) return;
        out.replaceChildren(el("p", "meta", r.confident ? "已有指南可能覆盖：" : "没有把握匹配的指南，可能需要新增："));
        const ol = el("ol");
        for (const x of r.guides) ol.appendChild(el("li", null, "《" + x.title + "》" + (x.section ? " · " + x.section : "")));
        out.appendChild(ol);
      });
      c.append(b, out);
      box.appendChild(c);
    }
    if (!g.topics.length) box.appendChild(el("p", "muted", "所选日期内没有知识缺口。"));
  }

  // ------------------------------------------------------------ 工单
  async function tickets() {
    const t = await getJSON("/api/admin/tickets?" + range());
    if (!t) return;
    const o = t.outbox || {};
    $("ticket-cards").replaceChildren(card("工单", t.total), card("待投递", o.pending ?? "—", o.url_configured ? "" : "未配置12345接口"),
      card("已投递", o.delivered ?? "—"), card("投递失败", o.failed ?? "—", o.last_error ? "最近错误：" + o.last_error : ""));
    const tables = $("ticket-tables");
    tables.replaceChildren();
    for (const [title, key] of [["按类别", "by_category"], ["按承办单位", "by_department"], ["按状态", "by_status"], ["按日期", "by_day"]]) {
      const wrap = el("div", "card");
      wrap.appendChild(el("h3", null, title));
      const tbl = el("table", "tbl");
      const body = el("tbody");
      for (const [k, n] of Object.entries(t[key])) body.appendChild(row([k, n]));
      if (!Object.keys(t[key]).length) body.appendChild(row(["没有工单", ""]));
      tbl.appendChild(body); wrap.appendChild(tbl); tables.appendChild(wrap);
    }
  }

  function exports() {
    for (const k of ["ratings", "gaps", "tickets"]) {
      const a = $("export-" + k);
      a.href = "/api/admin/export/" + k + ".csv?" + range();
      if (me.role !== "admin") { a.removeAttribute("href"); a.classList.add("disabled"); a.title = "只读账号不能导出"; }
    }
  }

  const VIEWS = {overview, ratings: () => ratings(false), gaps, tickets, export: exports};
  function show(name) {
    view = name;
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("on", b.dataset.view === name);
    for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + name;
    status.textContent = "";
    VIEWS[name]();
  }

  async function start() {
    me = await getJSON("/api/admin/me");
    if (!me) return;
    $("who").textContent = me.name + (me.role === "admin" ? "（管理员）" : "（只读）");
    const until = new Date(me.today + "T00:00:00");
    const since = new Date(until); since.setDate(since.getDate() - 29);
    const iso = d => d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0");
    $("since").value = iso(since); $("until").value = me.today;
    for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.view));
    $("range").addEventListener("submit", ev => { ev.preventDefault(); show(view); });
    $("more").addEventListener("click", () => ratings(true));
    $("by-count").addEventListener("change", gaps);
    show((location.hash || "#overview").slice(1) in VIEWS ? location.hash.slice(1) || "overview" : "overview");
  }
  start();
})();
