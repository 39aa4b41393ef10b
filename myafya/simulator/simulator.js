// USSD simulator: plays the Africa's Talking gateway between a phone and our webhooks.
//
// Each step POSTs the session's inputs so far, joined by "*", to the USSD webhook and shows
// the "CON …" or "END …" reply. When a session ends, the page sends the end-of-session
// notification the gateway would send. The SMS inbox polls the sandbox for messages that the
// service sent to the phone number.
"use strict";

(() => {
  const STEP_URL = "/webhooks/africastalking/ussd";
  const EVENTS_URL = "/webhooks/africastalking/ussd/events";
  const MESSAGES_URL = "/sandbox/messages";
  // Africa's Talking reports this network code for its sandbox simulator.
  const SANDBOX_NETWORK_CODE = "99999";
  const INBOX_POLL_MS = 2000;
  // How long a request may take before the page shows a time-out instead of waiting on.
  const REQUEST_TIMEOUT_MS = 15000;

  const root = document.getElementById("simulator");
  const serviceCode = root.dataset.serviceCode;
  const phoneNumber = document.getElementById("phone-number");
  const screen = document.getElementById("screen");
  const answer = document.getElementById("answer");
  const dialButton = document.getElementById("dial");
  const sendButton = document.getElementById("send");
  const cancelButton = document.getElementById("cancel");
  const backspaceButton = document.getElementById("backspace");
  const padKeys = Array.from(document.querySelectorAll("#dial-pad button"));
  const sessionInfo = document.getElementById("session-info");
  const inbox = document.getElementById("inbox");
  const inboxStatus = document.getElementById("inbox-status");

  // The live session, or null between sessions.
  // Fields: id, phone, inputs (strings), hops (requests sent), startedAt (ms), lastResponse.
  let session = null;
  let busy = false;

  function newSessionId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
    return "ATUid_" + hex;
  }

  // State is one of idle, busy, waiting (a CON reply), ended (an END reply), cancelled, error.
  function showScreen(text, state) {
    screen.textContent = text;
    screen.dataset.state = state;
  }

  function updateControls() {
    const live = session !== null;
    dialButton.disabled = live || busy;
    sendButton.disabled = !live || busy;
    cancelButton.disabled = !live;
    answer.disabled = !live || busy;
    backspaceButton.disabled = !live || busy;
    for (const key of padKeys) {
      key.disabled = !live || busy;
    }
    phoneNumber.disabled = live;
  }

  function describeFetchError(error) {
    if (error.name === "TimeoutError") {
      return `no reply within ${REQUEST_TIMEOUT_MS / 1000} s`;
    }
    return `network error (${error.message})`;
  }

  // Format a date as the gateway does in its notifications: "YYYY-MM-DD HH:MM:SS".
  // NOTE: the gateway's documentation gives no time zone for this field, so the page sends UTC.
  function gatewayDate(date) {
    return date.toISOString().slice(0, 19).replace("T", " ");
  }

  async function dial() {
    const phone = phoneNumber.value.trim();
    if (session !== null || busy) {
      return;
    }
    if (phone === "") {
      showScreen("Error: enter a phone number, such as +254700000099, before dialling.", "error");
      return;
    }
    session = {
      id: newSessionId(),
      phone,
      inputs: [],
      hops: 0,
      startedAt: Date.now(),
      lastResponse: "",
    };
    screen.dataset.hops = "0";
    await sendStep(session);
  }

  async function sendAnswer() {
    if (session === null || busy) {
      return;
    }
    session.inputs.push(answer.value);
    answer.value = "";
    await sendStep(session);
  }

  function cancel() {
    if (session === null) {
      return;
    }
    const current = session;
    showScreen("Session cancelled.", "cancelled");
    endSession(current, "Incomplete", "");
  }

  async function sendStep(current) {
    busy = true;
    current.hops += 1;
    screen.dataset.hops = String(current.hops);
    showScreen("Running USSD request…", "busy");
    updateSessionInfo(current);
    updateControls();

    const form = new URLSearchParams({
      sessionId: current.id,
      serviceCode,
      phoneNumber: current.phone,
      networkCode: SANDBOX_NETWORK_CODE,
      text: current.inputs.join("*"),
    });
    let response;
    let body;
    try {
      response = await fetch(STEP_URL, {
        method: "POST",
        body: form,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      body = await response.text();
    } catch (error) {
      if (session === current) {
        failSession(current, describeFetchError(error));
      }
      return;
    } finally {
      busy = false;
      updateControls();
    }

    // The user cancelled while the request was in flight: the reply has no screen to go to.
    if (session !== current) {
      return;
    }
    showReply(current, response.status, body);
  }

  function showReply(current, status, body) {
    if (status !== 200) {
      const detail = body.trim() === "" ? "(empty body)" : body.trim();
      failSession(current, `the service answered HTTP ${status}: ${detail}`);
    } else if (body.startsWith("CON ")) {
      current.lastResponse = body;
      showScreen(body.slice(4), "waiting");
      answer.focus();
    } else if (body.startsWith("END ")) {
      current.lastResponse = body;
      showScreen(body.slice(4), "ended");
      endSession(current, "Success", "");
    } else {
      const received = body === "" ? "(empty body)" : body;
      failSession(current, `the reply starts with neither "CON " nor "END ": ${received}`);
    }
  }

  function failSession(current, message) {
    showScreen(`Error: ${message}`, "error");
    endSession(current, "Failed", message);
  }

  function updateSessionInfo(current, outcome) {
    const requests = current.hops === 1 ? "1 request" : `${current.hops} requests`;
    const state = outcome === undefined ? "live" : outcome;
    sessionInfo.textContent = `Session ${current.id}: ${requests}, ${state}`;
  }

  // Close the session on the page, then send the end-of-session notification.
  function endSession(current, status, errorMessage) {
    session = null;
    updateControls();
    updateSessionInfo(current, `ended (${status})`);

    const form = new URLSearchParams({
      sessionId: current.id,
      serviceCode,
      phoneNumber: current.phone,
      networkCode: SANDBOX_NETWORK_CODE,
      status,
      input: current.inputs.join("*"),
      lastAppResponse: current.lastResponse,
      date: gatewayDate(new Date()),
      cost: "0.0",
      durationInMillis: String(Date.now() - current.startedAt),
      hopsCount: String(current.hops),
      errorMessage,
    });
    sendNotification(current, status, form);
  }

  async function sendNotification(current, status, form) {
    let problem = null;
    try {
      const response = await fetch(EVENTS_URL, {
        method: "POST",
        body: form,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      if (!response.ok) {
        problem = `HTTP ${response.status}: ${(await response.text()).trim()}`;
      }
    } catch (error) {
      problem = describeFetchError(error);
    }
    const outcome = problem === null
      ? `ended (${status}), notification sent`
      : `ended (${status}), notification failed: ${problem}`;
    if (problem !== null) {
      console.warn(`End-of-session notification for ${current.id} failed: ${problem}`);
    }
    // Leave the line alone when a newer session has started, because it shows that session.
    if (session === null) {
      updateSessionInfo(current, outcome);
    }
  }

  function pressKey(key) {
    if (session === null || busy) {
      return;
    }
    answer.value += key;
    answer.focus();
  }

  function deleteLastCharacter() {
    answer.value = answer.value.slice(0, -1);
    answer.focus();
  }

  // SMS inbox. Each poll schedules the next one, so a slow server never piles up requests.
  let pollTimer = 0;
  let renderedInbox = null;

  function scheduleInboxPoll(delay) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(pollInbox, delay);
  }

  async function pollInbox() {
    const phone = phoneNumber.value.trim();
    try {
      if (phone === "") {
        renderInboxStatus("Enter a phone number to see its messages.", "idle");
        renderInbox([]);
        return;
      }
      const response = await fetch(`${MESSAGES_URL}?to=${encodeURIComponent(phone)}`, {
        cache: "no-store",
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      if (!response.ok) {
        const detail = (await response.text()).trim();
        throw new Error(`HTTP ${response.status}: ${detail || "(empty body)"}`);
      }
      const messages = await response.json();
      if (!Array.isArray(messages)) {
        throw new Error("the sandbox returned something other than a JSON list");
      }
      // The number changed while this request was in flight; the next poll shows the new one.
      if (phone !== phoneNumber.value.trim()) {
        return;
      }
      const count = messages.length === 1 ? "1 message" : `${messages.length} messages`;
      renderInboxStatus(`${count} for ${phone}`, "ok");
      renderInbox(messages);
    } catch (error) {
      const reason = error.name === "TimeoutError" ? describeFetchError(error) : error.message;
      renderInboxStatus(`Could not load the inbox: ${reason}`, "error");
    } finally {
      scheduleInboxPoll(INBOX_POLL_MS);
    }
  }

  function renderInboxStatus(text, state) {
    inboxStatus.textContent = text;
    inboxStatus.dataset.state = state;
  }

  // The sandbox lists messages newest last; the inbox shows them newest first.
  function renderInbox(messages) {
    const snapshot = JSON.stringify(messages);
    if (snapshot === renderedInbox) {
      return;
    }
    renderedInbox = snapshot;

    const items = messages.slice().reverse().map((message) => {
      const item = document.createElement("li");
      item.className = "message";
      item.dataset.providerMessageId = String(message.provider_message_id ?? "");

      const meta = document.createElement("div");
      meta.className = "message-meta";
      const sentAt = new Date(message.sent_at);
      const when = Number.isNaN(sentAt.getTime()) ? String(message.sent_at) : sentAt.toLocaleString();
      meta.textContent = `${String(message.channel ?? "").toUpperCase()} · ${when}`;

      const text = document.createElement("div");
      text.className = "message-text";
      text.textContent = String(message.text ?? "");

      item.append(meta, text);
      return item;
    });
    inbox.replaceChildren(...items);
  }

  dialButton.addEventListener("click", dial);
  sendButton.addEventListener("click", sendAnswer);
  cancelButton.addEventListener("click", cancel);
  backspaceButton.addEventListener("click", deleteLastCharacter);
  for (const key of padKeys) {
    key.addEventListener("click", () => pressKey(key.dataset.key));
  }
  answer.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      sendAnswer();
    }
  });
  phoneNumber.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      dial();
    }
  });
  phoneNumber.addEventListener("input", () => {
    renderedInbox = null;
    scheduleInboxPoll(300);
  });

  updateControls();
  pollInbox();
})();
