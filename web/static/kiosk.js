// Service-hall kiosk: push-to-talk, transcript and answer in large type, read aloud (zh-CN),
// and after `idle` seconds without activity (?idle=N, default 60) back to the welcome screen
// with everything cleared and a new conversation id.
"use strict";
(() => {
  const {newId, mergeReplies, postJSON, holdToTalk, sendVoice} = QP;
  const params = new URLSearchParams(location.search);
  const IDLE_S = Math.max(1, Number(params.get("idle")) || 60);
  const $ = id => document.getElementById(id);
  const welcome = $("welcome"), turn = $("turn"), transcript = $("transcript"), answer = $("answer");
  const sources = $("sources"), status = $("status"), talk = $("talk"), input = $("text");
  let sender = newId("kiosk-"), timer = null, generation = 0, pending = 0;
  window.kioskSpoken = [];

  function speak(text) {
    window.kioskSpoken.push(text);
    if (!("speechSynthesis" in window)) return;
    try {
      speechSynthesis.cancel();
      const u = new SpeechSynthesisUtterance(text.replace(/[《》【】]/g, ""));
      u.lang = "zh-CN"; u.rate = 1.0;
      const zh = speechSynthesis.getVoices().find(v => v.lang && v.lang.toLowerCase().startsWith("zh"));
      if (zh) u.voice = zh;
      speechSynthesis.speak(u);
    } catch (e) { /* no speech on this device: the answer is on screen */ }
  }

  function resetIdle() {
    clearTimeout(timer);
    // a question still being answered keeps the screen (the gateway and Rasa have their own timeouts)
    timer = setTimeout(() => (pending ? resetIdle() : reset()), IDLE_S * 1000);
  }

  function reset() {
    generation++;  // a reply still on its way is dropped
    try { if ("speechSynthesis" in window) speechSynthesis.cancel(); } catch (e) { /* ignore */ }
    transcript.textContent = ""; answer.textContent = ""; sources.replaceChildren();
    status.textContent = ""; input.value = "";
    turn.hidden = true; welcome.hidden = false;
    document.body.dataset.state = "welcome";
    sender = newId("kiosk-"); window.kioskSpoken = [];
    talk.textContent = "按住 说话"; talk.classList.remove("rec");
  }

  function show(said, replies) {
    replies = mergeReplies(replies);
    welcome.hidden = true; turn.hidden = false; document.body.dataset.state = "answered";
    transcript.textContent = said;
    const texts = replies.map(r => r.text).filter(Boolean);
    answer.textContent = texts.join("\n");
    sources.replaceChildren();
    const custom = replies.map(r => r.custom).find(c => c && c.sources && c.sources.length);
    for (const s of (custom ? custom.sources.slice(0, 3) : [])) {
      const li = document.createElement("li"); li.textContent = "来源：" + s.citation; sources.appendChild(li);
    }
    if (texts.length) speak(texts.join("。"));
    resetIdle();
  }

  async function ask(text) {
    text = text.trim(); if (!text) return;
    const g = generation; status.textContent = "正在查询……";
    pending++;
    const r = await postJSON("/api/chat", {sender, message: text}).finally(() => pending--);
    if (g !== generation) return;
    status.textContent = "";
    show(text, (r.data && r.data.replies) || [{text: (r.data && r.data.message) || "系统暂时繁忙，请拨打12345。"}]);
  }

  holdToTalk(talk, async blob => {
    const g = generation;
    pending++;
    const r = await sendVoice(blob, sender).finally(() => pending--);
    if (g !== generation) return;
    talk.textContent = "按住 说话"; talk.classList.remove("rec");
    if (!r.data || !r.data.transcript) {
      status.textContent = (r.data && r.data.message) || "没有听清，请靠近话筒再说一遍。";
      resetIdle(); return;
    }
    status.textContent = "";
    show(r.data.transcript, r.data.replies && r.data.replies.length ? r.data.replies : [{text: r.data.message || ""}]);
  }, (state, msg) => {
    resetIdle();
    if (state === "recording") { talk.textContent = "松开 结束"; talk.classList.add("rec"); status.textContent = "正在听，请说话……"; }
    else if (state === "sending") { talk.textContent = "识别中……"; talk.classList.remove("rec"); status.textContent = "正在识别……"; }
    else { talk.textContent = "按住 说话"; talk.classList.remove("rec"); status.textContent = msg || ""; }
  });
  $("form").addEventListener("submit", ev => { ev.preventDefault(); const t = input.value; input.value = ""; ask(t); });
  for (const ev of ["pointerdown", "keydown", "touchstart"]) document.addEventListener(ev, resetIdle, {passive: true});
  reset(); resetIdle();
})();
