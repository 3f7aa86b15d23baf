// The page of `recommender serve`: search, the collection map, a track panel, similar tracks,
// radio and paths, M3U8/XSPF downloads. Plain JavaScript, no external library (works offline).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#17becf", "#bcbd22", "#393b79", "#ad494a", "#637939"];
  const state = { current: null, pathFrom: null, list: [], points: new Map() };

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function basename(p) { return (p || "").split(/[\\/]/).pop(); }
  function name(t) { return t.title || basename(t.path) || ("track " + t.id); }
  function status(msg, isError) {
    const s = $("status");
    s.textContent = msg || "";
    s.classList.toggle("error", !!isError);
  }
  async function api(url) {
    const r = await fetch(url, { credentials: "same-origin" });
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) throw new Error((body && body.error) || ("HTTP " + r.status));
    return body;
  }
  function fmt(x, digits) { return (x === null || x === undefined) ? "–" : Number(x).toFixed(digits); }

  // ------------------------------------------------------------------ search
  async function search(ev) {
    if (ev) ev.preventDefault();
    const q = $("search").value.trim();
    const field = $("search-field").value;
    try {
      const res = await api("/api/search?limit=200&field=" + encodeURIComponent(field) + "&q=" + encodeURIComponent(q));
      const ol = $("search-results");
      ol.textContent = "";
      $("search-count").textContent = res.total + (res.total > res.tracks.length ? " (first " + res.tracks.length + ")" : "");
      for (const t of res.tracks) {
        const li = el("li");
        li.dataset.id = t.id;
        li.appendChild(el("span", name(t), "title"));
        li.appendChild(el("span", [t.artist, t.album].filter(Boolean).join(" · "), "sub"));
        if (t.top_tags && t.top_tags.length) li.appendChild(el("span", t.top_tags.slice(0, 3).join(", "), "tags"));
        li.addEventListener("click", () => pick(t.id));
        ol.appendChild(li);
      }
      status(res.total ? "" : "nothing found for “" + q + "”");
    } catch (e) { status(e.message, true); }
  }

  // ------------------------------------------------------------------ map
  function colourScale(points, kind) {
    if (kind === "value") {
      const vals = points.map((p) => p.value).filter((v) => v !== null && v !== undefined);
      const lo = Math.min(...vals), hi = Math.max(...vals);
      const f = (v) => {
        if (v === null || v === undefined) return "#bbbbbb";
        const t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
        return "hsl(" + Math.round(240 - 240 * t) + ",75%,45%)";
      };
      return { f: f, legend: [["low " + fmt(lo, 2), f(lo)], ["high " + fmt(hi, 2), f(hi)]] };
    }
    const counts = new Map();
    for (const p of points) counts.set(p.label, (counts.get(p.label) || 0) + 1);
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, PALETTE.length).map((e) => e[0]);
    const colour = new Map(top.map((l, i) => [l, PALETTE[i]]));
    const legend = top.map((l) => [l + " (" + counts.get(l) + ")", colour.get(l)]);
    if (counts.size > top.length) legend.push(["other", "#bbbbbb"]);
    return { f: (p) => colour.get(p) || "#bbbbbb", legend: legend };
  }

  async function drawMap() {
    const svg = $("map");
    const colorBy = $("color-by").value || "genre";
    const method = $("map-method").value;
    try {
      const m = await api("/api/map?method=" + method + "&color_by=" + encodeURIComponent(colorBy));
      svg.textContent = "";
      state.points.clear();
      const pts = m.points;
      const xs = pts.map((p) => p.x), ys = pts.map((p) => p.y);
      const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
      const sx = (x) => 30 + 940 * (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5);
      const sy = (y) => 670 - 640 * (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5);
      const scale = colourScale(pts, m.kind);
      const r = pts.length > 5000 ? 2.5 : pts.length > 500 ? 4 : 8;
      for (const p of pts) {
        const c = document.createElementNS(SVG, "circle");
        c.setAttribute("cx", sx(p.x).toFixed(1));
        c.setAttribute("cy", sy(p.y).toFixed(1));
        c.setAttribute("r", r);
        c.setAttribute("fill", scale.f(m.kind === "value" ? p.value : p.label));
        c.setAttribute("class", "point");
        c.dataset.id = p.id;
        c.addEventListener("mouseenter", (ev) => showTip(ev, p, m.kind));
        c.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
        c.addEventListener("click", () => pick(p.id));
        svg.appendChild(c);
        state.points.set(p.id, c);
      }
      const legend = $("legend");
      legend.textContent = "";
      for (const [label, colour] of scale.legend) {
        const s = el("span", label, "key");
        const dot = el("i");
        dot.style.background = colour;
        s.prepend(dot);
        legend.appendChild(s);
      }
      if (m.total > pts.length) legend.appendChild(el("span", pts.length + " of " + m.total + " tracks shown", "key"));
      highlight();
    } catch (e) { svg.textContent = ""; status("map: " + e.message, true); }
  }

  function showTip(ev, p, kind) {
    const tip = $("tooltip");
    tip.textContent = name(p) + (p.artist ? " — " + p.artist : "") +
      (kind === "value" ? " (" + fmt(p.value, 2) + ")" : (p.label ? " [" + p.label + "]" : ""));
    const box = $("map-wrap").getBoundingClientRect();
    tip.style.left = (ev.clientX - box.left + 12) + "px";
    tip.style.top = (ev.clientY - box.top + 12) + "px";
    tip.hidden = false;
  }

  function highlight() {
    const inList = new Set(state.list.map((t) => t.id));
    for (const [id, c] of state.points) {
      c.classList.toggle("selected", state.current !== null && id === state.current.id);
      c.classList.toggle("in-list", inList.has(id));
    }
  }

  // ------------------------------------------------------------------ track panel
  function pick(id) {
    if (state.pathFrom !== null) {
      const from = state.pathFrom;
      cancelPath();
      if (from !== id) return showPath(from, id);
    }
    return selectTrack(id);
  }

  // A track of a CUE album is a part of its audio file: audio_url carries it as a media
  // fragment (#t=start,end); the player also seeks to start_s and stops at end_s itself
  // (one "play" after the end starts the part again instead of the next track).
  function playSegment(audio, t) {
    const cue = t.source_path && t.start_s !== null && t.start_s !== undefined;
    audio.dataset.start = cue ? String(t.start_s) : "";
    audio.dataset.end = cue && t.end_s !== null && t.end_s !== undefined ? String(t.end_s) : "";
    audio.dataset.stopped = "";
    audio.src = t.audio_url;
  }

  // dataset.stopped: the player stopped the part at its end.  Until the next "play" event a
  // timeupdate is not acted on: the seek to the end fires one (no seek loop), and one queued
  // before play() was called must not pause the restart ("play" is dispatched after it).
  function keepInSegment(ev) {
    const audio = ev.target;
    if (!audio.dataset.start) return;
    const start = Number(audio.dataset.start);
    const end = audio.dataset.end ? Number(audio.dataset.end) : Infinity;
    if (ev.type === "timeupdate") {
      if (audio.dataset.stopped || audio.currentTime < end) return;
      audio.dataset.stopped = "1";  // also when the browser paused there itself (the #t= end)
      if (!audio.paused) audio.pause();
      if (audio.currentTime > end) audio.currentTime = end;
    } else if (ev.type === "play") {
      audio.dataset.stopped = "";
      if (audio.currentTime >= end - 0.05 || audio.currentTime < start - 0.25) audio.currentTime = start;
    }
  }

  async function selectTrack(id) {
    try {
      const t = await api("/api/tracks/" + id);
      state.current = t;
      $("empty-hint").hidden = true;
      $("track-panel").hidden = false;
      $("track-title").textContent = name(t);
      $("track-sub").textContent = [t.artist, t.album, t.year].filter(Boolean).join(" · ") + "  (#" + t.id + ")";
      playSegment($("audio"), t);
      const facts = $("track-facts");
      facts.textContent = "";
      const x = t.explain || {};
      const rows = [["tempo", x.tempo_bpm ? fmt(x.tempo_bpm, 0) + " BPM" : "–"],
        ["key", x.key ? x.key + (x.mode ? " " + x.mode : "") : "–"],
        ["loudness", x.loudness_db !== null && x.loudness_db !== undefined ? fmt(x.loudness_db, 1) + " LUFS" : "–"],
        ["brightness", x.brightness_hz ? fmt(x.brightness_hz, 0) + " Hz" : "–"],
        ["duration", t.duration_s ? fmt(t.duration_s, 1) + " s" : "–"],
        ["file", t.path]];
      for (const [k, v] of rows) { facts.appendChild(el("dt", k)); facts.appendChild(el("dd", v)); }
      const tags = $("track-tags");
      tags.textContent = "";
      for (const [tag, p] of t.top) {
        const row = el("div", undefined, "tag");
        row.appendChild(el("span", tag, "name"));
        const bar = el("span", undefined, "bar");
        bar.style.width = Math.round(100 * p) + "%";
        row.appendChild(bar);
        row.appendChild(el("span", fmt(p, 2), "p"));
        tags.appendChild(row);
      }
      highlight();
      await showSimilar(id);
    } catch (e) { status(e.message, true); }
  }

  // ------------------------------------------------------------------ lists
  function showList(title, rows, kind) {
    state.list = rows;
    $("list-panel").hidden = false;
    $("list-title").textContent = title;
    const ol = $("playlist");
    ol.textContent = "";
    ol.dataset.kind = kind;
    for (const r of rows) {
      const li = el("li");
      li.dataset.id = r.id;
      li.appendChild(el("span", name(r), "title"));
      li.appendChild(el("span", r.artist || "", "sub"));
      if (r.similarity !== undefined && r.similarity !== null) li.appendChild(el("span", Math.round(100 * r.similarity) + "%", "score"));
      if (r.why) li.appendChild(el("span", r.why, "why"));
      li.addEventListener("click", () => pick(r.id));
      ol.appendChild(li);
    }
    const ids = rows.map((r) => r.id).join(",");
    const t = encodeURIComponent(title);
    $("dl-m3u8").href = "/api/playlist.m3u8?ids=" + ids + "&title=" + t;
    $("dl-xspf").href = "/api/playlist.xspf?ids=" + ids + "&title=" + t;
    highlight();
  }

  async function showSimilar(id) {
    const rows = await api("/api/tracks/" + id + "/similar?k=10&explain=1");
    showList("Similar to " + name(state.current), rows, "similar");
  }

  async function showRadio() {
    if (!state.current) return;
    try {
      const rows = await api("/api/radio?n=20&include_seeds=1&seeds=" + state.current.id);
      showList("Radio from " + name(state.current), rows, "radio");
    } catch (e) { status(e.message, true); }
  }

  async function showPath(from, to) {
    try {
      const rows = await api("/api/path?n=10&from=" + from + "&to=" + to);
      const a = rows.length ? name(rows[0]) : from, b = rows.length ? name(rows[rows.length - 1]) : to;
      showList("Path from " + a + " to " + b, rows, "path");
    } catch (e) { status(e.message, true); }
  }

  function startPath() {
    if (!state.current) return;
    state.pathFrom = state.current.id;
    $("path-hint").hidden = false;
    document.body.classList.add("picking");
  }
  function cancelPath() {
    state.pathFrom = null;
    $("path-hint").hidden = true;
    document.body.classList.remove("picking");
  }

  // ------------------------------------------------------------------ start
  async function start() {
    $("search-form").addEventListener("submit", search);
    $("radio-btn").addEventListener("click", showRadio);
    $("path-btn").addEventListener("click", startPath);
    $("similar-btn").addEventListener("click", () => state.current && showSimilar(state.current.id));
    $("color-by").addEventListener("change", drawMap);
    $("map-method").addEventListener("change", drawMap);
    document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") cancelPath(); });
    $("audio").addEventListener("timeupdate", keepInSegment);
    $("audio").addEventListener("play", keepInSegment);
    try {
      const info = await api("/api/info");
      status(info.tracks + " tracks");
      const sel = $("color-by");
      const groups = [["genre", "top genre"], ["artist", "artist"], ["album", "album"], ["folder", "folder"]];
      for (const [v, l] of groups) { const o = el("option", l); o.value = v; sel.appendChild(o); }
      for (const d of ["tempo_bpm", "loudness_db"].filter((d) => info.descriptors.includes(d))) {
        const o = el("option", d.replace("_", " ")); o.value = "descriptor:" + d; sel.appendChild(o);
      }
      for (const t of info.tags) { const o = el("option", "tag: " + t); o.value = "tag:" + t; sel.appendChild(o); }
    } catch (e) { status(e.message, true); return; }
    await Promise.all([search(), drawMap()]);
    document.body.dataset.ready = "1";
  }
  start();
})();
