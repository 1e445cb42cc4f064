"""How results, timings, statistics and the start-up notice read on the page and in the API's JSON.

No Gradio here: plain text, Markdown and HTML (escaped), testable on their own.
"""
from __future__ import annotations

import html
from typing import Any, Callable

FILTER_LABELS = {"gender": "Gender", "category": "Category", "subcategory": "Subcategory", "article_type": "Type",
                 "colour": "Colour", "season": "Season", "usage": "Usage"}
HINT = "Upload a photo, take one with your camera, pick an example or describe what you are looking for."


def kind_of(r) -> str:
    """The result's kind for a card: its article type, else its subcategory, else its category."""
    meta = getattr(r, "metadata", None) or {}
    return str(getattr(r, "article_type", "") or meta.get("article_type") or meta.get("subcategory")
               or r.category or "")


def colour_of(r) -> str:
    meta = getattr(r, "metadata", None) or {}
    return str(getattr(r, "colour", "") or meta.get("colour") or meta.get("baseColour") or "")


def match_text(match: float, score: float, calibrated: bool = True) -> str:
    """The card's strength line: a calibrated probability as "% match", a raw cosine as "similarity 0.93"."""
    if not calibrated:
        return f"similarity {score:.2f}"
    return "100% match" if match >= 100 else f"{match:.0f}% match"


def folded_text(r) -> str:
    """" · +2 similar" when near-duplicates were folded into this result (stylishi.dedup), else ""."""
    n = int(getattr(r, "folded", 0) or 0)
    return f" · +{n} similar" if n else ""


def caption(r, calibrated: bool = True) -> str:
    """A result card's text: "#rank · NN% match[ · +N similar]" / name / "article type · colour"."""
    detail = " · ".join(v for v in (kind_of(r), colour_of(r)) if v)
    return (f"#{r.rank} · {match_text(r.match, r.score, calibrated)}{folded_text(r)}\n{r.name}"
            + (f"\n{detail}" if detail else ""))


def calibrated(response) -> bool:
    """Whether the response's `match` is a calibrated probability (indexes without a calibration: raw cosine)."""
    return bool(getattr(response, "calibrated", True))


def gallery(response, url_of: Callable[[str], str]) -> list[tuple[str, str]]:
    cal = calibrated(response)
    return [(url_of(r.thumbnail), caption(r, cal)) for r in response.results]


def results_json(response, url_of: Callable[[str], str]) -> list[dict[str, Any]]:
    """The API's JSON per match (small on purpose: what a program needs to show or fetch a result)."""
    return [{"rank": r.rank, "id": r.id, "score": r.score, "match": r.match, "name": r.name,
             "category": r.category, "article_type": str(getattr(r, "article_type", "") or
                                                         (r.metadata or {}).get("article_type") or ""),
             "colour": colour_of(r), "thumbnail": url_of(r.thumbnail), "folded": int(getattr(r, "folded", 0) or 0)}
            for r in response.results]


def look_json(look, url_of: Callable[[str], str]) -> list[dict[str, Any]]:
    """Shop the look in the API: one entry per garment, its results as search_image gives them."""
    return [{"label": g.label, "score": round(g.score, 4), "box": [round(v, 4) for v in g.box],
             "results": results_json(g.response, url_of)} for g in look.garments]


def garment_name(garment, n: int) -> str:
    """A found garment as the page names it: "1 · top · 93%"."""
    return f"{n} · {garment.label} · {garment.score * 100:.0f}%"


def look_rows_html(look, url_of: Callable[[str], str], per_row: int = 5) -> str:
    """One row per garment found: its name, then its best matches as small cards."""
    if not look.garments:
        return ('<p class="look-none">No garment found in this photo. The matches shown are for the whole photo; '
                "or drag a box around a garment in the Photo tab.</p>")
    rows = []
    for n, g in enumerate(look.garments, start=1):
        cal = calibrated(g.response)
        cards_ = "".join(
            f'<figure class="look-card"><img src="{html.escape(url_of(r.thumbnail))}" alt="{html.escape(r.name)}" '
            f'loading="lazy"><figcaption>{html.escape(match_text(r.match, r.score, cal))}<br>'
            f"{html.escape(r.name)}</figcaption></figure>" for r in g.response.results[:per_row])
        rows.append(f'<div class="look-row" data-garment="{n - 1}"><div class="look-label">'
                    f"{html.escape(garment_name(g, n))}</div><div class=\"look-cards\">{cards_}</div></div>")
    return "".join(rows)


def shown(response) -> list[dict[str, Any]]:
    """What the page keeps of the results on screen (for "more like this" by position)."""
    cal = calibrated(response)
    return [{"id": r.id, "name": r.name, "rank": r.rank, "kind": kind_of(r),
             "strength": match_text(r.match, r.score, cal)} for r in response.results]


def selected_line(r: dict[str, Any]) -> str:
    return f"Selected **#{r['rank']} {html.escape(r['name'])}** ({html.escape(r['kind'])}, {r['strength']})"


def filters_text(filters: dict | None) -> str:
    if not filters:
        return "none"
    parts = []
    for col, v in filters.items():
        values = [v] if isinstance(v, str) else list(v)
        parts.append(f"{FILTER_LABELS.get(col, col).lower()} {' or '.join(map(str, values))}")
    return html.escape(", ".join(parts))


EFFECTS = {"filter": "= {value} (filter)", "exclude": "≠ {value} (excluded)", "boost": "= {value} (first)",
           "demote": "≠ {value} (last)", "keep": "= {value} (kept from the photo)"}


def reading_text(reading) -> str:
    """How "like this, but …" words were read (a stylishi.modifiers.Reading), e.g.
    "colour = Blue (filter) · rest: 'with a collar' at weight 0.3"; "" for no reading."""
    if reading is None:
        return ""
    parts = [f"{FILTER_LABELS.get(t.column, t.column.replace('_', ' ')).lower()} "
             + EFFECTS.get(t.effect, "{value}").format(value=t.value) for t in reading.terms]
    if reading.rest:
        parts.append(f"rest: '{reading.rest}' at weight {reading.weight:g}")
    if reading.away:
        parts.append(f"away from: '{reading.away}' at weight {reading.weight:g}")
    return html.escape(" · ".join(parts) if parts else "the words named nothing to change", quote=False)


def box_text(box) -> str:
    """The searched region of the photo, in percent of its width and height ("" for the whole photo)."""
    if not box:
        return ""
    x0, y0, x1, y1 = (round(v * 100) for v in box)
    return f"region {x0}–{x1} % across, {y0}–{y1} % down"


def focus_text(focused) -> str:
    """The garment a photo search focused on (a stylishi.focus.Focused), e.g. "focused on the shoes · draw a box
    to pick another"; "" when the photo was searched as it was. (The detector's confidence is not shown: it is
    not the chance that the label is right, and a shopper would read it as one.)"""
    if focused is None:
        return ""
    return html.escape(f"focused on the {focused.label} · draw a box to pick another", quote=False)


def status(response, filters: dict | None, what: str | None = None) -> str:
    t = response.timings_ms
    kinds = {"image": "photo", "text": "text", "item": "“more like this”", "vector": "photo", "refine": "refined"}
    what = what or kinds.get(response.query, response.query)
    n = len(response.results)
    if n == 0:
        words = reading_text(getattr(response, "reading", None))
        if words and not filters:
            return (f"No product matches these words ({words}) among the {response.catalog_size:,} in the "
                    "catalog. Change the words to see more.")
        return (f"No product matches these filters ({filters_text(filters)}"
                + (f"; words read as: {words}" if words else "") + f") among the {response.catalog_size:,} "
                "in the catalog. Remove a filter to see more.")
    filtered = f" · filtered by {filters_text(filters)}" if filters else ""
    region = box_text(getattr(response, "box", None)) or focus_text(getattr(response, "focus", None))
    words = reading_text(getattr(response, "reading", None))
    filtered += (f" · {region}" if region else "") + (f" · words read as: {words}" if words else "")
    folded = getattr(response, "folded", 0)
    filtered += f" · {folded} near-duplicate{'s' if folded != 1 else ''} folded" if folded else ""
    ms = "\u00a0ms"  # a no-break space keeps "12 ms" on one line
    return (f"**{n}** results for the {what} search among **{response.catalog_size:,}** products{filtered} · "
            f"preprocess {t.get('preprocess', 0):.0f}{ms} · "
            + (f"detect {t['detect']:.0f}{ms} · " if "detect" in t else "")
            + f"embed {t.get('embed', 0):.0f}{ms} · "
            f"search {t.get('search', 0):.1f}{ms} · total **{t.get('total', 0):.0f}{ms}**")


def feedback_line(liked: list, disliked: list) -> str:
    """The page's count of the shopper's 👍 / 👎, e.g. "👍 3 liked · 👎 1 disliked" ("" when there is none)."""
    if not liked and not disliked:
        return ""
    return f"👍 {len(liked)} liked · 👎 {len(disliked)} disliked"


def stats_markdown(stats: dict[str, Any]) -> str:
    """The page's "Service stats" view of `SearchService.metrics.snapshot()`."""
    def ms(value) -> str:
        return "–" if value is None else f"{value:.0f}\u00a0ms"

    def sim(value) -> str:
        return "–" if value is None else f"{value:.3f}"

    lat = stats["latency_ms"]
    lines = [f"**{stats['queries']:,}** queries · **{stats['errors']:,}** errors · **{stats['qps']:.2f}** queries/s "
             f"since start ({stats['uptime_s']:.0f} s ago) · latency p50 **{ms(lat['p50'])}**, p95 {ms(lat['p95'])}, "
             f"p99 {ms(lat['p99'])} · average top similarity **{sim(stats['avg_top_similarity'])}** "
             f"(latency and similarity over the last {stats['window']:,} queries)"]
    if stats["by_kind"]:
        lines += ["", "| query | count | errors | p50 | p95 | p99 | avg top similarity |", "|---|---|---|---|---|---|---|"]
        for kind, k_stats in stats["by_kind"].items():
            k_lat = k_stats["latency_ms"]
            lines.append(f"| {html.escape(kind)} | {k_stats['queries']:,} | {k_stats['errors']:,} | {ms(k_lat['p50'])} "
                         f"| {ms(k_lat['p95'])} | {ms(k_lat['p99'])} | {sim(k_stats['avg_top_similarity'])} |")
    return "\n".join(lines)


def notice_html(service) -> str:
    """The start-up notice: one short line, the reasons folded in a <details> element ("" when there is none)."""
    report = getattr(service, "startup", None)
    headline = report.headline() if report is not None else getattr(service, "notice", None)
    if not headline:
        return ""
    details = report.details() if report is not None else []
    if not details and report is None:  # an older core: the notice is one text, maybe long
        first, _, rest = headline.partition(". ")
        headline, details = (first + ".", [rest]) if rest and len(headline) > 160 else (headline, [])
    folded = ("<details><summary>Why</summary><ul>" + "".join(f"<li>{html.escape(d)}</li>" for d in details)
              + "</ul></details>") if details else ""
    return f"<p>{html.escape(headline)}</p>{folded}"
