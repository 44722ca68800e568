// Shared helpers. Reply text is only ever set with textContent, never as HTML.
"use strict";
const QP = (() => {
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function newId(prefix) {
    const a = new Uint8Array(8);
    crypto.getRandomValues(a);
    return prefix + Array.from(a, b => b.toString(16).padStart(2, "0")).join("");
  }
  async function postJSON(url, body) {
    try {
      const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                  body: JSON.stringify(body), credentials: "same-origin"});
      const data = await r.json().catch(() => ({}));
      return {ok: r.ok, status: r.status, data};
    } catch (e) {
      return {ok: false, status: 0, data: {message: "网络连接失败，请稍后再试，或拨打12345市民服务热线。"}};
    }
  }
  async function copyText(text) {
    try { await navigator.clipboard.writeText(text); return true; } catch (e) { /* fall back */ }
    const t = el("textarea"); t.value = text; document.body.appendChild(t); t.select();
    let ok = false; try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    t.remove(); return ok;
  }
  // Hold-to-talk: MediaRecorder while the button is held, then one POST to /api/voice.
  function holdToTalk(button, onAudio, onState) {
    let rec = null, chunks = [], stream = null, holding = false;
    async function start(ev) {
      ev.preventDefault();
      if (holding) return;
      holding = true;
      try {
        stream = await navigator.mediaDevices.getUserMedia({audio: true});
      } catch (e) { holding = false; onState("error", "无法使用麦克风，请改用文字输入。"); return; }
      if (!holding) { stream.getTracks().forEach(t => t.stop()); return; }
      chunks = [];
      rec = new MediaRecorder(stream);
      rec.ondataavailable = e => { if (e.data && e.data.size) chunks.push(e.data); };
      rec.onstop = () => {
        stream.getTracks().forEach(t => t.stop());
        const blob = new Blob(chunks, {type: rec.mimeType || "audio/webm"});
        onState("sending");
        onAudio(blob);
      };
      rec.start();
      onState("recording");
    }
    function stop(ev) {
      if (ev) ev.preventDefault();
      if (!holding) return;
      holding = false;
      if (rec && rec.state === "recording") rec.stop();
    }
    button.addEventListener("pointerdown", start);
    button.addEventListener("pointerup", stop);
    button.addEventListener("pointerleave", stop);
    button.addEventListener("pointercancel", stop);
    button.addEventListener("contextmenu", e => e.preventDefault());
  }
  async function sendVoice(blob, sender, audience) {
    const fd = new FormData();
    fd.append("audio", blob, "speech.webm");
    fd.append("sender", sender);
    try {
      const url = "/api/voice" + (audience ? "?audience=" + encodeURIComponent(audience) : "");
      const r = await fetch(url, {method: "POST", body: fd, credentials: "same-origin"});
      const data = await r.json().catch(() => ({}));
      return {ok: r.ok, status: r.status, data};
    } catch (e) {
      return {ok: false, status: 0, data: {message: "网络连接失败，请稍后再试，或拨打12345市民服务热线。"}};
    }
  }
  // The lines of a finished 一件事 checklist (bundle_outcome.checklist), by heading.
  function checklistSections(outcome) {
    const c = outcome.checklist || {};
    const mat = m => m.name + "（" + (m.form || "") + "）" + (m.conditional ? "（如适用）" : "") +
      (m.exempt ? "【免于提交" + (m.exempt_reason ? "：" + m.exempt_reason : "") + "】" : "");
    const item = s => s.text + (s.conditional ? "（如适用）" : "");
    return [["需要准备的材料", (c.materials || []).map(mat)], ["办理步骤", (c.steps || []).map(item)],
            ["办理地点", (c.where || []).map(item)], ["网上办理入口", (c.online || []).map(item)],
            ["办理时长", (c.timeline || []).map(item)]].filter(s => s[1].length);
  }
  // Rasa's REST channel sends text (+ buttons) and the custom payload of one utterance as two
  // messages: put a custom-only message back onto the text before it.
  function mergeReplies(replies) {
    const out = [];
    for (const r of replies || []) {
      const prev = out[out.length - 1];
      if (!r.text && r.custom && prev && !prev.custom) prev.custom = r.custom;
      else out.push(Object.assign({}, r));
    }
    return out;
  }
  return {el, newId, mergeReplies, postJSON, copyText, holdToTalk, sendVoice, checklistSections};
})();
