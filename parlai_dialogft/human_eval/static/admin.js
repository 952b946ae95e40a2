// The admin page: tables filled from /admin/api with textContent only (justifications and
// worker ids are untrusted text).
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || ("error " + response.status));
  return data;
}

function table(id, rows, columns) {
  const node = $(id);
  node.replaceChildren();
  const head = document.createElement("tr");
  for (const c of columns) { const th = document.createElement("th"); th.textContent = c; head.append(th); }
  node.append(head);
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const c of columns) {
      const td = document.createElement("td");
      const value = row[c];
      td.textContent = value === null || value === undefined ? "" : String(value);
      tr.append(td);
    }
    node.append(tr);
  }
}

async function refresh() {
  const progress = await api("GET", "/admin/api/progress");
  const summary = Object.entries(progress).filter(([, v]) => typeof v !== "object")
    .map(([k, v]) => ({ what: k, count: v }));
  for (const [kind, n] of Object.entries(progress.pairings)) summary.push({ what: "pairings: " + kind, count: n });
  for (const [kind, n] of Object.entries(progress.turn_items)) summary.push({ what: "turn items: " + kind, count: n });
  table("progress", summary, ["what", "count"]);
  table("pairs", progress.judgments_per_pair, ["pair_id", "model_a", "model_b", "n"]);
  const workers = await api("GET", "/admin/api/workers");
  table("workers", workers.workers, ["worker_id", "platform", "onboarding", "judgments", "turn_onboarding", "turn_judgments",
                                     "chats", "finished", "completion_code", "blocked"]);
  table("flags", workers.flags, ["worker_id", "kind", "detail"]);
  table("blocklist", (await api("GET", "/admin/api/blocklist")).blocklist, ["worker_id", "reason"]);
  table("judgments", (await api("GET", "/admin/api/judgments")).judgments,
        ["worker_id", "question", "winner", "left_model", "justification", "duration_s", "is_attention_check", "passed_check"]);
  document.body.dataset.state = "ready";
}

async function main() {
  for (const name of ["pairwise-csv", "pairwise-json", "chats-csv", "chats-json"]) {
    $("export-" + name).href = "/admin/api/export/" + name.replace("-", ".") + "?token=" + encodeURIComponent(token);
  }
  $("block-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/admin/api/blocklist", { worker_id: $("block-worker").value, reason: $("block-reason").value });
      await refresh();
    } catch (error) { $("message").textContent = error.message; $("message").hidden = false; }
  });
  try { await refresh(); } catch (error) {
    $("message").textContent = error.message; $("message").hidden = false;
    document.body.dataset.state = "error";
  }
}

main();
