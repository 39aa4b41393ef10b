// Chat panes: a WhatsApp user writing through Twilio's webhook and a Telegram user writing
// through the bot's webhook.
//
// Each pane posts what the provider would post. WhatsApp messages are Twilio forms signed with
// X-Twilio-Signature. The page has no auth token, so the sandbox's signing helper computes the
// signature. WhatsApp quick-reply buttons and list pickers are drawn under their message, and a
// press posts the form Twilio posts for it. Telegram messages and button presses are Updates carrying the webhook's secret
// token, which the sandbox hands to the page. The response to a press is an answerCallbackQuery call
// ({"method": "answerCallbackQuery", ...}). As Telegram would, the pane has the sandbox perform it,
// and it shows the answer's text. Replies are read by polling the sandbox fakes:
// GET /sandbox/messages for WhatsApp, GET /sandbox/telegram/messages for Telegram, whose entries
// carry the keyboards.
"use strict";

(() => {
  const CHATS_URL = "/simulator/chats";
  const SIGN_URL = "/sandbox/twilio/sign";
  const WHATSAPP_URL = "/webhooks/twilio/whatsapp";
  const TELEGRAM_URL = "/webhooks/telegram";
  const MESSAGES_URL = "/sandbox/messages";
  const TELEGRAM_MESSAGES_URL = "/sandbox/telegram/messages";
  const TELEGRAM_WEBHOOK_REPLY_URL = "/sandbox/telegram/webhook-reply";
  const POLL_MS = 1500;
  const REQUEST_TIMEOUT_MS = 15000;
  const PROFILE_NAME = "Test Patient";

  const phoneNumber = document.getElementById("phone-number");

  function randomHex(byteCount) {
    const bytes = new Uint8Array(byteCount);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  function randomInteger(maximum) {
    const values = new Uint32Array(1);
    crypto.getRandomValues(values);
    return values[0] % maximum;
  }

  async function fetchWithTimeout(url, options = {}) {
    return fetch(url, { cache: "no-store", ...options, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  }

  // Return the response body as a one-line reason for a status line, e.g. "HTTP 403: forbidden".
  async function describeFailure(response) {
    const body = (await response.text()).trim();
    return `HTTP ${response.status}: ${body || "(empty body)"}`;
  }

  function describeError(error) {
    if (error.name === "TimeoutError") {
      return `no reply within ${REQUEST_TIMEOUT_MS / 1000} s`;
    }
    return `network error (${error.message})`;
  }

  // One pane's message list, its status line and its compose form.
  class ChatPane {
    constructor(prefix) {
      this.log = document.getElementById(`${prefix}-log`);
      this.status = document.getElementById(`${prefix}-status`);
      this.form = document.getElementById(`${prefix}-form`);
      this.input = document.getElementById(`${prefix}-text`);
      this.sendButton = document.getElementById(`${prefix}-send`);
    }

    setStatus(text, state) {
      this.status.textContent = text;
      this.status.dataset.state = state;
    }

    enable(enabled) {
      this.input.disabled = !enabled;
      this.sendButton.disabled = !enabled;
    }

    clear() {
      this.log.replaceChildren();
    }

    // Append a bubble; `from` is "patient" or "service". Returns the bubble element.
    addBubble(text, from) {
      const item = document.createElement("li");
      item.className = "chat-bubble";
      item.dataset.from = from;
      const body = document.createElement("div");
      body.className = "chat-text";
      body.textContent = text;
      item.append(body);
      this.log.append(item);
      this.log.scrollTop = this.log.scrollHeight;
      return item;
    }

    // Run `post` for a message the patient typed, marking the bubble when the webhook rejects it.
    async sendTyped(text, post) {
      const bubble = this.addBubble(text, "patient");
      const problem = await post();
      if (problem !== null) {
        bubble.dataset.failed = "true";
        this.setStatus(`Not delivered: ${problem}`, "error");
      }
      return problem;
    }

    onSubmit(handler) {
      this.form.addEventListener("submit", (event) => {
        event.preventDefault();
        const text = this.input.value.trim();
        if (text === "") {
          return;
        }
        this.input.value = "";
        handler(text);
      });
    }
  }

  // --- WhatsApp through Twilio ------------------------------------------------------------------

  class WhatsAppChat {
    constructor(config) {
      this.config = config; // {account_sid, to}, or null when Twilio is off in this sandbox
      this.pane = new ChatPane("whatsapp");
      this.phone = null;
      this.seen = new Set();
      this.pane.onSubmit((text) => this.send(text));
    }

    start() {
      if (this.config === null) {
        this.pane.setStatus("WhatsApp is not configured in this sandbox.", "error");
        return;
      }
      this.pane.enable(true);
      this.poll();
    }

    currentPhone() {
      return phoneNumber.value.trim();
    }

    // Start an empty log when the phone number has changed since the last look.
    syncPhone() {
      const phone = this.currentPhone();
      if (phone !== this.phone) {
        this.phone = phone;
        this.seen = new Set();
        this.pane.clear();
      }
      return phone;
    }

    async send(text) {
      const phone = this.syncPhone();
      if (phone === "") {
        this.pane.setStatus("Enter a phone number, such as +254700000099, first.", "error");
        return;
      }
      const params = this.inboundForm(phone, text, "text");
      await this.pane.sendTyped(text, () => this.post(params));
    }

    // The fields Twilio posts for an inbound WhatsApp message from `phone`.
    inboundForm(phone, body, messageType) {
      const sid = "SM" + randomHex(16);
      return {
        MessageSid: sid,
        SmsMessageSid: sid,
        SmsSid: sid,
        AccountSid: this.config.account_sid,
        From: "whatsapp:" + phone,
        To: this.config.to,
        Body: body,
        NumMedia: "0",
        NumSegments: "1",
        MessageType: messageType,
        ProfileName: PROFILE_NAME,
        WaId: phone.replace(/^\+/, ""),
        SmsStatus: "received",
        ApiVersion: "2010-04-01",
      };
    }

    // Post a quick-reply press or a list selection as Twilio does: the choice's id in
    // ButtonPayload or ListId, its title in ButtonText or ListTitle and in Body.
    async press(message, choice, element) {
      const phone = this.syncPhone();
      if (phone === "") {
        this.pane.setStatus("Enter a phone number, such as +254700000099, first.", "error");
        return;
      }
      const params = {
        ...this.inboundForm(phone, choice.title, "interactive"),
        OriginalRepliedMessageSid: String(message.provider_message_id),
        OriginalRepliedMessageSender: this.config.to,
      };
      if (message.interactive.type === "twilio/list-picker") {
        params.ListId = choice.id;
        params.ListTitle = choice.title;
      } else {
        params.ButtonPayload = choice.id;
        params.ButtonText = choice.title;
      }
      element.disabled = true;
      await this.pane.sendTyped(choice.title, () => this.post(params));
      element.disabled = false;
    }

    // Draw a message's quick-reply buttons, or its list picker's button label and items.
    interactiveButtons(message) {
      const interactive = message.interactive;
      const container = document.createElement("div");
      container.className = "chat-buttons";
      container.dataset.kind = interactive.type === "twilio/list-picker" ? "list" : "quick-reply";
      let choices;
      if (interactive.type === "twilio/list-picker") {
        const heading = document.createElement("div");
        heading.className = "chat-list-button";
        heading.textContent = String(interactive.button ?? "");
        container.append(heading);
        choices = (interactive.items ?? []).map((item) => ({
          title: String(item.item ?? ""),
          id: String(item.id ?? ""),
          description: String(item.description ?? ""),
        }));
      } else {
        choices = (interactive.buttons ?? []).map((button) => ({
          title: String(button.title ?? ""),
          id: String(button.id ?? ""),
          description: "",
        }));
      }
      for (const choice of choices) {
        const element = document.createElement("button");
        element.type = "button";
        element.textContent = choice.title;
        element.dataset.payload = choice.id;
        if (choice.description !== "") {
          element.title = choice.description;
          const description = document.createElement("span");
          description.className = "chat-choice-description";
          description.textContent = choice.description;
          element.append(description);
        }
        element.addEventListener("click", () => this.press(message, choice, element));
        container.append(element);
      }
      return container;
    }

    // Sign the form with the sandbox's helper, then post it as Twilio would; null on success.
    async post(params) {
      try {
        const signing = await fetchWithTimeout(SIGN_URL, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ path: WHATSAPP_URL, params }),
        });
        if (!signing.ok) {
          return `signing failed, ${await describeFailure(signing)}`;
        }
        const { signature } = await signing.json();
        const response = await fetchWithTimeout(WHATSAPP_URL, {
          method: "POST",
          headers: { "X-Twilio-Signature": signature },
          body: new URLSearchParams(params),
        });
        return response.ok ? null : await describeFailure(response);
      } catch (error) {
        return describeError(error);
      }
    }

    async poll() {
      try {
        await this.refresh();
      } catch (error) {
        const reason = error.name === "TimeoutError" ? describeError(error) : error.message;
        this.pane.setStatus(`Could not load replies: ${reason}`, "error");
      } finally {
        setTimeout(() => this.poll(), POLL_MS);
      }
    }

    async refresh() {
      const phone = this.syncPhone();
      if (phone === "") {
        this.pane.setStatus("Enter a phone number to chat.", "idle");
        return;
      }
      const response = await fetchWithTimeout(`${MESSAGES_URL}?to=${encodeURIComponent(phone)}`);
      if (!response.ok) {
        throw new Error(await describeFailure(response));
      }
      const messages = await response.json();
      if (phone !== this.currentPhone()) {
        return; // the number changed while this request was in flight
      }
      for (const message of messages) {
        if (message.channel !== "whatsapp" || this.seen.has(message.provider_message_id)) {
          continue;
        }
        this.seen.add(message.provider_message_id);
        const bubble = this.pane.addBubble(String(message.text ?? ""), "service");
        bubble.dataset.providerMessageId = String(message.provider_message_id);
        if (message.interactive && typeof message.interactive === "object") {
          bubble.append(this.interactiveButtons(message));
        }
      }
      if (this.pane.status.dataset.state !== "error") {
        this.pane.setStatus(`Chatting as whatsapp:${phone}`, "ok");
      }
    }
  }

  // --- Telegram through the bot's webhook -------------------------------------------------------

  class TelegramChat {
    constructor(config) {
      this.config = config; // {secret_token}, or null when Telegram is off in this sandbox
      this.pane = new ChatPane("telegram");
      this.userInput = document.getElementById("telegram-user");
      this.replyKeyboard = document.getElementById("telegram-reply-keyboard");
      this.userId = null;
      this.bubbles = new Map(); // bot message_id → {bubble, snapshot}
      // Update ids must not repeat across page loads, because the webhook drops repeats.
      this.nextUpdateId = randomInteger(1_000_000_000);
      this.nextMessageId = 1;
      // The newest bot message when its reply keyboard was last drawn, so a keyboard the user
      // has used is not drawn again.
      this.keyboardMessageId = null;
      this.pane.onSubmit((text) => this.sendText(text));
      this.userInput.addEventListener("input", () => this.poll(false));
    }

    start() {
      if (this.config === null) {
        this.pane.setStatus("Telegram is not configured in this sandbox.", "error");
        return;
      }
      this.pane.enable(true);
      this.poll(true);
    }

    currentUserId() {
      const value = this.userInput.value.trim();
      return /^[1-9][0-9]{0,14}$/.test(value) ? Number(value) : null;
    }

    user(userId) {
      return { id: userId, is_bot: false, first_name: "Test", last_name: "Patient", language_code: "en" };
    }

    chat(userId) {
      return { id: userId, type: "private", first_name: "Test", last_name: "Patient" };
    }

    newUpdateId() {
      this.nextUpdateId += 1;
      return this.nextUpdateId;
    }

    userMessage(userId, fields) {
      this.nextMessageId += 1;
      return {
        message_id: this.nextMessageId,
        from: this.user(userId),
        chat: this.chat(userId),
        date: Math.floor(Date.now() / 1000),
        ...fields,
      };
    }

    async sendText(text) {
      const userId = this.requireUser();
      if (userId === null) {
        return;
      }
      const fields = { text };
      if (text.startsWith("/")) {
        const command = text.split(/\s/, 1)[0];
        fields.entities = [{ type: "bot_command", offset: 0, length: command.length }];
      }
      const update = { update_id: this.newUpdateId(), message: this.userMessage(userId, fields) };
      await this.pane.sendTyped(text, () => this.post(update));
    }

    async shareContact(label) {
      const userId = this.requireUser();
      const phone = phoneNumber.value.trim();
      if (userId === null) {
        return;
      }
      if (phone === "") {
        this.pane.setStatus("Enter a phone number above to share it.", "error");
        return;
      }
      this.hideReplyKeyboard();
      const contact = { phone_number: phone, first_name: "Test", last_name: "Patient", user_id: userId };
      const update = { update_id: this.newUpdateId(), message: this.userMessage(userId, { contact }) };
      await this.pane.sendTyped(`${label}: ${phone}`, () => this.post(update));
    }

    async pressButton(botMessage, button, element) {
      const userId = this.requireUser();
      if (userId === null) {
        return;
      }
      element.disabled = true;
      const update = {
        update_id: this.newUpdateId(),
        callback_query: {
          id: String(randomInteger(2_000_000_000)),
          from: this.user(userId),
          chat_instance: `sandbox-${userId}`,
          data: button.callback_data,
          message: {
            message_id: botMessage.message_id,
            chat: this.chat(userId),
            date: botMessage.date,
            text: botMessage.text,
          },
        },
      };
      const problem = await this.post(update);
      if (problem !== null) {
        element.disabled = false;
        this.pane.setStatus(`Button press not delivered: ${problem}`, "error");
      }
    }

    // Start an empty log when the user id has changed since the last look.
    syncUser() {
      const userId = this.currentUserId();
      if (userId !== this.userId) {
        this.userId = userId;
        this.bubbles = new Map();
        this.pane.clear();
        this.keyboardMessageId = null;
        this.hideReplyKeyboard();
      }
      return userId;
    }

    requireUser() {
      const userId = this.syncUser();
      if (userId === null) {
        this.pane.setStatus("Enter a Telegram user id: digits, such as 100000099.", "error");
      }
      return userId;
    }

    async post(update) {
      try {
        const response = await fetchWithTimeout(TELEGRAM_URL, {
          method: "POST",
          headers: {
            "Content-Type": "application/json",
            "X-Telegram-Bot-Api-Secret-Token": this.config.secret_token,
          },
          body: JSON.stringify(update),
        });
        if (!response.ok) {
          return await describeFailure(response);
        }
        if (this.pane.status.dataset.state === "notice") {
          this.pane.setStatus(`Chatting as Telegram user ${this.userId}`, "ok");
        }
        if (!response.headers.get("Content-Type")?.startsWith("application/json")) {
          return null;
        }
        return await this.performWebhookReply(await response.json());
      } catch (error) {
        return describeError(error);
      }
    }

    // Perform the method call of a webhook response through the sandbox, as Telegram does, and
    // show a press answer's text where the app would show its pop-up.
    async performWebhookReply(call) {
      const response = await fetchWithTimeout(TELEGRAM_WEBHOOK_REPLY_URL, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(call),
      });
      if (!response.ok) {
        return `the service's answer was refused, ${await describeFailure(response)}`;
      }
      if (call.method === "answerCallbackQuery" && typeof call.text === "string" && call.text !== "") {
        this.pane.setStatus(`Telegram shows: ${call.text}`, "notice");
      }
      return null;
    }

    async poll(schedule) {
      try {
        await this.refresh();
      } catch (error) {
        const reason = error.name === "TimeoutError" ? describeError(error) : error.message;
        this.pane.setStatus(`Could not load replies: ${reason}`, "error");
      } finally {
        if (schedule) {
          setTimeout(() => this.poll(true), POLL_MS);
        }
      }
    }

    async refresh() {
      const userId = this.syncUser();
      if (userId === null) {
        this.pane.setStatus("Enter a Telegram user id: digits, such as 100000099.", "idle");
        return;
      }
      const response = await fetchWithTimeout(`${TELEGRAM_MESSAGES_URL}?chat_id=${userId}`);
      if (!response.ok) {
        throw new Error(await describeFailure(response));
      }
      const messages = await response.json();
      if (userId !== this.currentUserId()) {
        return;
      }
      for (const message of messages) {
        this.showBotMessage(message);
      }
      // Telegram shows a reply keyboard until the next message replaces it.
      const newest = messages[messages.length - 1];
      if (newest !== undefined && newest.message_id !== this.keyboardMessageId) {
        this.keyboardMessageId = newest.message_id;
        const rows = newest.reply_markup?.keyboard;
        if (Array.isArray(rows)) {
          this.showReplyKeyboard(rows);
        } else {
          this.hideReplyKeyboard();
        }
      }
      if (!["error", "notice"].includes(this.pane.status.dataset.state)) {
        this.pane.setStatus(`Chatting as Telegram user ${userId}`, "ok");
      }
    }

    // Add a bot message, or redraw it when its keyboard changed (a pressed keyboard is removed).
    showBotMessage(message) {
      const snapshot = JSON.stringify(message);
      const known = this.bubbles.get(message.message_id);
      if (known !== undefined && known.snapshot === snapshot) {
        return;
      }
      const bubble = known === undefined
        ? this.pane.addBubble(String(message.text ?? ""), "service")
        : known.bubble;
      bubble.dataset.messageId = String(message.message_id);
      bubble.querySelector(".chat-buttons")?.remove();
      this.bubbles.set(message.message_id, { bubble, snapshot });

      const markup = message.reply_markup ?? {};
      if (Array.isArray(markup.inline_keyboard)) {
        bubble.append(this.inlineButtons(message, markup.inline_keyboard));
      }
    }

    inlineButtons(message, rows) {
      const container = document.createElement("div");
      container.className = "chat-buttons";
      for (const row of rows) {
        for (const button of row) {
          const element = document.createElement("button");
          element.type = "button";
          element.textContent = String(button.text ?? "");
          element.dataset.callbackData = String(button.callback_data ?? "");
          element.addEventListener("click", () => this.pressButton(message, button, element));
          container.append(element);
        }
      }
      return container;
    }

    // Show the reply keyboard under the log; only the request-contact button is simulated.
    showReplyKeyboard(rows) {
      const buttons = [];
      for (const row of rows) {
        for (const button of row) {
          const label = typeof button === "string" ? button : String(button.text ?? "");
          const element = document.createElement("button");
          element.type = "button";
          element.textContent = label;
          if (button.request_contact) {
            element.dataset.requestContact = "true";
            element.addEventListener("click", () => this.shareContact(label));
          } else {
            element.addEventListener("click", () => {
              this.hideReplyKeyboard();
              this.sendText(label);
            });
          }
          buttons.push(element);
        }
      }
      this.replyKeyboard.replaceChildren(...buttons);
    }

    hideReplyKeyboard() {
      this.replyKeyboard.replaceChildren();
    }
  }

  async function loadConfig() {
    const response = await fetchWithTimeout(CHATS_URL);
    if (!response.ok) {
      throw new Error(await describeFailure(response));
    }
    return response.json();
  }

  loadConfig().then(
    (config) => {
      new WhatsAppChat(config.whatsapp ?? null).start();
      new TelegramChat(config.telegram ?? null).start();
    },
    (error) => {
      const reason = error.name === "TimeoutError" ? describeError(error) : error.message;
      for (const id of ["whatsapp-status", "telegram-status"]) {
        const status = document.getElementById(id);
        status.textContent = `Could not load the chat settings: ${reason}`;
        status.dataset.state = "error";
      }
    },
  );
})();
