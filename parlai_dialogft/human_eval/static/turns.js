// The per-turn page: a conversation so far, two candidate next replies, a choice and a reason.
// The page never learns which model wrote which reply. Shared parts: page.js, and
// judgment.js for the form.
"use strict";

const state = { session: null, me: null, current: null };

function show(section) {
  for (const id of ["turns", "done"]) $(id).hidden = id !== section;
}

// The newest context turn is the user's; the candidates answer it as the assistant.
const SPEAKER = { user: "Person", assistant: "Responder" };

function fillItem(next) {
  const list = $("context");
  list.replaceChildren();
  for (const turn of next.context) {
    const item = el("li", null, turn.role);
    item.append(el("span", SPEAKER[turn.role] || turn.role, "who"), el("span", turn.text, "text"));
    list.append(item);
  }
  $("question").textContent = next.question;
  $("left").textContent = next.left;
  $("right").textContent = next.right;
}

const TURNS = {
  path: "/api/turns",
  section: "turns",
  noun: "Item",
  practiceNote: "Practice round: these items have a right answer you must find to continue.",
  nothingLeft: "There is nothing left to judge for you right now. Thank you!",
  passed: "You passed the practice round. Now the real items.",
  chooseFirst: "Choose the better reply first.",
  fill: fillItem,
  shown: () => $("context-heading").focus(),  // keyboard and screen-reader users start at the new conversation
};

// Keys 1 and 2 choose a reply, unless the worker is typing their reason.
function shortcut(event) {
  if ($("turns").hidden || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target && ["TEXTAREA", "INPUT"].includes(event.target.tagName) && event.target.type !== "radio") return;
  const box = { "1": "choice-left", "2": "choice-right" }[event.key];
  if (!box) return;
  event.preventDefault();
  $(box).checked = true;
  $(box).focus();
  updateSubmit();
}

async function main() {
  state.session = takeSession();
  if (!state.session) return stop("error", "Open the link you were given to start.");
  judgments(TURNS);
  document.addEventListener("keydown", shortcut);
  try {
    state.me = await api("GET", "/api/me");
    await nextJudgment(false);
  } catch (error) {
    stop("error", error.message);
  }
}

main();
