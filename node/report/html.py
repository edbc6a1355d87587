"""The report as ONE self-contained HTML file an archivist can open, mail or archive.

No scripts and no external resources (a Content-Security-Policy forbids fetching any):
styles are inline, the chart is inline SVG, previews are data URIs. Every string that
comes from the catalogue (paths, names, reasons, notes, rights) is escaped.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

from .. import wording
from . import rights, thumbs
from .chart import bar_chart
from .model import Cluster, FileFacts, MasterOutcome, Member, Report

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;margin:24px 32px;background:#fbfaf7}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:2px solid #ddd6c8}
h3{font-size:16px;margin:18px 0 6px}.meta{color:#555;margin:0 0 16px}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff}
th,td{border:1px solid #ddd6c8;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1ede4}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.path{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.cluster{background:#fff;border:1px solid #ddd6c8;border-radius:6px;padding:10px 14px;margin:14px 0}
.copies{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.copy{margin:0;width:200px;border:1px solid #ddd6c8;border-radius:4px;padding:8px;background:#fcfcfc}
.copy.keeper{border:3px solid #2e7d32;background:#f1f8f1}
.copy img,.placeholder{display:block;max-width:160px;max-height:160px;margin:0 auto 6px}
.placeholder{width:160px;height:110px;background:repeating-linear-gradient(45deg,#eee,#eee 8px,#e2e2e2 8px,#e2e2e2 16px);
color:#666;text-align:center;line-height:110px;font-size:12px}
.keeper-mark{color:#fff;background:#2e7d32;font-weight:bold;padding:2px 6px;border-radius:3px;display:inline-block;margin:0 0 4px}
.rel{color:#8a3b12;font-weight:600;margin:0 0 4px}.name{font-weight:600;margin:0;word-break:break-all}
.copy dl{margin:4px 0 0;font-size:12px;display:grid;grid-template-columns:auto 1fr;gap:0 6px}
.copy dt{color:#666}.copy dd{margin:0;word-break:break-all}
.badge{font-size:12px;padding:1px 6px;border-radius:3px;background:#fde7c8;color:#7a4300;margin-left:6px}
.why{margin:4px 0 8px}.none{color:#666;font-style:italic}
footer{margin-top:40px;padding-top:10px;border-top:2px solid #ddd6c8;color:#444}
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
#: About 6 kB each: a page of 5,000 previews is ~30 MB, still one a browser opens.
MAX_THUMBNAILS = 5000


def human_bytes(n: int) -> str:
    """Decimal units, as storage is priced (GB = 10^9 bytes)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def money(value: float, currency: str) -> str:
    """Two decimals, or two significant digits for sums below one cent (never 1e-05)."""
    if value == 0 or value >= 0.01:
        text = f"{value:,.2f}"
    else:
        text = f"{value:.{1 - math.floor(math.log10(value))}f}"
    return f"{currency}\u00a0{text}"


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _dims(f: FileFacts) -> str:
    return f"{f.width}\u00d7{f.height}" if f.width and f.height else "?"


def _quality(f: FileFacts) -> str:
    if f.format_family == "lossless":
        return f"{f.format or '?'}, lossless"
    if f.jpeg_quality:
        return f"{f.format or '?'}, quality {f.jpeg_quality}"
    return f.format or "?"


class _Thumbs:
    """Previews, each made once; past ``limit`` the page would grow too large to open."""

    def __init__(self, enabled: bool, limit: int | None) -> None:
        self.enabled = enabled
        self.limit = limit
        self._cache: dict[str, str | None] = {}

    def img(self, f: FileFacts) -> str:
        if not self.enabled:
            return ""
        if f.path not in self._cache:
            if self.limit is not None and len(self._cache) >= self.limit:
                return '<div class="placeholder">preview limit reached</div>'
            self._cache[f.path] = thumbs.data_uri(f.path)
        uri = self._cache[f.path]
        if uri is None:
            return '<div class="placeholder">no preview</div>'
        return f'<img src="{uri}" alt="{_e(f.name)}">'


def _table(headers: list[str], rows: list[list[str]], numeric: frozenset[int] | set[int] = frozenset()) -> str:
    """Cells in ``rows`` must already be escaped HTML."""
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{_e(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{c}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary(r: Report) -> str:
    t = r.totals
    mixed = len(r.mixed_rights_clusters)
    items = [
        f"{plural(t.files, 'file')} ({_e(human_bytes(t.bytes))}) in {plural(len(r.sources), 'source')}",
        f"{plural(t.clusters, 'duplicate cluster')} holding {plural(t.duplicate_files, 'file')}",
        f"{_e(human_bytes(t.reclaimable_bytes))} reclaimable if only the suggested keepers were kept",
        f"{plural(len(r.rights_restricted), 'rights-restricted file')}; "
        f"{plural(mixed, 'cluster')} {'mixes' if mixed == 1 else 'mix'} rights statuses",
        f"{plural(t.unreadable, 'unreadable file')}; {plural(t.low_information, 'low-information image')}",
        f"{plural(len(r.excluded_links), 'link')} ignored because marked as not duplicates",
    ]
    return "<h2>Summary</h2><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _cost(r: Report) -> str:
    t = r.totals
    rows = [[_e(label), _e(money(c.price_per_gb_month, t.currency)), _e(money(c.per_month, t.currency)),
             _e(money(c.per_year, t.currency))]
            for label, c in (("low", t.cost_low), ("high", t.cost_high))]
    chart = bar_chart([(s.source, s.reclaimable_bytes) for s in r.sources],
                      title="Reclaimable storage per source", fmt=human_bytes)
    return ("<h2>Reclaimable storage and cost</h2>"
            f"<p>Reclaimable: <strong>{t.reclaimable_bytes:,} bytes</strong> "
            f"({t.reclaimable_gb:.6f} GB, GB = 10<sup>9</sup> bytes), at the low and high ends of the "
            "storage price range per GB-month:</p>"
            + _table(["price end", "price per GB-month", "per month", "per year"], rows, {1, 2, 3})
            + chart)


def _sources(r: Report) -> str:
    rows = []
    for s in r.sources:
        formats = "<br>".join(f"{_e(f.format)}: {f.files} ({_e(human_bytes(f.bytes))})" for f in s.formats)
        rows.append([f'<span class="path">{_e(s.source)}</span>', str(s.files), _e(human_bytes(s.bytes)), formats,
                     str(s.duplicate_files), _e(human_bytes(s.reclaimable_bytes))])
    return "<h2>Sources</h2>" + _table(
        ["source", "files", "size", "by format", "in clusters", "reclaimable"], rows, {1, 2, 4, 5})


def _card(m: Member, th: _Thumbs, agreed: dict[str, str]) -> str:
    f = m.file
    if m.keeper:
        label = '<p class="keeper-mark">\u2605 Suggested keeper</p>'
    else:
        label = f'<p class="rel">{_e(m.description)}</p>'
    facts = [("size", human_bytes(f.size)), ("pixels", _dims(f)), ("format", _quality(f)),
             ("date", f.capture_date or "unknown"), ("rights", f.rights_shown)]
    if f.rights_restricted:
        facts.append(("reuse", "restricted: review before reuse"))
    if f.path in agreed:
        facts.append(("consortium", agreed[f.path]))
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    cls = "copy keeper" if m.keeper else "copy"
    # Ids are for scripts (report.json and the CSV files carry them too), not for reading.
    return (f'<figure class="{cls}" data-keeper="{"yes" if m.keeper else "no"}" data-asset="{_e(f.asset_id)}"'
            f' data-relation="{_e(m.relation_to_keeper)}">{th.img(f)}<figcaption>'
            f'{label}<p class="name">{_e(f.name)}</p><p class="path">{_e(f.path)}</p><dl>{dl}</dl>'
            "</figcaption></figure>")


def _cluster(c: Cluster, th: _Thumbs, agreed: dict[str, str]) -> str:
    names = {m.file.path: m.file.name for m in c.members}
    badge = '<span class="badge">mixed rights</span>' if c.mixed_rights else ""
    # Each match reads from the copy the policy ranks lower: 'copy-q60.jpg, compared with master.png:
    # recompressed'.
    links = "".join(f'<tr data-relation="{_e(lk.relation)}" data-distance="{lk.distance}" data-by="{_e(lk.algorithm)}">'
                    f"<td>{_e(names[lk.copy])}</td><td>{_e(names[lk.a if lk.copy == lk.b else lk.b])}</td>"
                    f"<td>{_e(lk.description)}</td></tr>" for lk in c.links)
    return (f'<section class="cluster" id="cluster-{c.number}" data-rule="{_e(c.deciding_rule)}">'
            f"<h3>Cluster {c.number}: {len(c.members)} copies, {_e(human_bytes(c.reclaimable_bytes))} "
            f"reclaimable{badge}</h3>"
            f'<p class="why">Keep <strong>{_e(names[c.keeper])}</strong> ({_e(c.keeper_facts)}): {_e(c.reason)}.</p>'
            f'<div class="copies">{"".join(_card(m, th, agreed) for m in c.members)}</div>'
            f"<details><summary>How the copies match ({plural(len(c.links), 'match', 'matches')})</summary>"
            "<table><thead><tr><th>copy</th><th>compared with</th><th>what it is</th></tr></thead>"
            f"<tbody>{links}</tbody></table></details></section>")


def _clusters(r: Report, th: _Thumbs) -> str:
    names = _names(r)
    agreed = {m.path: _master_words(m, names) for m in r.consortium_masters}
    body = "".join(_cluster(c, th, agreed) for c in r.clusters) or '<p class="none">No duplicate clusters.</p>'
    return (f'<h2>Duplicate clusters</h2><p data-policy="{_e(r.policy_version)}">Each cluster shows every copy '
            "side by side. The suggested keeper follows the consortium's published master policy: never a crop "
            "or a copy in a mat/border when the fuller picture is held; then the most pixels, lossless over "
            "lossy, more bits per channel, colour over greyscale, the best JPEG quality, the earliest capture "
            "date, known rights.</p>" + body)


def _names(r: Report) -> dict[str, str]:
    """asset id -> file name, for our files the report shows."""
    out = {m.file.asset_id: m.file.name for c in r.clusters for m in c.members}
    out.update({m.asset_id: m.name for m in r.consortium_masters})
    return out


def _master_words(m: MasterOutcome, names: dict[str, str]) -> str:
    """The agreed master in words: ours by file name; another member's by member only (its asset
    id means nothing here; masters.csv and report.json carry it)."""
    if not m.we_hold_master:
        return f"master held by member {m.master_member}"
    if m.master_asset == m.asset_id:
        return "we hold the master: this file"
    return f"we hold the master: our {names.get(m.master_asset, 'other copy')}"


def _member_rows(members: list[Member]) -> list[list[str]]:
    return [[f'<a href="#cluster-{m.cluster}">{m.cluster}</a>', f'<span class="path">{_e(m.file.path)}</span>',
             _e(m.file.capture_date or "unknown"), _e(_dims(m.file)), _e(_quality(m.file)),
             _e(human_bytes(m.file.size)), "keeper" if m.keeper else "copy"] for m in members]


def _ranked(title: str, note: str, members: list[Member]) -> str:
    if not members:
        return f'<h2>{_e(title)}</h2><p class="none">None.</p>'
    return (f"<h2>{_e(title)}</h2><p>{_e(note)}</p>"
            + _table(["cluster", "path", "capture date", "pixels", "format", "size", "role"],
                     _member_rows(members), {0, 5}))


def _masters(r: Report) -> str:
    title = "<h2>Consortium masters</h2>"
    if not r.consortium_masters:
        return (title + '<p class="none">No agreed masters recorded; `dedup node decisions` fetches them from the '
                "coordinator.</p>")
    names = _names(r)
    rows = [[f'<span class="path" data-cluster="{_e(m.cluster_id)}" data-proposal="{_e(m.proposal_id)}" '
             f'data-master="{_e(m.master_member)}/{_e(m.master_asset)}">{_e(m.path)}</span>',
             f"<strong>{_e(_master_words(m, names))}</strong>" if m.we_hold_master else _e(_master_words(m, names)),
             _e(wording.BASIS_WORDS.get(m.basis, m.basis)), str(m.outcome_log_index),
             "yes: a new proposal is open to votes (dedup node decisions)" if m.pending_proposal else ""]
            for m in r.consortium_masters]
    held = sum(m.we_hold_master for m in r.consortium_masters)
    return (title + f"<p>Masters agreed with the other members for {len(rows)} of our files"
            f" ({held} held here). Each outcome is a signed entry in the consortium's log.</p>"
            + _table(["path", "master", "agreed by", "log entry", "re-proposal pending"], rows, {3}))


def _rights_section(r: Report) -> str:
    out = ["<h2>Rights</h2><h3>Rights-restricted files</h3>"]
    if r.rights_restricted:
        out.append(_table(["path", "rights"], [[f'<span class="path">{_e(f.path)}</span>', _e(f.rights_shown)]
                                               for f in r.rights_restricted]))
    else:
        out.append('<p class="none">None.</p>')
    out.append("<h3>Clusters that mix rights statuses</h3>")
    mixed = [c for c in r.clusters if c.mixed_rights]
    if mixed:
        out.append(_table(["cluster", "statuses"], [[f'<a href="#cluster-{c.number}">{c.number}</a>',
                                                      "<br>".join(_e(rights.label(s)) for s in c.rights_statuses)]
                                                     for c in mixed]))
    else:
        out.append('<p class="none">None.</p>')
    return "".join(out)


def _excluded(r: Report) -> str:
    if not r.excluded_links:
        return '<h2>Marked as not duplicates</h2><p class="none">None.</p>'
    rows = [[f'<span class="path">{_e(x.a)}</span>', f'<span class="path" data-relation="{_e(x.relation)}">'
             f"{_e(x.b)}</span>", _e(x.description), _e(x.note or ""), _e(x.marked)] for x in r.excluded_links]
    return ("<h2>Marked as not duplicates</h2><p>The matching rule links these pairs, but they were marked as "
            "not duplicates; the clusters above ignore them.</p>"
            + _table(["file", "file", "what the rule would call them", "note", "marked"], rows))


def _unreadable(r: Report) -> str:
    if not r.unreadable:
        return '<h2>Unreadable files</h2><p class="none">None.</p>'
    rows = [[f'<span class="path">{_e(u.path)}</span>', _e(human_bytes(u.size)), _e(u.reason)] for u in r.unreadable]
    return "<h2>Unreadable files</h2>" + _table(["path", "size", "reason"], rows, {1})


def _low_information(r: Report, th: _Thumbs) -> str:
    if not r.low_information:
        return '<h2>Low-information images</h2><p class="none">None.</p>'
    cards = "".join(f'<figure class="copy">{th.img(f)}<figcaption><p class="name">{_e(f.name)}</p>'
                    f'<p class="path">{_e(f.path)}</p><dl><dt>pixels</dt><dd>{_e(_dims(f))}</dd>'
                    f"<dt>size</dt><dd>{_e(human_bytes(f.size))}</dd></dl></figcaption></figure>"
                    for f in r.low_information)
    return ("<h2>Low-information images</h2><p>Flat or near-blank images (blank pages, lens caps, solid "
            "fills) are never matched perceptually, so they appear only here for review.</p>"
            f'<div class="copies">{cards}</div>')


def title(r: Report) -> str:
    """The page's title: the member's id, or, for a collection that has joined no consortium, the
    folder it was scanned from (an empty name after a colon reads as a fault)."""
    if r.member_id:
        return f"Duplicate audit: {r.member_id}"
    if len(r.sources) == 1:
        return f"Duplicate audit of {r.sources[0].source}"
    if r.sources:
        return f"Duplicate audit of {plural(len(r.sources), 'source')}"
    return "Duplicate audit"


def render(report: Report, *, thumbnails: bool = True, max_thumbnails: int | None = MAX_THUMBNAILS) -> str:
    th = _Thumbs(thumbnails, max_thumbnails)
    r = report
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title(r))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title(r))}</h1>",
        f'<p class="meta">Generated {_e(r.generated_at)} from the node catalogue; master policy '
        f"{_e(r.policy_version)}; report {_e(r.schema)}.</p>",
        _summary(r), _cost(r), _sources(r), _clusters(r, th), _masters(r),
        _ranked("Oldest duplicates", "Copies in clusters with a known capture date, earliest first "
                "(at most 20).", r.oldest_duplicates),
        _ranked("Lowest-quality copies", "Copies other than the keepers, fewest pixels first, then lowest "
                "JPEG quality (at most 20).", r.lowest_quality),
        _rights_section(r), _excluded(r), _unreadable(r), _low_information(r, th),
        "<footer><p><strong>This report never deletes or moves files.</strong> It only reads the node's "
        "catalogue and, for previews, the node's own images. Keepers are suggestions; any removal is a "
        "separate, reviewed decision.</p></footer></body></html>",
    ]
    return "\n".join(parts)


def write_html(report: Report, path: Path | str, *, thumbnails: bool = True,
               max_thumbnails: int | None = MAX_THUMBNAILS) -> None:
    """Write the report as one HTML file with everything embedded (previews of at most
    ``max_thumbnails`` files, None for all; later copies get a placeholder)."""
    Path(path).write_text(render(report, thumbnails=thumbnails, max_thumbnails=max_thumbnails), encoding="utf-8")
