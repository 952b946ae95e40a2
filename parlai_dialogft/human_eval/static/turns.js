// The per-turn page: a conversation so far, two candidate next replies, a choice and a reason.
// The page never learns which model wrote which reply. Shared parts: page.js.
"use strict";

const state = { session: null, me: null, current: null };

function show(section) {
  for (const id of ["turns", "done"]) $(id).hidden = id !== section;
}

// The newest context turn is the user's; the candidates answer it as the assistant.
const SPEAKER = { user: "Person", assistant: "Responder" };

async function nextItem(more) {
  const next = await api("GET", "/api/turns/next" + (more ? "?more=1" : ""));
  if (next.stage === "done") return finished(next.more_available);
  if (next.stage === "blocked") return stop("blocked", "Thank you for your time. You cannot continue: " + next.reason + ".");
  if (next.stage === "no_work") return stop("no_work", "There is nothing left to judge for you right now. Thank you!");
  state.current = next;
  $("stage-note").textContent = next.stage === "onboarding"
    ? "Practice round: these items have a right answer you must find to continue." : "";
  $("progress").textContent = (next.stage === "onboarding" ? "Practice " : "Item ") + next.number + " of " + next.total;
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
  $("choice-left").checked = $("choice-right").checked = false;
  $("justification").value = "";
  updateSubmit();
  show("turns");
  setState(next.stage === "onboarding" ? "onboarding" : "turns");
  window.scrollTo(0, 0);
  $("context-heading").focus();  // keyboard and screen-reader users start at the new conversation
}

function updateSubmit() {
  const chosen = $("choice-left").checked || $("choice-right").checked;
  const typed = $("justification").value.trim().length;
  const needed = state.me.min_justification_chars;
  $("justification-hint").textContent = typed >= needed ? "" : "At least " + needed + " characters.";
  $("submit").disabled = !(chosen && typed >= needed);
}

async function submitJudgment(event) {
  event.preventDefault();
  const left = $("choice-left").checked;
  if (!left && !$("choice-right").checked) return say("Choose the better reply first.");
  $("submit").disabled = true;
  try {
    const result = await api("POST", "/api/turns/" + encodeURIComponent(state.current.assignment_id),
                             { choice: left ? "left" : "right", justification: $("justification").value });
    if (result.stage === "blocked") return stop("blocked", "Thank you for your time. You cannot continue: " + result.reason + ".");
    say(result.onboarding === "passed" ? "You passed the practice round. Now the real items." : "");
    await nextItem(false);
  } catch (error) {
    say(error.message);
    updateSubmit();
  }
}

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
  $("judge").addEventListener("submit", submitJudgment);
  $("choice-left").addEventListener("change", updateSubmit);
  $("choice-right").addEventListener("change", updateSubmit);
  $("justification").addEventListener("input", updateSubmit);
  document.addEventListener("keydown", shortcut);
  $("more").addEventListener("click", () => nextItem(true).catch((e) => stop("error", e.message)));
  try {
    state.me = await api("GET", "/api/me");
    await nextItem(false);
  } catch (error) {
    stop("error", error.message);
  }
}

main();
