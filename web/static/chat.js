// Citizen chat over the REST channel (/api/chat). History and sender id live in localStorage.
"use strict";
(() => {
  const {el, newId, mergeReplies, postJSON, copyText, holdToTalk, sendVoice, checklistSections} = QP;
  const KEY_SENDER = "qp.chat.sender", KEY_LOG = "qp.chat.log", MAX_KEPT = 200;
  const WELCOME = "您好，我是青浦\"一网通办\"智能助手。请问您想办理什么事？例如：开个小饭店要准备啥？";
  const log = document.getElementById("log"), chips = document.getElementById("chips");
  const input = document.getElementById("text"), status = document.getElementById("status");
  let sender = localStorage.getItem(KEY_SENDER);
  if (!sender) { sender = newId("web-"); localStorage.setItem(KEY_SENDER, sender); }
  let messages = [];
  try { messages = JSON.parse(localStorage.getItem(KEY_LOG) || "[]"); } catch (e) { messages = []; }
  let busy = false;

  function save() {
    messages = messages.slice(-MAX_KEPT);
    try { localStorage.setItem(KEY_LOG, JSON.stringify(messages)); } catch (e) { /* full: keep in memory */ }
  }

  function renderSources(sources) {
    const d = el("details", "sources");
    d.appendChild(el("summary", null, "查看来源（" + sources.length + "）"));
    const ul = el("ul");
    for (const s of sources) {
      const li = el("li");
      li.appendChild(el("span", "cite", s.citation || ("《" + s.title + "》" + (s.section || ""))));
      if (s.meta && s.meta.department) li.appendChild(el("span", "dept", s.meta.department));
      ul.appendChild(li);
    }
    d.appendChild(ul);
    return d;
  }

  function renderRating(m) {
    const box = el("div", "rate");
    const c = m.custom;
    if (m.rating) {
      box.appendChild(el("span", "done", m.rating === "good" ? "已好评，感谢您的评价" : "已差评，我们会改进"));
      return box;
    }
    const good = el("button", "good", "好评"), bad = el("button", "bad", "差评");
    good.type = bad.type = "button";
    const send = async (rating, reason) => {
      const r = await postJSON("/api/feedback", {answer_id: c.answer_id, rating, reason: reason || "", sender});
      if (r.ok) { m.rating = rating; save(); box.replaceWith(renderRating(m)); }
      else status.textContent = (r.data && r.data.message) || "评价没有保存成功，请稍后再试。";
    };
    good.addEventListener("click", () => send("good"));
    bad.addEventListener("click", () => {
      if (box.querySelector("form")) return;
      const f = el("form", "reason");
      const i = el("input"); i.placeholder = "可选：说说哪里不满意"; i.maxLength = 300; i.name = "reason";
      const b = el("button", null, "提交差评"); b.type = "submit";
      f.append(i, b);
      f.addEventListener("submit", ev => { ev.preventDefault(); send("bad", i.value.trim()); });
      box.appendChild(f); i.focus();
    });
    box.append(good, bad);
    return box;
  }

  function renderChecklist(m) {
    const o = m.custom.bundle_outcome;
    const card = el("div", "checklist");
    card.appendChild(el("h3", null, "【" + (o.name || "一件事") + "】" + (o.title || "")));
    if (o.explanation) card.appendChild(el("p", "expl", o.explanation));
    for (const c of o.caveats || []) card.appendChild(el("p", "caveat", "提示：" + c));
    for (const [heading, items] of checklistSections(o)) {
      card.appendChild(el("h4", null, heading));
      const list = el(heading === "需要准备的材料" || heading === "办理步骤" ? "ol" : "ul");
      for (const t of items) list.appendChild(el("li", null, t));
      card.appendChild(list);
    }
    const copy = el("button", "copy", "复制清单"); copy.type = "button";
    copy.addEventListener("click", async () => {
      const ok = await copyText(m.text);
      copy.textContent = ok ? "已复制" : "复制失败，请长按选择文字";
    });
    card.appendChild(copy);
    return card;
  }

  function render(m) {
    const row = el("div", "msg " + m.role);
    if (m.role === "bot" && m.custom && m.custom.bundle_outcome) {
      row.classList.add("outcome");
      row.appendChild(renderChecklist(m));
    } else {
      row.appendChild(el("div", "bubble", m.text));
    }
    if (m.role === "bot" && m.custom && m.custom.answer_id) {
      if ((m.custom.sources || []).length) row.appendChild(renderSources(m.custom.sources));
      row.appendChild(renderRating(m));
    }
    log.appendChild(row);
    return row;
  }

  function showChips() {
    chips.replaceChildren();
    const last = messages[messages.length - 1];
    if (!last || last.role !== "bot") return;
    for (const b of last.buttons || []) {
      const c = el("button", "chip", b.title); c.type = "button";
      c.addEventListener("click", () => send(b.payload, b.title));
      chips.appendChild(c);
    }
  }

  function scroll() { window.scrollTo(0, document.body.scrollHeight); }

  function addReplies(replies) {
    for (const r of mergeReplies(replies)) {
      if (!r.text && !r.custom && !(r.buttons || []).length) continue;
      const m = {role: "bot", text: r.text || "", buttons: r.buttons || [], custom: r.custom || null};
      messages.push(m); render(m);
    }
    save(); showChips(); scroll();
  }

  function addUser(text) {
    const m = {role: "user", text};
    messages.push(m); render(m); save(); chips.replaceChildren(); scroll();
  }

  async function send(message, shown) {
    message = (message || "").trim();
    if (!message || busy) return;
    busy = true; status.textContent = "正在思考……";
    addUser(shown || message);
    const r = await postJSON("/api/chat", {sender, message});
    status.textContent = "";
    addReplies((r.data && r.data.replies) || [{text: (r.data && r.data.message) || "系统暂时繁忙，请拨打12345。"}]);
    busy = false;
  }

  document.getElementById("form").addEventListener("submit", ev => {
    ev.preventDefault(); const t = input.value; input.value = ""; send(t);
  });
  document.getElementById("reset").addEventListener("click", () => {
    messages = []; sender = newId("web-"); localStorage.setItem(KEY_SENDER, sender); save();
    log.replaceChildren(); chips.replaceChildren(); render({role: "bot", text: WELCOME});
  });
  const talk = document.getElementById("talk");
  holdToTalk(talk, async blob => {
    const r = await sendVoice(blob, sender);
    talk.textContent = "按住 说话"; talk.classList.remove("rec");
    if (!r.ok && !(r.data && r.data.transcript)) { status.textContent = (r.data && r.data.message) || "没有听清，请再说一遍。"; return; }
    status.textContent = "";
    if (r.data.transcript) addUser(r.data.transcript);
    addReplies(r.data.replies && r.data.replies.length ? r.data.replies : [{text: r.data.message || ""}]);
  }, (state, msg) => {
    if (state === "recording") { talk.textContent = "松开 发送"; talk.classList.add("rec"); status.textContent = "正在听……"; }
    else if (state === "sending") { talk.textContent = "识别中……"; status.textContent = "正在识别语音……"; }
    else { talk.textContent = "按住 说话"; talk.classList.remove("rec"); status.textContent = msg || ""; }
  });

  // corrected answers to this conversation's 差评 (已整改), shown once, then rated like any answer
  async function notices() {
    const r = await postJSON("/api/notices", {sender});
    if (r.ok && r.data.replies && r.data.replies.length) addReplies(r.data.replies);
  }

  render({role: "bot", text: WELCOME});
  for (const m of messages) render(m);
  showChips(); scroll();
  notices();
})();
