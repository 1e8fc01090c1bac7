// ima's web app. Speaks the public API like any client. Post text is only ever set
// with textContent: it is untrusted, and never becomes markup.
"use strict";

const TEXT = {
  en: {
    voice: "Voice", regular: "Regular", fun: "Fun", language: "Language", signOut: "Sign out",
    signIn: "Sign in", keyLabel: "API key", keyNote: "The key stays in this browser's storage.",
    chat: "Chat", askLabel: "Ask about what's happening", ask: "Ask", happening: "What's happening",
    window: "Window", noStories: "No stories right now.", feed: "Live feed", pause: "Pause",
    resume: "Resume", feedIdle: "Ask something to follow its topic here.",
    following: (w) => `Following: ${w}`, waiting: (n) => `${n} new while paused`,
    noFun: (tier) => `The fun voice is not part of the ${tier} tier.`,
    demo: "Demo: these posts are a generated stream, not real posts.",
    badKey: "That key was not accepted.", thinking: "Searching the newest posts…",
    evidence: (age) => `Based on posts from the last ${age}.`,
    posts: (n) => `${n} posts`, authors: (n) => `${n} authors`, volume: "Volume over the window",
    askAbout: (t) => `What's happening with “${t}”?`, failed: "Something went wrong: ",
    original: "Original", talk: "Talk", stopTalk: "Stop and ask", readAloud: "Read aloud", fromModel: "model",
    noMic: "No microphone here (or it was refused): type your question instead.",
    listening: "Listening… press again to ask.", transcribing: "Transcribing…",
    autoplayBlocked: "The browser blocked playback: press play on the answer.",
    according: (h) => `, according to ${h}`,
    fromModelNote: "From the model's own knowledge, not from posts.",
    removed: (why) => `A sentence of the model was removed: ${why}.`,
    unreachable: (name, why) => `Cannot reach ${name} (${why}). Add a source with “ima serve SOURCE…”, or try “ima serve --demo”.`,
  },
  ja: {
    voice: "口調", regular: "ふつう", fun: "おもしろ", language: "言語", signOut: "サインアウト",
    signIn: "サインイン", keyLabel: "APIキー", keyNote: "キーはこのブラウザの保存領域にだけ置かれます。",
    chat: "チャット", askLabel: "いま起きていることを質問", ask: "質問する", happening: "いま話題",
    window: "期間", noStories: "いま話題のストーリーはありません。", feed: "ライブフィード",
    pause: "一時停止", resume: "再開", feedIdle: "質問すると、その話題の投稿がここに流れます。",
    following: (w) => `追跡中：${w}`, waiting: (n) => `一時停止中の新着 ${n} 件`,
    noFun: (tier) => `${tier} プランにはおもしろ口調が含まれていません。`,
    demo: "デモ：これは生成されたストリームで、実際の投稿ではありません。",
    badKey: "このキーは受け付けられませんでした。", thinking: "最新の投稿を検索しています…",
    evidence: (age) => `直近${age}の投稿にもとづく回答です。`,
    posts: (n) => `${n}件の投稿`, authors: (n) => `${n}人`, volume: "期間内の投稿数の推移",
    askAbout: (t) => `「${t}」について、いま何が起きていますか？`, failed: "エラー：",
    original: "元の投稿", talk: "話す", stopTalk: "止めて質問", readAloud: "読み上げ", fromModel: "モデル",
    noMic: "マイクが使えません（または許可されませんでした）。質問を入力してください。",
    listening: "聞いています…もう一度押すと質問します。", transcribing: "文字に起こしています…",
    autoplayBlocked: "ブラウザが再生を止めました。回答の再生ボタンを押してください。",
    according: (h) => `（${h}によると）`,
    fromModelNote: "投稿ではなく、モデル自身の知識による文です。",
    removed: (why) => `モデルの文を1つ削除しました：${why}`,
    unreachable: (name, why) => `${name} に接続できません（${why}）。「ima serve SOURCE…」でソースを追加するか、「ima serve --demo」をお試しください。`,
  },
};

const HISTORY_TURNS = 20;
const RETRY_MS = 3000; // a feed that drops (a restart, a network blip) is reopened after this

const browserLang = (navigator.language || "en").toLowerCase().startsWith("ja") ? "ja" : "en";
const state = {
  lang: localStorage.getItem("ima-lang") || browserLang,
  key: localStorage.getItem("ima-key") || "",
  me: null,
  history: [],
  feed: null,
  paused: false,
  held: [],
  trends: null,
  stories: new Map(),
};

const $ = (id) => document.getElementById(id);
const t = (name, ...args) => {
  const value = TEXT[state.lang][name];
  return typeof value === "function" ? value(...args) : value;
};

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function headers(json) {
  const h = {};
  if (state.key) h.Authorization = `Bearer ${state.key}`;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

function applyLanguage() {
  document.documentElement.lang = state.lang;
  $("lang").value = state.lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("feed-pause").textContent = state.paused ? t("resume") : t("pause");
  showVoice();
  showBanner();
  renderStories();
}

// -- time ------------------------------------------------------------------------------

function ago(iso) {
  const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
  const rtf = new Intl.RelativeTimeFormat(state.lang, { numeric: "auto" });
  const steps = [[60, "second"], [60, "minute"], [24, "hour"], [365, "day"]];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) return rtf.format(value, unit);
    value = Math.round(value / size);
  }
  return rtf.format(value, "year");
}

function absolute(iso) {
  return new Date(iso).toLocaleString(state.lang, { dateStyle: "medium", timeStyle: "short" });
}

function span(seconds) {
  const minutes = Math.max(1, Math.round(seconds / 60));
  if (minutes < 120) return state.lang === "ja" ? `${minutes}分` : `${minutes} minute${minutes === 1 ? "" : "s"}`;
  const hours = Math.round(minutes / 60);
  return state.lang === "ja" ? `${hours}時間` : `${hours} hours`;
}

// -- post cards --------------------------------------------------------------------------

function safeUrl(url) {
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function card(post) {
  const item = el("li", "card");
  item.dataset.postId = post.post_id;
  const head = el("header");
  if (post.number) head.append(el("span", "number", `[${post.number}]`));
  head.append(el("span", "name", post.author_name || post.author), el("span", "handle", `@${post.author}`));
  const time = el("time", "", ago(post.created_at));
  time.dateTime = post.created_at;
  time.title = absolute(post.created_at);
  head.append(time, el("span", "absolute", absolute(post.created_at)));
  item.append(head, el("p", "text", post.text));
  const href = safeUrl(post.url);
  if (href) {
    const link = el("a", "", t("original"));
    link.href = href;
    link.rel = "noopener noreferrer";
    link.target = "_blank";
    item.append(link);
  }
  return item;
}

// -- server-sent events over fetch (EventSource cannot send the key in a header) -------

async function events(url, onEvent, init = {}) {
  const response = await fetch(url, { headers: headers(Boolean(init.body)), ...init });
  if (!response.ok) throw new Error(await errorText(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
}

function retry(controller, reopen) {
  if (!controller.signal.aborted) setTimeout(() => controller.signal.aborted || reopen(), RETRY_MS);
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.error?.message || response.statusText;
  } catch {
    return response.statusText;
  }
}

// -- who am I ----------------------------------------------------------------------------

async function signIn() {
  const response = await fetch("/v1/me", { headers: headers(false) });
  if (response.status === 401 || response.status === 403) {
    $("signin").hidden = false;
    $("app").hidden = true;
    if (state.key) {
      $("signin-error").textContent = t("badKey");
      $("signin-error").hidden = false;
    }
    return false;
  }
  if (!response.ok) throw new Error(await errorText(response));
  state.me = await response.json();
  $("signin").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = !state.me.auth;
  applyLanguage();
  return true;
}

function showVoice() {
  if (!state.me) return;
  const fun = document.querySelector('input[value="fun"]');
  fun.disabled = !state.me.fun;
  const note = $("voice-note");
  note.hidden = state.me.fun;
  note.textContent = state.me.fun ? "" : t("noFun", state.me.tier);
  if (!state.me.fun) {
    document.querySelector('input[value="regular"]').checked = true;
    fun.setAttribute("aria-describedby", "voice-note");
  }
}

function showBanner() {
  const banner = $("banner");
  if (!state.me) return;
  const lines = [];
  if (state.me.demo) lines.push(t("demo"));
  if (state.me.notice) lines.push(state.me.notice);
  for (const source of state.me.sources) {
    if (!source.connected && source.last_error) lines.push(t("unreachable", source.name, source.last_error));
  }
  banner.textContent = lines.join(" · ");
  banner.hidden = lines.length === 0;
}

// -- chat ----------------------------------------------------------------------------------

function voice() {
  return document.querySelector('input[name="voice"]:checked').value;
}

async function ask(question) {
  const list = $("messages");
  const mine = el("li", "message user", question);
  const reply = el("li", "message assistant");
  const text = el("span", "answer", t("thinking"));
  reply.append(text);
  list.append(mine, reply);
  reply.scrollIntoView({ block: "nearest" });
  state.history.push({ role: "user", content: question });
  $("ask-button").disabled = true;
  let answer = "";
  let started = false;
  let done = null; // what a spoken question reads aloud
  try {
    let cards = [];
    // the latest turns are context enough, and keep the request within the API's limits
    const messages = state.history.slice(-HISTORY_TURNS);
    const body = JSON.stringify({ model: "ima", persona: voice(), stream: true, messages });
    await events("/v1/chat/completions", (name, data) => {
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      const piece = chunk.choices?.[0]?.delta?.content;
      if (piece) {
        if (!started) text.textContent = "";
        started = true;
        answer += piece;
        text.textContent = answer;
      }
      if (chunk.citation_posts) cards = chunk.citation_posts;
      if (chunk.turn) showProof(text, reply, chunk.turn);
    }, { method: "POST", body });
    state.history.push({ role: "assistant", content: answer });
    if (cards.length) {
      const newest = Math.max(...cards.map((c) => Date.parse(c.created_at)));
      reply.append(el("span", "age", t("evidence", span((Date.now() - newest) / 1000))));
      const list = el("ol", "cards citations");
      for (const post of cards) list.append(card(post));
      reply.append(list);
    }
    const aloud = el("button", "read-aloud", t("readAloud"));
    aloud.type = "button";
    aloud.addEventListener("click", () => speak(answer, cards, reply));
    reply.append(aloud);
    done = { answer, cards, reply };
  } catch (error) {
    text.textContent = t("failed") + error.message;
    state.history.pop();
  } finally {
    $("ask-button").disabled = false;
  }
  follow(question);
  return done;
}

// -- voice ---------------------------------------------------------------------------
// Push-to-talk records with MediaRecorder and sends the recording to the transcription
// API; answers are read by the speech API, citations said as "according to @handle".
// Without a microphone, or with autoplay blocked, the page says so and goes on.

const talking = { recorder: null, parts: [] };

function talkNote(message) {
  $("talk-note").textContent = message;
  $("talk-note").hidden = !message;
}

async function toggleTalk() {
  if (talking.recorder) {
    talking.recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch {
    talkNote(t("noMic"));
    return;
  }
  const recorder = new MediaRecorder(stream);
  talking.recorder = recorder;
  talking.parts = [];
  recorder.addEventListener("dataavailable", (event) => talking.parts.push(event.data));
  recorder.addEventListener("stop", async () => {
    stream.getTracks().forEach((track) => track.stop());
    talking.recorder = null;
    $("talk-button").setAttribute("aria-pressed", "false");
    $("talk-button").textContent = t("talk");
    await askAloud(new Blob(talking.parts, { type: recorder.mimeType }));
  });
  recorder.start();
  $("talk-button").setAttribute("aria-pressed", "true");
  $("talk-button").textContent = t("stopTalk");
  talkNote(t("listening"));
}

async function askAloud(recording) {
  talkNote(t("transcribing"));
  const form = new FormData();
  const kind = recording.type.includes("ogg") ? "ogg" : recording.type.includes("mp4") ? "m4a" : "webm";
  form.append("file", recording, `question.${kind}`);
  form.append("model", "whisper-1");
  try {
    const response = await fetch("/v1/audio/transcriptions", { method: "POST", headers: headers(false), body: form });
    if (!response.ok) throw new Error(await errorText(response));
    const heard = (await response.json()).text.trim();
    talkNote("");
    if (!heard) return;
    const done = await ask(heard);
    if (done) await speak(done.answer, done.cards, done.reply);
  } catch (error) {
    talkNote(t("failed") + error.message);
  }
}

async function speak(answer, cards, reply) {
  const handles = new Map(cards.map((c) => [c.number, "@" + c.author.replace(/\.bsky\.social$/, "")]));
  const said = answer.replace(/\s*\[(\d+(?:\s*,\s*\d+)*)\]/g, (_m, numbers) => {
    const names = [...new Set(numbers.split(",").map((n) => handles.get(Number(n))).filter(Boolean))];
    return names.length ? t("according", names.join(state.lang === "ja" ? "、" : " and ")) : "";
  });
  const voiceName = voice() === "fun" ? "ima-fun" : "ima";
  const body = JSON.stringify({ model: "tts-1", voice: voiceName, input: said, response_format: "pcm" });
  const response = await fetch("/v1/audio/speech", { method: "POST", headers: headers(true), body });
  if (!response.ok) {
    talkNote(t("failed") + (await errorText(response)));
    return;
  }
  reply.dataset.speech = "loading";
  const live = await liveOutput();
  const parts = await playAsItArrives(response.body.getReader(), live, reply);
  reply.dataset.speech = live ? "streamed" : "downloaded";
  // the whole answer stays on the page to play again
  const player = el("audio", "spoken");
  player.controls = true;
  player.src = URL.createObjectURL(wav(parts));
  reply.querySelector("audio.spoken")?.remove();
  reply.append(player);
  if (live) return;
  try {
    await player.play();
  } catch {
    talkNote(t("autoplayBlocked"));
  }
}

// The speech API streams 16-bit PCM sentence by sentence; each piece is scheduled on an
// AudioContext as it arrives, so the first sentence plays while the rest are being made.
const PCM_RATE = 24000;
const speaker = { context: null };

// A running AudioContext, or null where the browser blocks playback without a gesture.
async function liveOutput() {
  if (!window.AudioContext) return null;
  speaker.context ??= new AudioContext({ sampleRate: PCM_RATE });
  const context = speaker.context;
  if (context.state !== "running") {
    await Promise.race([context.resume().catch(() => {}), new Promise((r) => setTimeout(r, 300))]);
  }
  return context.state === "running" ? context : null;
}

async function playAsItArrives(reader, context, reply) {
  const parts = [];
  let odd = null; // a sample split between two network reads
  let at = 0;
  let last = null;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const bytes = odd ? new Uint8Array([...odd, ...value]) : value;
    const even = bytes.length - (bytes.length % 2);
    odd = even < bytes.length ? bytes.slice(even) : null;
    if (!even) continue;
    const samples = new Int16Array(bytes.slice(0, even).buffer);
    parts.push(samples);
    if (!context) continue;
    const buffer = context.createBuffer(1, samples.length, PCM_RATE);
    buffer.getChannelData(0).set(Float32Array.from(samples, (x) => x / 32768));
    last = context.createBufferSource();
    last.buffer = buffer;
    last.connect(context.destination);
    at = Math.max(at, context.currentTime + 0.05);
    last.start(at);
    at += buffer.duration;
    reply.dataset.speech = "playing";
  }
  if (last) last.addEventListener("ended", () => (reply.dataset.speech = "played"));
  return parts;
}

// PCM pieces as one WAV file.
function wav(parts) {
  const size = parts.reduce((n, p) => n + p.byteLength, 0);
  const head = new DataView(new ArrayBuffer(44));
  const text = (at, s) => [...s].forEach((c, i) => head.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF");
  head.setUint32(4, 36 + size, true);
  text(8, "WAVEfmt ");
  head.setUint32(16, 16, true);
  head.setUint16(20, 1, true); // PCM
  head.setUint16(22, 1, true); // mono
  head.setUint32(24, PCM_RATE, true);
  head.setUint32(28, PCM_RATE * 2, true);
  head.setUint16(32, 2, true);
  head.setUint16(34, 16, true);
  text(36, "data");
  head.setUint32(40, size, true);
  return new Blob([head, ...parts], { type: "audio/wav" });
}

// Each sentence of a model's answer, marked by where it came from: the posts (cited and
// verified) or the model's own knowledge; and what the verifier removed, and why.
function showProof(text, reply, turn) {
  if (!turn.sentences?.length) return;
  text.textContent = "";
  for (const said of turn.sentences) {
    const part = el("span", `said said-${said.source}`, said.text);
    if (said.source === "model") {
      part.title = t("fromModelNote");
      part.append(el("sup", "said-mark", t("fromModel")));
    }
    text.append(part, " ");
  }
  const notes = [...turn.removed.map((r) => t("removed", r.reason)), turn.context_note];
  for (const note of notes.filter(Boolean)) reply.append(el("span", "age", note));
}

// -- live feed -------------------------------------------------------------------------

function follow(topic) {
  if (state.feed) state.feed.abort();
  const controller = (state.feed = new AbortController());
  state.held = [];
  $("feed-posts").replaceChildren();
  const url = `/v1/feed?topic=${encodeURIComponent(topic)}`;
  events(url, (name, data) => {
    const payload = JSON.parse(data);
    if (name === "topic") $("feed-topic").textContent = t("following", payload.words.join(", "));
    if (name === "post") {
      if (state.paused) {
        state.held.push(payload);
        $("feed-topic").textContent = t("waiting", state.held.length);
      } else {
        showPost(payload);
      }
    }
  }, { signal: controller.signal }).catch(() => {}).then(() => retry(controller, () => follow(topic)));
}

function showPost(post) {
  const list = $("feed-posts");
  list.prepend(card(post));
  while (list.children.length > 100) list.lastChild.remove();
}

function togglePause() {
  state.paused = !state.paused;
  const button = $("feed-pause");
  button.setAttribute("aria-pressed", String(state.paused));
  button.textContent = state.paused ? t("resume") : t("pause");
  if (!state.paused) {
    for (const post of state.held) showPost(post);
    state.held = [];
  }
}

// -- stories -------------------------------------------------------------------------------

function sparkline(points) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const width = 80;
  const height = 18;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  const counts = points.map((p) => p.posts);
  svg.setAttribute("aria-label", `${t("volume")}: ${counts.join(", ")}`);
  const top = Math.max(1, ...counts);
  const step = width / Math.max(1, counts.length);
  counts.forEach((count, i) => {
    const bar = document.createElementNS(ns, "rect");
    const h = Math.max(1, (count / top) * height);
    bar.setAttribute("x", (i * step + 1).toFixed(1));
    bar.setAttribute("y", (height - h).toFixed(1));
    bar.setAttribute("width", Math.max(1, step - 2).toFixed(1));
    bar.setAttribute("height", h.toFixed(1));
    svg.append(bar);
  });
  return svg;
}

function storyItem(story) {
  const item = el("li", "story");
  item.dataset.storyId = story.id;
  const title = el("button", "title", story.headline || story.title);
  title.type = "button";
  title.addEventListener("click", () => ask(t("askAbout", story.title)));
  const meta = el("div", "meta");
  meta.append(el("span", "", t("posts", story.posts)), el("span", "", t("authors", story.authors)),
    el("span", "", ago(story.first_post_at)), sparkline(story.timeline));
  const sources = el("ol", "sources");
  for (const post of story.citations) {
    const entry = el("li");
    const href = safeUrl(post.url);
    const label = `[${post.number}] @${post.author}: ${post.text.slice(0, 80)}`;
    if (href) {
      const link = el("a", "", label);
      link.href = href;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      entry.append(link);
    } else {
      entry.textContent = label;
    }
    sources.append(entry);
  }
  item.append(title, meta, el("p", "summary", story.summary), sources);
  return item;
}

function renderStories() {
  const list = $("story-list");
  const stories = [...state.stories.values()].sort((a, b) => b.surprise - a.surprise);
  list.replaceChildren(...stories.map(storyItem));
  $("stories-empty").hidden = stories.length > 0;
}

function watchStories() {
  if (state.trends) state.trends.abort();
  const controller = (state.trends = new AbortController());
  state.stories.clear();
  const params = new URLSearchParams({ window: $("window").value, voice: voice() });
  events(`/v1/trends/stream?${params}`, (name, data) => {
    const payload = JSON.parse(data);
    if (name === "snapshot") {
      state.stories.clear();
      for (const story of payload) state.stories.set(story.id, story);
    } else if (name === "story") {
      state.stories.set(payload.id, payload);
    } else if (name === "ended") {
      state.stories.delete(payload.id);
    }
    renderStories();
  }, { signal: controller.signal }).catch(() => {}).then(() => retry(controller, watchStories));
}

// -- start -----------------------------------------------------------------------------

async function start() {
  applyLanguage();
  $("lang").addEventListener("change", (event) => {
    state.lang = event.target.value;
    localStorage.setItem("ima-lang", state.lang);
    applyLanguage();
  });
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    state.key = $("key").value.trim();
    $("key").value = "";
    localStorage.setItem("ima-key", state.key);
    if (await signIn()) watchStories();
  });
  $("sign-out").addEventListener("click", () => {
    localStorage.removeItem("ima-key");
    state.key = "";
    location.reload();
  });
  $("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = $("question").value.trim();
    if (!question) return;
    $("question").value = "";
    ask(question);
  });
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  $("feed-pause").addEventListener("click", togglePause);
  if (navigator.mediaDevices?.getUserMedia && window.MediaRecorder) {
    $("talk-button").addEventListener("click", toggleTalk);
  } else {
    $("talk-button").disabled = true;
    talkNote(t("noMic"));
  }
  $("window").addEventListener("change", watchStories);
  for (const input of document.querySelectorAll('input[name="voice"]')) input.addEventListener("change", watchStories);
  if (await signIn()) watchStories();
}

document.addEventListener("DOMContentLoaded", start);
