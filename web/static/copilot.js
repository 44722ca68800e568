// Hotline copilot: the caller's words (typed, or call audio streamed to /api/voice/stream) go to
// the assistant under the copilot's own sender id and to the guide search; the page shows the
// guides' key fields, the 一件事 questions with the answers so far, a suggested reply and the
// handoff summaries from citizens' chats. Every caller sentence also re-drafts the call's 工单
// (/api/copilot/ticket/draft over all of them); the agent edits the draft and files it.
"use strict";
(() => {
  const {el, newId, postJSON, copyText, checklistSections} = QP;
  const $ = id => document.getElementById(id);
  let sender = newId("copilot-");
  let bundle = null;  // {id, name, questions: [{slot, label, answer}], pending, outcome}
  let suggestion = "", topic = "";

  function unauthorized(status) { if (status === 401) { location.href = "/copilot"; return true; } return false; }

  async function getJSON(url) {
    try {
      const r = await fetch(url, {credentials: "same-origin"});
      if (unauthorized(r.status)) return null;
      return {ok: r.ok, data: await r.json().catch(() => ({}))};
    } catch (e) { return {ok: false, data: {message: "网络连接失败"}}; }
  }

  const FIELDS = [["conditions", "申请条件"], ["materials", "申请材料"], ["where", "办理方式和地点"],
                  ["time_fee", "办理时限和收费"], ["contact", "咨询电话"]];

  function renderGuides(data) {
    const box = $("guides"); box.replaceChildren();
    if (!data.guides || !data.guides.length) { box.appendChild(el("p", "muted", "没有找到相关办事指南。")); return; }
    if (!data.confident) box.appendChild(el("p", "warn", "匹配度不高，请向来电人确认具体事项。"));
    for (const g of data.guides) {
      const card = el("article", "card guide");
      card.appendChild(el("h3", null, "《" + g.title + "》"));
      card.appendChild(el("p", "meta", [g.department, "匹配：" + g.matched, "电话：" + g.phone].filter(Boolean).join(" · ")));
      if (g.kind !== "guide" && g.overview) card.appendChild(el("p", "field", g.overview));
      for (const [key, label] of FIELDS) {
        if (!g[key]) continue;
        const d = el("details", "field"); if (key !== "materials" && key !== "conditions") d.open = true;
        if (key === "conditions" || key === "materials") d.open = true;
        d.appendChild(el("summary", null, label));
        d.appendChild(el("pre", null, g[key]));
        card.appendChild(d);
      }
      box.appendChild(card);
    }
  }

  function renderBundle() {
    const box = $("bundle"); box.replaceChildren();
    if (!bundle) { box.className = "card muted"; box.textContent = "当前来电未涉及“一件事”。"; return; }
    box.className = "card";
    box.appendChild(el("h3", null, bundle.name || bundle.id));
    const table = el("table", "qa");
    for (const q of bundle.questions) {
      const tr = el("tr");
      tr.append(el("th", null, q.label), el("td", q.answer == null ? "pending" : "", q.answer == null ? "待回答" : q.answer));
      table.appendChild(tr);
    }
    box.appendChild(table);
    if (bundle.outcome) {
      const o = bundle.outcome;
      box.appendChild(el("p", "outcome " + o.status, "结论：" + (o.title || o.status)));
      if (o.explanation) box.appendChild(el("p", null, o.explanation));
      for (const [heading, items] of checklistSections(o)) {
        box.appendChild(el("h4", null, heading));
        const ul = el("ul"); for (const t of items) ul.appendChild(el("li", null, t)); box.appendChild(ul);
      }
    }
  }

  function track(text, replies) {
    const asked = replies.map(r => r.custom).find(c => c && c.slot && c.bundle);
    const outcome = replies.map(r => r.custom).find(c => c && c.bundle_outcome);
    if (bundle && bundle.pending && (outcome || (asked && asked.slot !== bundle.pending.slot))) {
      bundle.pending.answer = text; bundle.pending = null;
    }
    if (asked) {
      if (!bundle || bundle.id !== asked.bundle || bundle.outcome) bundle = {id: asked.bundle, questions: [], pending: null};
      let q = bundle.questions.find(x => x.slot === asked.slot);
      if (!q) { q = {slot: asked.slot, label: asked.label, answer: null}; bundle.questions.push(q); }
      bundle.pending = q;
      const lead = replies.find(r => r.text && /「(.+?)」/.test(r.text));
      if (lead && !bundle.name) bundle.name = lead.text.match(/「(.+?)」/)[1];
    }
    if (outcome && bundle) { bundle.outcome = outcome.bundle_outcome; bundle.name = outcome.bundle_outcome.name; }
    if (asked || outcome) renderBundle();
  }

  function suggest(replies) {
    const texts = replies.map(r => r.text).filter(Boolean);
    suggestion = texts.join("\n");
    $("suggest").textContent = suggestion || "（助手没有给出答复，请参考右侧办事指南）";
    $("copy").textContent = "一键复制";
  }

  function said(text) {
    const li = el("li", null, text); $("said").appendChild(li);
  }

  // The guide the assistant answered from (custom.turn.doc_id): the call's topic, so the
  // guides panel follows the conversation the same way the suggested reply does.
  function topicOf(replies) {
    for (const r of replies || []) { const t = r.custom && r.custom.turn; if (t && t.doc_id) return t.doc_id; }
    return "";
  }

  // ---------------------------------------------------------------- 工单 draft
  const TK = {type: "tk-type", category: "tk-category", department: "tk-department", place: "tk-place",
              time: "tk-time", summary: "tk-summary", urgency: "tk-urgency", callback: "tk-callback"};
  const tk = {lines: [], draft: null, seq: 0, edited: new Set(), filed: false, meta: {categories: []}};

  function tkResult(text, cls) { const r = $("tk-result"); r.textContent = text; r.className = "tk-result " + (cls || ""); }
  function tkCount() { $("tk-count").textContent = $("tk-summary").value.length + "/" + $("tk-summary").maxLength; }
  function tkUrgent() { $("tk-urgency").classList.toggle("urgent", $("tk-urgency").value === "紧急"); }

  async function loadTicketMeta() {
    const r = await getJSON("/api/copilot/ticket-meta");
    if (!r || !r.ok) return;
    tk.meta = r.data;
    for (const c of r.data.categories) { const o = el("option", null, c.name); o.value = c.name; o.title = c.description; $("tk-category").appendChild(o); }
    for (const u of r.data.departments) { const o = el("option"); o.value = u; $("tk-units").appendChild(o); }
  }

  function departmentOf(category) {  // the 承办单位 of a category, with the 街镇 when it co-handles
    const c = tk.meta.categories.find(x => x.name === category);
    if (!c) return null;
    const town = tk.draft && tk.draft.town;
    return c.local && town ? c.department + "（属地：" + town + "）" : c.department;
  }

  // Fill the card from a draft; fields the agent changed keep the agent's value.
  function showDraft(d) {
    $("tk-form").hidden = false; $("tk-hint").hidden = true;
    for (const [key, id] of Object.entries(TK)) {
      if (tk.edited.has(id)) continue;
      const input = $(id);
      if (input.type === "checkbox") input.checked = !!d[key];
      else input.value = d[key] == null ? "" : d[key];
      if (input.tagName === "SELECT" && input.selectedIndex < 0) input.selectedIndex = 0;
    }
    if (tk.edited.has("tk-category")) syncDepartment();  // the agent's category decides the unit
    $("tk-scores").textContent = (d.categories || []).length
      ? "模型建议：" + d.categories.map(c => c.category + " " + (100 * c.score).toFixed(1) + "%").join("｜") : "";
    $("tk-notes").textContent = (d.notes || []).join("；");
    tkCount(); tkUrgent();
  }

  async function requestDraft(force) {
    if (tk.filed) return;
    const text = tk.lines.join("\n");
    if (!text) { if (force) tkResult("请先输入来电内容。", "err"); return; }
    const seq = ++tk.seq;
    const r = await postJSON("/api/copilot/ticket/draft", {text});
    if (seq !== tk.seq || tk.filed) return;  // a newer draft is on its way, or this one is filed
    if (unauthorized(r.status)) return;
    if (!r.ok) { tkResult((r.data && r.data.message) || "工单草稿暂时无法生成。", "err"); return; }
    tk.draft = r.data.draft;
    if (force || r.data.kind.is_complaint || !$("tk-form").hidden) { showDraft(tk.draft); tkResult(""); }
    else $("tk-hint").textContent = "当前来电未识别出诉求（可能是咨询）；如需登记，请点击“生成工单”。";
  }

  function resetTicket() {
    tk.lines = []; tk.draft = null; tk.seq++; tk.edited.clear(); tk.filed = false;
    $("tk-form").reset(); $("tk-form").hidden = true; $("tk-form").inert = false;
    $("tk-hint").hidden = false; $("tk-hint").textContent = "来电内容识别为诉求（投诉、举报、求助、建议）后自动生成草稿。";
    $("tk-scores").textContent = ""; $("tk-notes").textContent = ""; $("tk-submit").disabled = false;
    tkResult(""); tkUrgent();
  }

  async function fileTicket() {
    const d = {categories: (tk.draft && tk.draft.categories) || []};
    for (const [key, id] of Object.entries(TK)) if (key !== "callback") d[key] = $(id).value.trim();
    $("tk-submit").disabled = true; tkResult("提交中……");
    const r = await postJSON("/api/copilot/ticket", {draft: d, contact: $("tk-contact").value.trim(),
                                                     callback: $("tk-callback").checked, sender});
    if (unauthorized(r.status)) return;
    if (!r.ok) { $("tk-submit").disabled = false; tkResult((r.data && r.data.message) || "工单提交失败，请稍后再试。", "err"); return; }
    const t = r.data.ticket;
    tk.filed = true; $("tk-form").inert = true;
    $("tk-contact").value = t.contact_masked || "";  // the number leaves the page in clear only once
    tkResult("已登记工单 " + t.id + "（" + t.status + (t.contact_masked ? "，回访电话 " + t.contact_masked : "") + "）", "ok");
  }

  for (const id of Object.values(TK)) {
    $(id).addEventListener("input", () => tk.edited.add(id));
    $(id).addEventListener("change", () => tk.edited.add(id));
  }
  function syncDepartment() {
    const dept = departmentOf($("tk-category").value);
    if (dept && !tk.edited.has("tk-department")) $("tk-department").value = dept;
  }
  $("tk-category").addEventListener("change", syncDepartment);
  $("tk-summary").addEventListener("input", tkCount);
  $("tk-urgency").addEventListener("change", tkUrgent);
  $("tk-form").addEventListener("keydown", ev => {  // Enter in a field must not file the 工单
    if (ev.key === "Enter" && ev.target.tagName === "INPUT") ev.preventDefault();
  });
  $("tk-form").addEventListener("submit", ev => { ev.preventDefault(); if (!tk.filed) fileTicket(); });
  $("tk-make").addEventListener("click", () => {
    if (tk.filed) { const lines = tk.lines; resetTicket(); tk.lines = lines; }  // a second 工单 in this call
    requestDraft(true);
  });

  async function handle(text, replies) {
    said(text);
    tk.lines.push(text); requestDraft(false);
    const doc = topicOf(replies) || topic;
    if (topicOf(replies)) topic = topicOf(replies);
    const g = await getJSON("/api/copilot/guides?q=" + encodeURIComponent(text) + (doc ? "&doc=" + encodeURIComponent(doc) : ""));
    if (g && g.ok) renderGuides(g.data);
    else if (g) $("guides").replaceChildren(el("p", "warn", (g.data && g.data.message) || "办事指南暂时无法查询。"));
    if (replies) { suggest(replies); track(text, replies); }
  }

  async function analyse(text) {
    text = text.trim(); if (!text) return;
    $("status").textContent = "分析中……";
    const chat = await postJSON("/api/chat", {sender, message: text, audience: "agent"});
    $("status").textContent = chat.ok ? "" : ((chat.data && chat.data.message) || "助手暂时无法回复");
    await handle(text, (chat.data && chat.data.replies) || []);
  }

  async function loadHandoffs() {
    const r = await getJSON("/api/copilot/handoffs?limit=10");
    if (!r) return;
    const box = $("handoffs"); box.replaceChildren();
    const rows = (r.data && r.data.handoffs) || [];
    if (!rows.length) { box.appendChild(el("p", "muted", "暂无转人工记录。")); return; }
    for (const h of rows) {
      const card = el("article", "card handoff");
      card.appendChild(el("h3", null, h.headline || "市民请求人工服务"));
      card.appendChild(el("p", "meta", (h.created_at || "").replace("T", " ").slice(0, 19) + " · " + (h.sender_id || "")));
      if ((h.questions || []).length) {
        const ul = el("ul"); for (const q of h.questions) ul.appendChild(el("li", null, q)); card.appendChild(ul);
      }
      if ((h.guides_shown || []).length) card.appendChild(el("p", "meta", "已展示：" + h.guides_shown.join("；")));
      const slots = Object.entries(h.slots || {}).filter(([k, v]) => typeof v !== "object");
      if (slots.length) card.appendChild(el("p", "meta", slots.map(([k, v]) => k + "=" + v).join("，")));
      box.appendChild(card);
    }
  }

  // Call audio streamed as 16 kHz PCM to /api/voice/stream every PIECE_MS. The server decodes
  // overlapping windows and stitches them on word times, so a word spoken across a window
  // boundary survives; the running transcript is shown as it grows, and each finished sentence
  // is analysed like a typed line.
  const PIECE_MS = 2000, RATE = 16000;
  let listening = false, media = null, ctx = null, node = null, pcm = [], timer = null;
  let callId = null, pending = "", queue = Promise.resolve();
  function toPcm16(input, rate) {  // mono float at the context's rate -> 16 kHz 16-bit
    const ratio = rate / RATE, n = Math.floor(input.length / ratio), out = new Int16Array(n);
    for (let i = 0; i < n; i++) {
      const a = Math.floor(i * ratio), b = Math.max(a + 1, Math.floor((i + 1) * ratio));
      let sum = 0; for (let j = a; j < b; j++) sum += input[j];
      const v = Math.max(-1, Math.min(1, sum / (b - a))); out[i] = v < 0 ? v * 0x8000 : v * 0x7fff;
    }
    return out;
  }
  function showLive(text, tentative) {
    const box = $("live"); box.replaceChildren();
    box.appendChild(document.createTextNode(text));
    if (tentative) box.appendChild(el("span", "muted", tentative));
    box.scrollTop = box.scrollHeight;
  }
  async function sendPiece(end, call, caller) {  // call and caller as they were when it was queued
    const n = pcm.reduce((a, b) => a + b.length, 0), body = new Int16Array(n);
    let at = 0; for (const p of pcm) { body.set(p, at); at += p.length; } pcm = [];
    let r, data = {};
    try {
      r = await fetch("/api/voice/stream?call=" + encodeURIComponent(call) + (end ? "&end=1" : ""),
        {method: "POST", body: body.buffer, headers: {"Content-Type": "application/octet-stream"}, credentials: "same-origin"});
      data = await r.json().catch(() => ({}));
    } catch (e) { r = {ok: false}; data = {message: "网络连接失败，通话转写暂停。"}; }
    if (caller !== sender) return;  // the call was ended with 新来电: its rest belongs to no one now
    if (!r.ok) { $("status").textContent = data.message || "通话转写暂时不可用。"; return; }
    showLive(data.text || "", end ? "" : (data.tentative || ""));
    pending += data.final || "";
    const m = end ? [pending, pending] : pending.match(/^(.*[。？！?!])/s);  // whole sentences only
    if (m && m[1].trim()) { pending = pending.slice(m[1].length); await analyse(m[1]); }
  }
  function stopListening() {
    listening = false; $("listen").textContent = "开始收听通话"; clearInterval(timer);
    if (node) node.disconnect(); if (ctx) ctx.close(); if (media) media.getTracks().forEach(t => t.stop());
    node = ctx = media = null;
    const call = callId, caller = sender;
    queue = queue.then(() => sendPiece(true, call, caller));
  }
  async function listen() {
    if (listening) { stopListening(); return; }
    try { media = await navigator.mediaDevices.getUserMedia({audio: true}); }
    catch (e) { $("status").textContent = "无法使用麦克风或通话音频。"; return; }
    listening = true; $("listen").textContent = "停止收听"; callId = newId("call-"); pending = ""; pcm = [];
    showLive("", "正在收听……");
    ctx = new AudioContext();
    node = ctx.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = e => { if (listening) pcm.push(toPcm16(e.inputBuffer.getChannelData(0), ctx.sampleRate)); };
    ctx.createMediaStreamSource(media).connect(node); node.connect(ctx.destination);
    const call = callId, caller = sender;
    timer = setInterval(() => { queue = queue.then(() => sendPiece(false, call, caller)); }, PIECE_MS);
  }

  $("form").addEventListener("submit", ev => { ev.preventDefault(); const t = $("caller").value; $("caller").value = ""; analyse(t); });
  $("caller").addEventListener("keydown", ev => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); $("form").requestSubmit(); }
  });
  $("copy").addEventListener("click", async () => { if (suggestion) $("copy").textContent = (await copyText(suggestion)) ? "已复制" : "复制失败"; });
  $("listen").addEventListener("click", listen);
  $("newcall").addEventListener("click", () => {
    if (listening) stopListening();
    sender = newId("copilot-"); bundle = null; suggestion = ""; topic = "";
    $("said").replaceChildren(); $("live").replaceChildren(); $("suggest").textContent = "（等待来电内容）"; renderBundle();
    $("guides").replaceChildren(el("p", "muted", "输入来电内容后显示最相关的办事指南。"));
    resetTicket();
  });
  loadTicketMeta(); loadHandoffs(); setInterval(loadHandoffs, 15000);
})();
