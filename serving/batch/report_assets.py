"""The report page's inline stylesheet and script (no network, no external fonts).

The script never builds HTML from strings: every piece of text it shows was escaped by
:mod:`serving.batch.report` into ``<template>`` elements, which it clones. The page's
Content-Security-Policy allows this script by its hash and nothing else, so markup that slipped
through escaping still could not run.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["CSS", "JS", "JS_CSP_HASH"]

CSS = """
:root { --ink:#1d2330; --muted:#5d6678; --line:#d9dde5; --bg:#f6f7f9; --card:#fff;
  --placed:#2f7d4f; --blocked:#b3261e; --face:#1f6feb; --logo:#d97706; --text:#7c3aed;
  --safety:#b3261e; --object:#0f766e; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: var(--bg); }
header.page { padding: 20px 28px 12px; background: var(--card); border-bottom: 1px solid var(--line); }
header.page h1 { margin: 0 0 4px; font-size: 22px; }
.muted { color: var(--muted); }
.note { background: #fff7e0; border: 1px solid #f0d68a; padding: 8px 12px; border-radius: 6px;
  margin: 8px 0; }
.error { background: #fdecea; border: 1px solid #f1b0aa; color: #7a1c16; padding: 8px 12px;
  border-radius: 6px; margin: 8px 0; white-space: pre-wrap; word-break: break-word; }
main { padding: 12px 28px 40px; }
.toolbar { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; margin-top: 10px; }
.toolbar input[type=search] { padding: 5px 8px; min-width: 260px; border: 1px solid var(--line);
  border-radius: 6px; }
.legend label { margin-right: 10px; white-space: nowrap; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 3px;
  vertical-align: -1px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; background: var(--card); }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.hl td { background: #fff3c4; }
section.media { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 14px 18px; margin: 16px 0; }
section.compact { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 14px 18px; margin: 16px 0; }
section.compact > h2 { margin: 0; font-size: 17px; }
section.media > h2 { margin: 0; font-size: 17px; word-break: break-all; }
h3 { font-size: 13px; margin: 14px 0 4px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .04em; }
.timeline { margin: 10px 0 4px; }
.row { display: grid; grid-template-columns: 200px 1fr; align-items: center; min-height: 24px; }
.row .label { font-size: 12px; padding-right: 8px; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
.track { position: relative; height: 20px; background: #eef0f4; border-radius: 4px; }
.axis .track { background: none; height: 18px; border-top: 1px solid var(--line); }
.tick { position: absolute; top: 0; font-size: 11px; color: var(--muted); transform: translateX(-50%);
  padding-top: 2px; white-space: nowrap; }
.tick.end { transform: translateX(-100%); }
.tick.end::before { left: 100%; }
.tick::before { content: ""; position: absolute; left: 50%; top: -1px; height: 5px;
  border-left: 1px solid var(--muted); }
.seg { position: absolute; top: 2px; height: 16px; min-width: 3px; border: 0; padding: 0;
  border-radius: 3px; cursor: pointer; }
.seg.placed { background: var(--placed); opacity: .9; }
.seg.blocked { top: 5px; height: 10px;
  background: repeating-linear-gradient(45deg, var(--blocked) 0 4px, #f3c3bf 4px 8px); }
.seg:hover, .seg:focus, .seg.active { outline: 2px solid var(--ink); outline-offset: 1px; z-index: 2; }
.kfmark { position: absolute; top: 4px; width: 2px; height: 12px; background: #8a93a6;
  transform: translateX(-1px); }
.kfmark.shown { background: var(--ink); height: 16px; top: 2px; }
.pinned { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; margin: 6px 0;
  background: #fbfbfd; }
#tip { position: fixed; z-index: 10; max-width: 420px; background: var(--card); border: 1px solid var(--line);
  border-radius: 6px; box-shadow: 0 4px 18px rgba(0,0,0,.15); padding: 8px 10px; pointer-events: none;
  font-size: 12px; }
.detail h4 { margin: 0 0 4px; font-size: 13px; word-break: break-all; }
.detail ul, td ul { margin: 2px 0 0; padding-left: 16px; }
.kv span { margin-right: 12px; white-space: nowrap; }
.strip { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 10px; }
figure.kf { margin: 0; border: 1px solid var(--line); border-radius: 6px; overflow: hidden;
  background: #fafbfc; }
figure.kf:target { outline: 3px solid var(--logo); }
.frame { position: relative; width: 100%; background: #c9ced8; overflow: hidden; }
.frame img { display: block; width: 100%; height: 100%; }
.frame .nothumb { position: absolute; inset: 0; display: flex; align-items: center;
  justify-content: center; color: #566; font-size: 12px; padding: 6px; text-align: center; }
.box { position: absolute; border: 2px solid; border-radius: 2px; }
.box > span { position: absolute; left: -2px; top: -16px; font-size: 10px; line-height: 14px;
  padding: 0 3px; color: #fff; white-space: nowrap; max-width: 200px; overflow: hidden;
  text-overflow: ellipsis; }
.box > span.in { top: 0; left: 0; }
.box.face { border-color: var(--face); } .box.face > span { background: var(--face); }
.box.logo { border-color: var(--logo); } .box.logo > span { background: var(--logo); }
.box.text { border-color: var(--text); } .box.text > span { background: var(--text); }
.box.safety { border-color: var(--safety); border-style: dashed; }
.box.safety > span { background: var(--safety); }
.box.object { border-color: var(--object); } .box.object > span { background: var(--object); }
body.hide-face .box.face, body.hide-logo .box.logo, body.hide-text .box.text,
body.hide-safety .box.safety, body.hide-object .box.object { display: none; }
figcaption { padding: 6px 8px; font-size: 12px; }
figcaption ul { margin: 2px 0 0; padding-left: 16px; }
.ok { color: var(--placed); } .bad { color: var(--blocked); }
details summary { cursor: pointer; color: var(--muted); margin: 8px 0 4px; }
code { font-size: 12px; background: #eef0f4; padding: 0 3px; border-radius: 3px; }
@media print { .toolbar, #tip { display: none; } section.media { break-inside: avoid-page; } }
"""

JS = """
(() => {
  "use strict";
  const tip = document.getElementById("tip");
  const detailOf = (el) => {
    const t = document.getElementById(el.dataset.detail || "");
    return t && t.content ? t.content.cloneNode(true) : null;
  };
  const place = (x, y) => {
    const w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = Math.max(4, Math.min(x + 14, window.innerWidth - w - 8)) + "px";
    tip.style.top = Math.max(4, Math.min(y + 14, window.innerHeight - h - 8)) + "px";
  };
  const segOf = (e) => (e.target instanceof Element ? e.target.closest(".seg") : null);
  document.addEventListener("mouseover", (e) => {
    const s = segOf(e);
    if (!s) return;
    const d = detailOf(s);
    if (!d) return;
    tip.replaceChildren(d);
    tip.hidden = false;
    place(e.clientX, e.clientY);
  });
  document.addEventListener("mousemove", (e) => { if (!tip.hidden) place(e.clientX, e.clientY); });
  document.addEventListener("mouseout", (e) => { if (segOf(e)) tip.hidden = true; });
  const pin = (s) => {
    const media = s.closest("section.media");
    if (!media) return;
    const panel = media.querySelector(".pinned");
    const d = detailOf(s);
    if (panel && d) { panel.replaceChildren(d); panel.hidden = false; }
    media.querySelectorAll(".seg.active").forEach((x) => x.classList.remove("active"));
    media.querySelectorAll("tr.hl").forEach((x) => x.classList.remove("hl"));
    s.classList.add("active");
    const row = document.getElementById("row-" + (s.dataset.detail || ""));
    if (row) row.classList.add("hl");
  };
  document.addEventListener("click", (e) => { const s = segOf(e); if (s) pin(s); });
  document.addEventListener("focusin", (e) => { const s = segOf(e); if (s) pin(s); });
  const q = document.getElementById("filter");
  if (q) q.addEventListener("input", () => {
    const needle = q.value.trim().toLowerCase();
    let shown = 0;
    document.querySelectorAll("section.media").forEach((m) => {
      const hit = !needle || (m.dataset.search || "").includes(needle);
      m.hidden = !hit;
      if (hit) shown += 1;
    });
    const c = document.getElementById("shown");
    if (c) c.textContent = String(shown);
  });
  document.querySelectorAll("input[data-kind]").forEach((box) => {
    box.addEventListener("change", () => {
      document.body.classList.toggle("hide-" + box.dataset.kind, !box.checked);
    });
  });
})();
"""

JS_CSP_HASH = "sha256-" + base64.b64encode(hashlib.sha256(JS.encode()).digest()).decode("ascii")
"""The script's hash for the page's Content-Security-Policy (``script-src``)."""
