// The judgment form of both task pages (work.js: ACUTE comparisons, turns.js: per-turn
// items): the next item of the worker's queue, the practice note and progress, a choice of
// left or right with a reason, the answer, and the stages that end a task. Both pages have
// the same elements for it (#judge, #choice-left, #choice-right, #justification, #submit,
// #stage-note, #progress, #more); what differs is said once, in the task given to
// judgments(task):
//   path          the API's prefix: GET path + "/next", POST path + "/" + assignment id
//   section       the <section> shown, and the body's state outside practice
//   noun          progress's word for an item ("Comparison 2 of 5")
//   practiceNote  shown above a practice item
//   nothingLeft   shown when the queue has nothing for the worker
//   passed        shown after the practice round is passed
//   chooseFirst   shown when the form is sent without a choice
//   fill(next)    puts the item's texts on the page
//   shown()       optional: after the section is shown
// Uses page.js, and the page's `state` (with `me`) and `show(section)`.
"use strict";

let judgmentTask = null;

function judgments(task) {
  judgmentTask = task;
  $("judge").addEventListener("submit", submitJudgment);
  $("choice-left").addEventListener("change", updateSubmit);
  $("choice-right").addEventListener("change", updateSubmit);
  $("justification").addEventListener("input", updateSubmit);
  $("more").addEventListener("click", () => nextJudgment(true).catch((e) => stop("error", e.message)));
}

async function nextJudgment(more) {
  const task = judgmentTask;
  const next = await api("GET", task.path + "/next" + (more ? "?more=1" : ""));
  if (next.stage === "done") return finished(next.more_available);
  if (next.stage === "blocked") return blocked(next.reason);
  if (next.stage === "no_work") return stop("no_work", task.nothingLeft);
  state.current = next;
  const practice = next.stage === "onboarding";
  $("stage-note").textContent = practice ? task.practiceNote : "";
  $("progress").textContent = (practice ? "Practice " : task.noun + " ") + next.number + " of " + next.total;
  task.fill(next);
  $("choice-left").checked = $("choice-right").checked = false;
  $("justification").value = "";
  updateSubmit();
  show(task.section);
  setState(practice ? "onboarding" : task.section);
  window.scrollTo(0, 0);
  if (task.shown) task.shown();
}

// Submit needs a choice and a reason of the study's length; a page with #justification-hint
// says how long.
function updateSubmit() {
  const chosen = $("choice-left").checked || $("choice-right").checked;
  const typed = $("justification").value.trim().length;
  const needed = state.me.min_justification_chars;
  const hint = $("justification-hint");
  if (hint) hint.textContent = typed >= needed ? "" : "At least " + needed + " characters.";
  $("submit").disabled = !(chosen && typed >= needed);
}

async function submitJudgment(event) {
  event.preventDefault();
  const task = judgmentTask;
  const left = $("choice-left").checked;
  if (!left && !$("choice-right").checked) return say(task.chooseFirst);
  $("submit").disabled = true;
  try {
    const result = await api("POST", task.path + "/" + encodeURIComponent(state.current.assignment_id),
                             { choice: left ? "left" : "right", justification: $("justification").value });
    if (result.stage === "blocked") return blocked(result.reason);
    say(result.onboarding === "passed" ? task.passed : "");
    await nextJudgment(false);
  } catch (error) {
    say(error.message);
    updateSubmit();
  }
}
