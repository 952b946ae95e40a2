"""A page in a real browser: Debian's headless ``chromium`` driven over the Chrome DevTools
Protocol (a websocket, via ``websocket-client``), clicked and typed into as a person would.

``CHROMIUM`` is None where no chromium is installed; conftest skips ``@pytest.mark.browser``
tests then (and fails them under CI).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Browser:
    """One headless Chromium with one page, spoken to over the DevTools protocol."""

    def __init__(self, timeout=30.0):
        import websocket

        self.profile = tempfile.mkdtemp(prefix="he-chromium-")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "--window-size=1200,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = self._devtools_port(timeout)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as response:
            page = next(t for t in json.loads(response.read()) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
        self.next_id = 0
        self.events = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _devtools_port(self, timeout):
        # Chromium prints "DevTools listening on ws://127.0.0.1:PORT/..." once it is ready.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if "DevTools listening on" in line:
                return int(line.split("127.0.0.1:", 1)[1].split("/", 1)[0])
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError("chromium did not start its DevTools server")

    def call(self, method, **params):
        self.next_id += 1
        mine = self.next_id
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == mine:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)
                if message["method"] == "Page.javascriptDialogOpening":  # never leave a page stuck
                    self.ws.send(json.dumps({"id": 0, "method": "Page.handleJavaScriptDialog",
                                             "params": {"accept": True}}))

    def js(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails'].get('text')} "
                               f"{result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result["result"].get("value")

    def open(self, url):
        self.call("Page.navigate", url=url)

    def wait_for(self, expression, timeout=60.0):
        """Poll until ``expression`` is truthy in the page; its value. Fails with the page's state."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.js(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                state = self.js("document.body && document.body.dataset.state")
                message = self.js("(document.getElementById('message') || {}).textContent")
                raise AssertionError(f"page never satisfied {expression!r}; state {state!r}, message {message!r}")
            time.sleep(0.05)

    def state_is(self, *states, timeout=60.0):
        wanted = json.dumps(list(states))
        self.wait_for(f"{wanted}.includes(document.body.dataset.state)", timeout)
        return self.js("document.body.dataset.state")

    def click(self, selector):
        self.js(f"document.querySelector({json.dumps(selector)}).click()")

    def type(self, selector, text):
        """Focus the field and type as a keyboard would (input events fire)."""
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    # Named keys: the text they type and their key code (characters type themselves).
    KEYS = {"Enter": ("\r", 13), " ": (" ", 32)}

    def press(self, key):
        """One key pressed and released where the focus is, as a keyboard would (keydown, keypress, keyup)."""
        text, code = self.KEYS.get(key, (key, ord(key.upper()) if len(key) == 1 else 0))
        self.call("Input.dispatchKeyEvent", type="keyDown", key=key, code=key if len(key) > 1 else "",
                  text=text, windowsVirtualKeyCode=code)
        self.call("Input.dispatchKeyEvent", type="keyUp", key=key, windowsVirtualKeyCode=code)

    def focused(self):
        return self.js("document.activeElement && document.activeElement.id")

    def text(self, selector):
        return self.js(f"document.querySelector({json.dumps(selector)}).textContent")

    def dialogs(self):
        return [e for e in self.events if e["method"] == "Page.javascriptDialogOpening"]

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)
