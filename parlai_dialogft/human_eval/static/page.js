// What the worker pages (work.js, turns.js) share: elements, messages, the API with the
// worker's session, and the endings (finished, blocked, stopped). Their judgment form is
// judgment.js. Every text from the server goes in with
// textContent (never innerHTML): conversations and justifications are data, not markup.
// Each page script defines `state` (with `session`) and `show(section)`.
"use strict";

const $ = (id) => document.getElementById(id);
function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}
function setState(name) { document.body.dataset.state = name; }
function say(text) {
  $("message").textContent = text || "";
  $("message").hidden = !text;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "Authorization": "Bearer " + state.session, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({ error: "the server answered " + response.status }));
  if (!response.ok) throw new Error(data.error || ("error " + response.status));
  return data;
}

// The session token arrives in the link's #s=...; it is kept for the tab and leaves the
// address bar. Null when the worker came without a link.
function takeSession() {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("s");
  if (fromLink) {
    sessionStorage.setItem("he-session", fromLink);
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem("he-session");
}

async function finished(moreAvailable) {
  const done = await api("GET", "/api/done");
  $("done-code").textContent = done.code;
  if (done.url) {
    $("done-link").href = done.url;
    $("done-link-line").hidden = false;
  }
  $("more").hidden = !moreAvailable;
  $("progress").textContent = "";
  show("done");
  setState("done");
}

function stop(name, text) {
  show(null);
  say(text);
  setState(name);
}

function blocked(reason) {
  stop("blocked", "Thank you for your time. You cannot continue: " + reason + ".");
}
