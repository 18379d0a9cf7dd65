// Parley chat demo: one room, its members, text to the room or to one
// member, send results, and files dropped on the chat sent as binary.
// No framework; the SDK is the server's own /sdk/parley.js.
import { createEngine, events, MessageConfig } from "/sdk/parley.js";

const $ = (id) => document.getElementById(id);
const MAX = 65536;
let engine = null;
let me = "";

/** Adds a line to the log; returns it, for a send result to fill in. */
function line(parts, cls = "") {
  const li = document.createElement("li");
  if (cls) li.className = cls;
  for (const [text, c] of parts) {
    const span = document.createElement("span");
    span.textContent = text;
    if (c) span.className = c;
    li.append(span);
  }
  $("log").append(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

function system(text) {
  line([[text, "sys"]]);
}

function setStatus(text) {
  $("status").textContent = text;
}

/** Shows a send's result beside its line: ✓ or the code. */
function showResult(li, promise) {
  const r = document.createElement("span");
  r.className = "result pending";
  r.textContent = "sending…";
  li.append(r);
  promise.then(
    () => {
      r.className = "result ok";
      r.textContent = "✓ delivered";
    },
    (e) => {
      r.className = "result fail";
      r.textContent = `✗ ${e.code ?? e}`;
    },
  );
}

function addMember(userId, extraInfo) {
  if (document.querySelector(`#members li[data-user="${CSS.escape(userId)}"]`)) return;
  const li = document.createElement("li");
  li.dataset.user = userId;
  li.textContent = userId + " ";
  if (userId === me) li.className = "me";
  if (extraInfo) {
    const s = document.createElement("small");
    s.textContent = extraInfo;
    li.append(s);
  }
  $("members").append(li);
  if (userId !== me) {
    const o = document.createElement("option");
    o.value = userId;
    o.textContent = `to ${userId} only`;
    $("to").append(o);
  }
}

function removeMember(userId) {
  document.querySelector(`#members li[data-user="${CSS.escape(userId)}"]`)?.remove();
  document.querySelector(`#to option[value="${CSS.escape(userId)}"]`)?.remove();
}

const states = { 1: "disconnected", 2: "connecting", 3: "connected", 4: "reconnecting…", 5: "reconnected", 6: "connection lost, retrying…", 7: "failed" };

async function tokens(room, user) {
  if ($("token").value) return { appId: $("appId").value, token: $("token").value, loginToken: "" };
  const r = await fetch(`/demo/token?room=${encodeURIComponent(room)}&user=${encodeURIComponent(user)}`);
  if (!r.ok) throw new Error("this server mints no demo tokens (it is not the development server): paste an AppID and a token under Token");
  return r.json();
}

async function enter(ev) {
  ev.preventDefault();
  const room = $("room").value.trim();
  me = $("user").value.trim();
  $("join").disabled = true;
  const started = performance.now();
  try {
    const t = await tokens(room, me);
    engine = createEngine(t.appId);
    engine.on(events.onConnectionStateChanged, ({ state }) => setStatus(states[state] ?? String(state)));
    engine.on(events.onUserJoined, ({ userInfo }) => {
      addMember(userInfo.userId, userInfo.extraInfo);
      system(`${userInfo.userId} is here`);
    });
    engine.on(events.onUserLeave, ({ userInfo, reason }) => {
      removeMember(userInfo.userId);
      system(`${userInfo.userId} left${reason === 1 ? " (dropped)" : ""}`);
    });
    const text = (to) => ({ userId, message }) => line([[userId, "who"], [to, "to"], [": " + message]]);
    const file = (to) => ({ userId, message }) =>
      line([[userId, "who"], [to, "to"], [`: sent a file of ${message.byteLength} bytes`]]);
    engine.on(events.onRoomMessageReceived, text(""));
    engine.on(events.onUserMessageReceived, text(" (to you)"));
    engine.on(events.onRoomBinaryMessageReceived, file(""));
    engine.on(events.onUserBinaryMessageReceived, file(" (to you)"));
    engine.on(events.onUserMessageReceivedOutsideRoom, text(" (outside the room)"));
    engine.on(events.onError, ({ errorCode }) => system(`removed from the room: ${errorCode}`));
    await engine.joinRoom(t.token, room, { userId: me, extraInfo: "browser" }, {});
    if (t.loginToken) await engine.login(t.loginToken, me).catch((e) => system(`login: ${e.code}`));
    $("enter").hidden = true;
    $("chat").hidden = false;
    $("roomName").textContent = room;
    addMember(me, "you");
    // For the test suite's figures: from the page's navigation, and from Enter.
    document.body.dataset.joinedAt = String(performance.now());
    document.body.dataset.joinedMs = String(performance.now() - started);
    system(`you are in ${room}`);
    $("text").focus();
  } catch (e) {
    system(`cannot enter: ${e.code ?? ""} ${e.message ?? e}`);
    engine?.destroy();
    engine = null;
    $("join").disabled = false;
  }
}

function send(ev) {
  ev.preventDefault();
  const to = $("to").value;
  const msg = $("text").value;
  if (!msg || !engine) return;
  $("text").value = "";
  const li = line([["you", "who"], [to ? ` → ${to}` : "", "to"], [": " + msg]]);
  showResult(li, to ? engine.sendUserMessage(to, msg, MessageConfig.RELIABLE_ORDERED) : engine.sendRoomMessage(msg));
}

async function sendFile(f) {
  const to = $("to").value;
  if (f.size > MAX) {
    system(`${f.name} is ${f.size} bytes: a message holds at most ${MAX}`);
    return;
  }
  const buf = await f.arrayBuffer();
  const li = line([["you", "who"], [to ? ` → ${to}` : "", "to"], [`: ${f.name} (${f.size} bytes)`]]);
  showResult(li, to ? engine.sendUserBinaryMessage(to, buf) : engine.sendRoomBinaryMessage(buf));
}

$("enter").addEventListener("submit", enter);
$("send").addEventListener("submit", send);
$("leave").addEventListener("click", async () => {
  await engine?.destroy();
  location.reload();
});
const drop = document.querySelector("section");
drop.addEventListener("dragover", (e) => {
  e.preventDefault();
  drop.classList.add("drop");
});
drop.addEventListener("dragleave", () => drop.classList.remove("drop"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("drop");
  for (const f of e.dataTransfer.files) if (engine) sendFile(f);
});

// ?room=…&user=… fill the form; &join enters at once (the test suite's
// page-load-to-joined figure uses it).
const q = new URLSearchParams(location.search);
if (q.get("room")) $("room").value = q.get("room");
if (q.get("user")) $("user").value = q.get("user");
if (q.has("join")) $("enter").requestSubmit();
