"""The gallery page as one self-contained HTML text: data in, HTML out.

No CDN, no framework, no external file: the CSS and the small script are
inline, so the page works offline, from file:// or any static server. Every
user string (file names, keys, error messages) goes through `_e` (HTML-escaped,
quotes included) and the script only ever sets `textContent`, never HTML; a
Content-Security-Policy that allows only this page's own script and style (by
hash) is the second line of defence. Built for thousands of images: the page
is static HTML (no client-side rendering), images load lazily and decode off
the main thread, and cards off screen are not laid out (content-visibility).
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable

from cli.console import human_bytes
from cli.gallery.model import Failure, Gallery, Rendition, Source

THUMB_BOX = 128  # CSS pixels: the long edge of a rendition's tile in the grid

_CSS = """
:root{color-scheme:light dark;--bg:#f6f6f4;--fg:#1b1b1b;--muted:#5c5c5c;--card:#fff;--line:#d9d9d6;--accent:#0a58b0;--bad:#a4001d}
@media (prefers-color-scheme:dark){:root{--bg:#111;--fg:#ececec;--muted:#a8a8a8;--card:#1c1c1c;--line:#353535;--accent:#7db7ff;--bad:#ff8095}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
header{padding:1rem 1rem .5rem}
h1{font-size:1.3rem;margin:0 0 .2rem;overflow-wrap:anywhere}
.summary,.note{color:var(--muted);margin:0 0 .4rem}
.tools{display:flex;gap:.5rem;flex-wrap:wrap;align-items:center}
.tools input{font:inherit;padding:.35rem .5rem;border:1px solid var(--line);border-radius:6px;background:var(--card);color:var(--fg);width:min(100%,22rem)}
main{padding:.5rem 1rem 2rem}
.failures{border:1px solid var(--bad);border-radius:8px;padding:.25rem 1rem .5rem;margin:0 0 1rem;background:var(--card)}
.failures h2{color:var(--bad);font-size:1rem;margin:.5rem 0}
.failures ul{margin:0;padding-left:1.2rem}
.failures li{overflow-wrap:anywhere}
.grid{display:grid;gap:1rem;grid-template-columns:repeat(auto-fill,minmax(min(100%,26rem),1fr));list-style:none;margin:0;padding:0}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.75rem;content-visibility:auto;contain-intrinsic-size:auto 15rem}
.card h2{font-size:1rem;margin:0;overflow-wrap:anywhere}
.meta{color:var(--muted);margin:.1rem 0 .5rem;font-size:.85rem}
.rends{display:flex;flex-wrap:wrap;gap:.5rem;list-style:none;margin:0 0 .5rem;padding:0}
.rend{display:flex;flex-direction:column;align-items:center;width:8.5rem;padding:.25rem;border-radius:6px;color:inherit;text-decoration:none;font-size:.78rem;text-align:center}
.rend:hover{background:var(--bg)}
.rend img,.cmp-grid img{background:repeating-conic-gradient(#8883 0 25%,transparent 0 50%) 0 0/16px 16px}
.rend img{width:8rem;height:8rem;object-fit:contain}
.rend b{font-weight:600}
.compare{font:inherit;padding:.3rem .8rem;border:1px solid var(--accent);border-radius:6px;background:transparent;color:var(--accent);cursor:pointer}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
dialog{width:min(98vw,110rem);max-width:none;max-height:96vh;border:none;border-radius:8px;padding:0;background:var(--card);color:var(--fg)}
dialog::backdrop{background:#000b}
.cmp-head{display:flex;gap:.5rem;align-items:center;padding:.5rem .75rem;border-bottom:1px solid var(--line);position:sticky;top:0;background:var(--card);z-index:1}
.cmp-head h2{flex:1;font-size:1rem;margin:0;overflow-wrap:anywhere}
.cmp-head button{font:inherit;min-width:2.5rem;padding:.3rem .6rem;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg);cursor:pointer}
.cmp-pos{color:var(--muted);font-size:.85rem;white-space:nowrap}
.cmp-grid{display:grid;gap:.75rem;padding:.75rem;grid-template-columns:repeat(auto-fit,minmax(min(100%,18rem),1fr))}
.cmp-grid figure{margin:0}
.cmp-grid img{display:block;width:100%;height:auto}
.cmp-grid figcaption{font-size:.85rem;color:var(--muted);padding-top:.25rem}
.hint{color:var(--muted);font-size:.8rem;margin:0;padding:0 .75rem .6rem}
@media (max-width:40rem){body{font-size:14px}main,header{padding-left:.6rem;padding-right:.6rem}.rend{width:calc(50% - .25rem)}.rend img{width:100%}}
"""

# Reads the page's own DOM; writes only textContent and attributes it computed, never HTML.
_JS = """
(() => {
  "use strict";
  const cards = Array.from(document.querySelectorAll(".card"));
  const dialog = document.getElementById("compare");
  const title = document.getElementById("cmp-title");
  const position = document.getElementById("cmp-pos");
  const grid = document.getElementById("cmp-grid");
  let shown = [], current = -1, opener = null;

  const visible = () => cards.filter((card) => !card.hidden);

  function figure(link) {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.decoding = "async";
    img.width = Number(link.dataset.w);
    img.height = Number(link.dataset.h);
    img.alt = link.querySelector("img").alt;
    img.src = link.getAttribute("href");
    const caption = document.createElement("figcaption");
    caption.textContent = link.dataset.label;
    fig.append(img, caption);
    return fig;
  }

  function show(index) {
    if (!shown.length) return;
    current = (index + shown.length) % shown.length;
    const card = shown[current];
    title.textContent = card.querySelector("h2").textContent;
    position.textContent = (current + 1) + " / " + shown.length;
    grid.replaceChildren(...Array.from(card.querySelectorAll("a.rend"), figure));
    dialog.dataset.index = String(cards.indexOf(card));
  }

  function open(card, from) {
    shown = visible();
    opener = from;
    show(shown.indexOf(card));
    if (!dialog.open) dialog.showModal();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("button.compare");
    if (button) open(button.closest(".card"), button);
  });
  document.getElementById("cmp-prev").addEventListener("click", () => show(current - 1));
  document.getElementById("cmp-next").addEventListener("click", () => show(current + 1));
  document.getElementById("cmp-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); });
  dialog.addEventListener("keydown", (event) => {
    if (event.key === "ArrowRight" || event.key === "ArrowDown") show(current + 1);
    else if (event.key === "ArrowLeft" || event.key === "ArrowUp") show(current - 1);
    else return;
    event.preventDefault();
  });
  dialog.addEventListener("close", () => {
    grid.replaceChildren();
    const card = shown[current];
    // Back to the card last shown, so the keyboard user continues from there.
    const target = card ? card.querySelector("button.compare") : opener;
    if (target) { target.scrollIntoView({block: "nearest"}); target.focus(); }
  });

  // Arrow keys move between cards' compare buttons in the grid.
  document.getElementById("grid").addEventListener("keydown", (event) => {
    const steps = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1};
    if (!(event.key in steps) || !event.target.matches("button.compare")) return;
    const list = visible();
    const next = list[list.indexOf(event.target.closest(".card")) + steps[event.key]];
    if (next) { next.querySelector("button.compare").focus(); event.preventDefault(); }
  });

  const filter = document.getElementById("filter");
  if (filter) filter.addEventListener("input", () => {
    const needle = filter.value.trim().toLowerCase();
    for (const card of cards) card.hidden = needle !== "" && !card.dataset.name.includes(needle);
  });
})();
"""


def _e(text: object) -> str:
    """HTML-escape for text and attribute values alike (quotes included)."""
    return html.escape(str(text), quote=True)


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def _csp() -> str:
    return "; ".join((
        "default-src 'none'",
        "img-src 'self' file: http: https: data:",  # data: for the empty favicon
        f"style-src {_hash(_CSS)}",
        f"script-src {_hash(_JS)}",
        "base-uri 'none'",
        "form-action 'none'",
    ))


def saving(rendition_bytes: int, source_bytes: int | None) -> str:
    """"−87%" when the rendition is smaller than its source, "+12%" when larger, "" when unknown."""
    if not source_bytes:
        return ""
    percent = round((1 - rendition_bytes / source_bytes) * 100)
    return f"−{percent}%" if percent >= 0 else f"+{-percent}%"


def _fit(width: int, height: int, box: int = THUMB_BOX) -> tuple[int, int]:
    scale = min(1.0, box / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _label(r: Rendition, source: Source) -> str:
    parts = [r.name, r.format.upper(), f"{r.width}×{r.height}", human_bytes(r.bytes)]
    change = saving(r.bytes, source.bytes)
    return " · ".join(parts + ([f"{change} vs source"] if change else []))


def _rendition(r: Rendition, source: Source) -> str:
    w, h = _fit(r.width, r.height)
    change = saving(r.bytes, source.bytes)
    return (
        f'<li><a class="rend" href="{_e(r.url)}" data-w="{r.width}" data-h="{r.height}" '
        f'data-label="{_e(_label(r, source))}">'
        f'<img src="{_e(r.url)}" width="{w}" height="{h}" loading="lazy" decoding="async" '
        f'alt="{_e(f"{source.name} — {r.name} ({r.format.upper()})")}">'
        f"<span><b>{_e(r.name)}</b> · {_e(r.format.upper())}</span>"
        f"<span>{r.width}×{r.height}</span>"
        f"<span>{_e(human_bytes(r.bytes))}{_e(' · ' + change) if change else ''}</span></a></li>"
    )


def _source_meta(s: Source) -> str:
    parts = []
    if s.format:
        parts.append(s.format.upper())
    if s.width and s.height:
        parts.append(f"{s.width}×{s.height}")
    parts.append(f"source {human_bytes(s.bytes)}" if s.bytes is not None else "source not found")
    return " · ".join(parts)


def _card(index: int, s: Source) -> str:
    tiles = "".join(_rendition(r, s) for r in s.renditions)
    return (
        f'<li class="card" id="s{index}" data-name="{_e(s.name.lower())}">'
        f"<h2>{_e(s.name)}</h2><p class=\"meta\">{_e(_source_meta(s))}</p>"
        f'<ul class="rends">{tiles}</ul>'
        f'<button type="button" class="compare" aria-haspopup="dialog">Compare {len(s.renditions)} renditions</button>'
        "</li>"
    )


def _failure(f: Failure) -> str:
    # Messages usually start with the file name already: show it once.
    message = f.error[len(f.name) + 1:].lstrip() if f.error.startswith(f.name + ":") else f.error
    return f"<li><code>{_e(f.name)}</code>: {_e(message)}</li>"


def _failures(failures: Iterable[Failure]) -> str:
    rows = "".join(_failure(f) for f in failures)
    if not rows:
        return ""
    count = rows.count("<li>")
    return f'<section class="failures" id="failures"><h2>{count} failed</h2><ul>{rows}</ul></section>'


def _summary(g: Gallery) -> str:
    count = sum(len(s.renditions) for s in g.sources)
    text = f"{len(g.sources)} sources · {count} renditions"
    if g.sources:
        text += f" · {human_bytes(g.bytes_in)} in → {human_bytes(g.bytes_out)} out"
    if g.failures:
        text += f" · {len(g.failures)} failed"
    return text


_COMPARE_DIALOG = (
    '<dialog id="compare" aria-labelledby="cmp-title">'
    '<div class="cmp-head">'
    '<button type="button" id="cmp-prev" aria-label="Previous image">←</button>'
    '<h2 id="cmp-title"></h2><span class="cmp-pos" id="cmp-pos"></span>'
    '<button type="button" id="cmp-next" aria-label="Next image">→</button>'
    '<button type="button" id="cmp-close" aria-label="Close">✕</button>'
    "</div>"
    '<p class="hint">Every rendition at the same display width. ← → previous / next image, Esc closes.</p>'
    '<div class="cmp-grid" id="cmp-grid"></div>'
    "</dialog>"
)


def render(gallery: Gallery) -> str:
    """The whole page for ``gallery`` (UTF-8 text, self-contained)."""
    cards = "".join(_card(i, s) for i, s in enumerate(gallery.sources))
    note = f'<p class="note">{_e(gallery.note)}</p>' if gallery.note else ""
    empty = "" if gallery.sources else "<p>No renditions yet.</p>"
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_csp())}">'
        '<meta name="referrer" content="no-referrer">'
        '<link rel="icon" href="data:,">'
        f"<title>{_e(gallery.title)}</title><style>{_CSS}</style></head>\n"
        f"<body><header><h1>{_e(gallery.title)}</h1>"
        f'<p class="summary">{_e(_summary(gallery))}</p>{note}'
        '<div class="tools"><input type="search" id="filter" placeholder="Filter by name" '
        'aria-label="Filter images by name"></div></header>\n'
        f"<main>{_failures(gallery.failures)}{empty}"
        f'<ul class="grid" id="grid">{cards}</ul></main>\n'
        f"{_COMPARE_DIALOG}<script>{_JS}</script></body></html>\n"
    )
