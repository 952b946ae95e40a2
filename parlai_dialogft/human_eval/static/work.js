// The worker page: ACUTE comparisons or a live chat, by the study's protocol. Shared parts:
// page.js, and judgment.js for the comparisons' form.
"use strict";

const state = { session: null, me: null, current: null, chat: null };

function show(section) {
  for (const id of ["pairwise", "chat", "done"]) $(id).hidden = id !== section;
}

// --- pairwise ------------------------------------------------------------------------------

function fillDialogue(list, turns, label) {
  list.replaceChildren();
  for (const turn of turns) {
    const item = el("li", null, turn.evaluated ? "evaluated" : "partner");
    item.append(el("span", turn.evaluated ? label : "Partner", "who"), el("span", turn.text, "text"));
    list.append(item);
  }
}

function choiceText(template) {
  return template.replaceAll("<Speaker 1>", "Speaker 1").replaceAll("<Speaker 2>", "Speaker 2");
}

function fillComparison(next) {
  const q = state.me.questions[next.question];
  fillDialogue($("left"), next.left, "Speaker 1");
  fillDialogue($("right"), next.right, "Speaker 2");
  $("question").textContent = q.question;
  $("choice-left-text").textContent = choiceText(q.s1_choice);
  $("choice-right-text").textContent = choiceText(q.s2_choice);
}

const PAIRWISE = {
  path: "/api/pairwise",
  section: "pairwise",
  noun: "Comparison",
  practiceNote: "Practice round: these comparisons have a right answer you must find to continue.",
  nothingLeft: "There is no comparison left for you right now. Thank you!",
  passed: "You passed the practice round. Now the real comparisons.",
  chooseFirst: "Choose one of the two speakers first.",
  fill: fillComparison,
};

// --- live chat -----------------------------------------------------------------------------

function renderChat() {
  const chat = state.chat;
  const list = $("messages");
  list.replaceChildren();
  for (const m of chat.messages) {
    const item = el("li", null, m.speaker === "human" ? "human" : "bot");
    item.append(el("span", m.speaker === "human" ? "You" : "Partner", "who"), el("span", m.text, "text"));
    list.append(item);
  }
  const last = chat.messages[chat.messages.length - 1];
  const botTurns = chat.messages.filter((m) => m.speaker === "bot").length;
  $("turn").textContent = Math.min(botTurns + 1, chat.turns) + " of " + chat.turns;
  $("problems").hidden = !(last && last.speaker === "bot");
  for (const box of document.querySelectorAll("input[name=problem]")) box.checked = false;
  const over = botTurns >= chat.turns;
  $("say").hidden = over;
  $("rate").hidden = !over;
  setState(over ? "rating" : "chat");
}

function problemOptions() {
  const holder = $("problem-options");
  for (const p of state.me.problems) {
    const label = el("label");
    const box = el("input");
    box.type = "checkbox"; box.name = "problem"; box.value = p.key; box.id = "problem-" + p.key;
    box.addEventListener("change", () => {  // "none" excludes the others, and they exclude it
      if (!box.checked) return;
      for (const other of document.querySelectorAll("input[name=problem]")) {
        if (other !== box && (p.key === "none" || other.value === "none")) other.checked = false;
      }
    });
    label.append(box, " ", el("span", p.name), p.description ? el("small", " (" + p.description + ")") : "");
    holder.append(label);
  }
  const ratings = $("rating-questions");
  for (const r of state.me.ratings) {
    const block = el("div", null, "rating");
    block.append(el("p", r.question));
    const scale = el("div", null, "scale");
    scale.append(el("small", "1 = " + r.low + ", 5 = " + r.high + ": "));
    for (let v = 1; v <= 5; v++) {
      const label = el("label");
      const radio = el("input");
      radio.type = "radio"; radio.name = "rating-" + r.key; radio.value = String(v); radio.id = "rating-" + r.key + "-" + v;
      label.append(radio, " " + v);
      scale.append(label);
    }
    block.append(scale);
    ratings.append(block);
  }
}

function markedProblems() {
  return Array.from(document.querySelectorAll("input[name=problem]:checked")).map((b) => b.value);
}

async function loadChat() {
  const chat = await api("GET", "/api/chat");
  if (chat.stage === "done") return finished(false);
  if (chat.stage === "blocked") return blocked(chat.reason);
  state.chat = chat;
  show("chat");
  renderChat();
}

async function send(event) {
  event.preventDefault();
  const text = $("chat-input").value;
  const needsMarks = !$("problems").hidden;
  const problems = markedProblems();
  if (needsMarks && problems.length === 0) return say("First tick the problems of your partner's last message, or \"No problem\".");
  if (!text.trim()) return say("Write a message first.");
  $("send").disabled = true;
  setState("waiting");
  try {
    const body = { text };
    if (needsMarks) body.problems = problems;
    await api("POST", "/api/chat/" + encodeURIComponent(state.chat.chat_id) + "/message", body);
    $("chat-input").value = "";
    say("");
    await loadChat();
  } catch (error) {
    say(error.message);
    setState("chat");
  } finally {
    $("send").disabled = false;
  }
}

async function finishChat(event) {
  event.preventDefault();
  const problems = markedProblems();
  if (problems.length === 0) return say("First tick the problems of your partner's last message, or \"No problem\".");
  const ratings = {};
  for (const r of state.me.ratings) {
    const picked = document.querySelector("input[name='rating-" + r.key + "']:checked");
    if (!picked) return say("Please answer every question.");
    ratings[r.key] = Number(picked.value);
  }
  try {
    await api("POST", "/api/chat/" + encodeURIComponent(state.chat.chat_id) + "/finish", { problems, ratings });
    say("");
    await finished(false);
  } catch (error) {
    say(error.message);
  }
}

// --- start ---------------------------------------------------------------------------------

async function main() {
  state.session = takeSession();
  if (!state.session) return stop("error", "Open the link you were given to start.");
  judgments(PAIRWISE);
  $("say").addEventListener("submit", send);
  $("rate").addEventListener("submit", finishChat);
  try {
    state.me = await api("GET", "/api/me");
    if (state.me.protocol === "chat") {
      problemOptions();
      await loadChat();
    } else {
      await nextJudgment(false);
    }
  } catch (error) {
    stop("error", error.message);
  }
}

main();
