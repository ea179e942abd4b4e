#!/usr/bin/env python3
"""Draws the key panels of dashboards/cloudca.json from /metrics scrapes, as a PNG.

Grafana cannot run here, so this evaluates the panels' PromQL by hand over the scraped samples:
rate() is Prometheus's extrapolated rate over a window of --window seconds (what
$__rate_interval becomes with a 1 s scrape), histogram_quantile() is Prometheus's linear
interpolation inside the bucket. Series the daemon does not export (yet) are skipped and the
panel says so, so the script works across builds.

Where the daemon cannot see an activity (the public listener had no request counter; CLI
issuance runs in its own process, so its counters never reach the daemon's /metrics), the
client-side record of the load is drawn instead, dashed and labelled "client", never mixed into
a server series.

The mixed-load panels (cloud signing, RA, CPU) use the daemon's counters where it has them
(approvals and RA requests by route in cloudca_http_requests_total, HSM "sign_bound" operations)
and the load generators' logs for what it cannot see: an approval's latency as the holder's app
lives it, and CPU sampled from /proc beside each scrape.

    plot-dashboard.py scrape.prom [more.prom] --out dashboard.png
        [--phases phases.tsv] [--ab ab-*.tsv] [--issuance-log issuance.log] [--window 4]
        [--signing-log signing.log] [--ra-log ra.log] [--cpu cpu.tsv --clk-tck 100]

Scrape file format: blocks of Prometheus text exposition, each preceded by "# SCRAPE <unix time>".
"""

import argparse
import datetime
import math
import os
import re
import socket
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PREFIX = "cloudca_"
PHASE_COLOURS = {"ocsp-presigned": "#1f77b4", "ocsp-nonce": "#ff7f0e", "ocsp-get": "#2ca02c"}
ISSUE_COLOURS = {("org", "issued"): "#9467bd", ("personal", "issued"): "#8c564b", ("org", "refused"): "#d62728",
                 ("personal", "refused"): "#e377c2", ("org", "failed"): "#000000", ("personal", "failed"): "#555555"}


def phase_order(name):
    """Load phases in the order they ran, unknown names last."""
    return list(PHASE_COLOURS).index(name) if name in PHASE_COLOURS else len(PHASE_COLOURS)


def outcome(rc):
    """The CLI's exit status as an issuance result: killed by a signal (128+n) or by the run's
    timeout (124) is a failure of the process, not a refusal by policy."""
    return "issued" if rc == 0 else "failed" if rc == 124 or rc >= 128 else "refused"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


# --- Reading ------------------------------------------------------------------------------------

def read_scrapes(paths):
    """{(name, frozenset(labels)): [(t, v), ...]} sorted by time, and the scrape times."""
    series = defaultdict(list)
    times = []
    for path in paths:
        t = None
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("# SCRAPE "):
                    t = float(line.split()[2])
                    times.append(t)
                    continue
                if t is None or not line or line.startswith("#"):
                    continue
                m = SAMPLE.match(line)
                if not m:
                    continue
                labels = frozenset(LABEL.findall(m.group(3) or ""))
                series[(m.group(1), labels)].append((t, float(m.group(4))))
    for samples in series.values():
        samples.sort()
    return series, sorted(set(times))


def read_phases(path):
    phases = []
    if path and os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            name, start, end = line.rstrip("\n").split("\t")
            phases.append((name, float(start), float(end)))
    return phases


def read_ab(paths):
    """ab -g files → {phase name: {unix second: completed requests}} (by start second)."""
    out = {}
    for path in paths or []:
        name = os.path.basename(path)[3:].rsplit(".", 1)[0]  # ab-<name>.tsv
        counts = defaultdict(int)
        with open(path, encoding="utf-8") as f:
            next(f, None)
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 2:
                    counts[int(parts[1])] += 1
        out[name] = counts
    return out


def read_ab_summary(tsv_path):
    """ab's own summary (ab-<name>.txt beside the -g file): requests/s, completed, non-2xx."""
    path = tsv_path[:-4] + ".txt"
    out = {}
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            for key, label in (("rps", "Requests per second:"), ("done", "Complete requests:"),
                               ("non2xx", "Non-2xx responses:")):
                if line.startswith(label):
                    out[key] = float(line.split()[len(label.split())])
    return out


def read_issuance_log(path):
    """Lines "start end profile rc" written around each CLI issue call."""
    rows = []
    if path and os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            p = line.split()
            if len(p) == 4:
                rows.append((float(p[0]), float(p[1]), p[2], int(p[3])))
    return rows


def read_rows(path, width):
    """Whitespace-separated lines of `width` fields (a load generator's log); missing file: []."""
    rows = []
    if path and os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            p = line.split()
            if len(p) == width:
                rows.append(p)
    return rows


def read_signing_log(path):
    """Lines "open claimed approved done rc" written around each signing session."""
    return [(float(a), float(b), float(c), float(d), int(rc)) for a, b, c, d, rc in read_rows(path, 5)]


def read_ra_log(path):
    """Lines "start end route status" written around each RA request."""
    return [(float(a), float(b), route, status) for a, b, route, status in read_rows(path, 4)]


def read_cpu(path, clk_tck):
    """Samples "time busy total daemon" (clock ticks) → [(time, machine cores busy, daemon
    cores)] between consecutive samples, stamped at the later one like a rate()."""
    rows = [(float(t), int(b), int(tot), int(d)) for t, b, tot, d in read_rows(path, 4)]
    out = []
    cores = os.cpu_count() or 1
    for (t0, b0, tot0, d0), (t1, b1, tot1, d1) in zip(rows, rows[1:]):
        if t1 <= t0 or tot1 <= tot0:
            continue
        out.append((t1, cores * (b1 - b0) / (tot1 - tot0), (d1 - d0) / clk_tck / (t1 - t0)))
    return out


# --- PromQL by hand -----------------------------------------------------------------------------

def extrapolated_rate(samples, t, window):
    """Prometheus rate(x[window]) evaluated at t (promql/functions.go extrapolatedRate)."""
    pts = [(ts, v) for ts, v in samples if t - window < ts <= t]
    if len(pts) < 2:
        return None
    increase, prev = 0.0, pts[0][1]
    for _, v in pts[1:]:
        increase += v - prev if v >= prev else v  # a drop is a counter reset
        prev = v
    first_t, first_v = pts[0]
    last_t = pts[-1][0]
    sampled = last_t - first_t
    if sampled <= 0:
        return None
    avg_step = sampled / (len(pts) - 1)
    to_start = first_t - (t - window)
    to_end = t - last_t
    if increase > 0 and first_v >= 0:
        to_start = min(to_start, sampled * first_v / increase)  # a counter does not go below zero
    threshold = avg_step * 1.1
    span = sampled
    span += to_start if to_start < threshold else avg_step / 2
    span += to_end if to_end < threshold else avg_step / 2
    return increase * span / sampled / window


def select(series, name, **match):
    """Series of one metric whose labels include `match` (value None: label must be absent)."""
    out = {}
    for (n, labels), samples in series.items():
        if n != name:
            continue
        d = dict(labels)
        if all((d.get(k) == v) if v is not None else (k not in d) for k, v in match.items()):
            out[labels] = samples
    return out


def sum_rate_by(series, name, by, times, window, where=None):
    """sum by (by) (rate(name[window])) at each time: {label tuple: [value or None]}."""
    groups = defaultdict(lambda: [None] * len(times))
    for labels, samples in select(series, name).items():
        d = dict(labels)
        if where and not where(d):
            continue
        key = tuple(d.get(k, "") for k in by)
        acc = groups[key]
        for i, t in enumerate(times):
            r = extrapolated_rate(samples, t, window)
            if r is not None:
                acc[i] = (acc[i] or 0.0) + r
    return dict(groups)


def bucket_quantile(q, buckets):
    """Prometheus histogram_quantile over [(le, rate)] (promql/quantile.go bucketQuantile)."""
    buckets = sorted(buckets)
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return None
    # Rates of cumulative buckets can come out non-monotonic by float noise; Prometheus fixes that.
    fixed, top = [], 0.0
    for le, c in buckets:
        top = max(top, c)
        fixed.append((le, top))
    total = fixed[-1][1]
    if total <= 0:
        return None
    rank = q * total
    b = next(i for i, (_, c) in enumerate(fixed) if c >= rank)
    if b == len(fixed) - 1:
        return fixed[-2][0]
    if b == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start = 0.0 if b == 0 else fixed[b - 1][0]
    end = fixed[b][0]
    below = 0.0 if b == 0 else fixed[b - 1][1]
    count = fixed[b][1] - below
    return start + (end - start) * ((rank - below) / count) if count > 0 else start


def quantile_by(series, hist, q, by, times, window):
    """histogram_quantile(q, sum by (by, le) (rate(hist_bucket[window]))): {key: [value]}."""
    rates = sum_rate_by(series, hist + "_bucket", by + ["le"], times, window)
    grouped = defaultdict(dict)
    for key, values in rates.items():
        grouped[key[:-1]][float(key[-1])] = values
    out = {}
    for key, by_le in grouped.items():
        out[key] = [
            bucket_quantile(q, [(le, v[i]) for le, v in by_le.items() if v[i] is not None])
            if all(v[i] is not None for v in by_le.values()) else None
            for i in range(len(times))
        ]
    return out


def gauge(series, name, times):
    """The gauge's value at each scrape (summed over label sets)."""
    found = select(series, name)
    if not found:
        return None
    out = [None] * len(times)
    index = {t: i for i, t in enumerate(times)}
    for samples in found.values():
        for t, v in samples:
            i = index.get(t)
            if i is not None:
                out[i] = (out[i] or 0.0) + v
    return out


def client_rate(stamps, times, window):
    """Events per second over the same trailing window as rate(), from client-side timestamps."""
    stamps = sorted(stamps)
    out = []
    for t in times:
        n = sum(1 for s in stamps if t - window < s <= t)
        out.append(n / window)
    return out


def client_quantile(spans, q, times, window):
    """The q-quantile (nearest rank) of the (start, end) spans that ended in each trailing
    window, in ms; NaN where none did."""
    out = []
    for t in times:
        d = sorted((end - start) * 1000 for start, end in spans if t - window < end <= t)
        out.append(d[min(len(d) - 1, math.ceil(q * len(d)) - 1)] if d else math.nan)
    return out


def nearest_rank(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)] if values else None


def has(series, name):
    return any(n == name for n, _ in series)


def peak(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


# --- Drawing ------------------------------------------------------------------------------------

def label_of(prefix, key, names):
    parts = [f"{v}" for k, v in zip(names, key) if v != ""]
    return (prefix + " " + " ".join(parts)).strip() or prefix


def draw_phases(ax, phases, t0):
    """Shades each load phase on every panel, so cause and effect line up across panels."""
    shades = {"ocsp-presigned": "#dbe9f6", "ocsp-nonce": "#fde3cf", "ocsp-get": "#e2f0d9"}
    for name, start, end in phases:
        if name in shades:
            ax.axvspan(start - t0, end - t0, color=shades[name], alpha=0.7, lw=0, zorder=0)
            ax.text((start + end) / 2 - t0, 1.005, name.replace("ocsp-", "OCSP "), transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=7.5, color="#555")


NOTES = defaultdict(list)


def note(ax, text):
    """A caveat printed under the panel title (collected, drawn by finish())."""
    NOTES[ax].append(text)


def plot_lines(ax, xs, groups, names, prefix="", scale=1.0, style="-", **kw):
    """One line per group; groups that stay at zero are left out, as Grafana's legend would be
    cluttered by them."""
    drawn = 0
    for key in sorted(groups):
        ys = [None if v is None else v * scale for v in groups[key]]
        if all(y is None or y == 0 for y in ys):
            continue
        ax.plot(xs, [math.nan if y is None else y for y in ys], style, lw=1.3,
                label=label_of(prefix, key, names), **kw)
        drawn += 1
    return drawn


def finish(ax, title, ylabel):
    lines = NOTES.get(ax, [])
    # Room for two note lines on every panel, so titles line up across a row.
    ax.set_title(title, fontsize=10.5, loc="left", pad=38)
    if lines:
        ax.text(0, 1.055, "\n".join(lines), transform=ax.transAxes, va="bottom", ha="left", fontsize=7.5,
                color="#b22")
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_xlabel("seconds since first scrape", fontsize=8.5)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=8)
    ax.set_ylim(bottom=0)


def legend(ax, *more_axes, loc="upper right"):
    # Headroom above the data for the legend, on every y axis of the panel.
    for a in (ax, *more_axes):
        bottom, top = a.get_ylim()
        a.set_ylim(bottom, top * 1.3)
    handles, labels = ax.get_legend_handles_labels()
    for other in more_axes:
        h, lab = other.get_legend_handles_labels()
        handles += h
        labels += lab
    if handles:
        ax.legend(handles, labels, fontsize=7, loc=loc, framealpha=0.85, ncol=1 if len(handles) < 6 else 2)


def is_approve(d):
    """The holder's approval on the api listener (route template, never the session id)."""
    return d.get("listener") == "api" and d.get("route", "").endswith("/approve")


def draw_signing(ax, series, times, xs, w, signed, headline):
    """Cloud signing: approvals and HSM signatures per second (daemon), completed sessions
    (client), and the approval's latency as the holder's app sees it."""
    P = PREFIX
    ax2 = ax.twinx()
    approvals = sum_rate_by(series, P + "http_requests_total", ["status"], times, w, where=is_approve)
    plot_lines(ax, xs, approvals, ["status"], prefix="approvals/s, HTTP", color="#1f77b4")
    bound = sum_rate_by(series, P + "hsm_operations_total", [], times, w, where=lambda d: d.get("op") == "sign_bound")
    plot_lines(ax, xs, bound, [], prefix="HSM sign_bound/s (holder keys)", color="#17becf", style="-.")
    if not approvals:
        note(ax, "no approvals in cloudca_http_requests_total{listener=\"api\"}")
    ok = [r for r in signed if r[4] == 0]
    if ok:
        ax.plot(xs, [y or math.nan for y in client_rate([r[3] for r in ok], times, w)], "--", lw=1.3,
                color="#2ca02c", label="signed and checked/s (client, rp)")
        for q, style, color in ((0.5, "--", "#d62728"), (0.99, "-", "#ff7f0e")):
            ax2.plot(xs, client_quantile([(r[1], r[2]) for r in ok], q, times, w), style, lw=1.2, marker=".",
                     ms=3, color=color, label=f"approve p{int(q * 100)} ms (client, app)")
        span = max(r[3] for r in ok) - min(r[0] for r in ok)
        headline["signing"] = (len(ok), len(signed) - len(ok), len(ok) / max(span, 1e-9),
                               nearest_rank([(r[2] - r[1]) * 1000 for r in ok], 0.5),
                               nearest_rank([(r[2] - r[1]) * 1000 for r in ok], 0.99))
        note(ax, "approve latency: `cloudca app approve` wall time (process start, TLS, PIN check, HSM)")
    elif not approvals:
        note(ax, "no signing load in this run")
    finish(ax, "Cloud signing: approvals/s and approval latency", "per second")
    ax2.set_ylabel("approval latency, ms", fontsize=9)
    ax2.set_ylim(bottom=0)
    ax2.tick_params(labelsize=8)
    legend(ax, ax2, loc="upper right")


def draw_ra(ax, series, times, xs, w, ra, headline):
    """RA API requests by route (daemon), the web front's own count, and its latency."""
    P = PREFIX
    ax2 = ax.twinx()
    routes = sum_rate_by(series, P + "http_requests_total", ["route", "status"], times, w,
                         where=lambda d: d.get("listener") == "admin" and d.get("route", "").startswith("/v1/ra/"))
    plot_lines(ax, xs, routes, ["route", "status"])
    if not routes:
        note(ax, "no /v1/ra/ routes in cloudca_http_requests_total{listener=\"admin\"}")
    if ra:
        ax.plot(xs, [y or math.nan for y in client_rate([r[1] for r in ra], times, w)], "--", lw=1.3,
                color="#333", label="all RA requests/s (client, web front)")
        for q, style, color in ((0.5, "--", "#d62728"), (0.99, "-", "#ff7f0e")):
            ax2.plot(xs, client_quantile([(r[0], r[1]) for r in ra], q, times, w), style, lw=1.1, color=color,
                     alpha=0.8, label=f"request p{int(q * 100)} ms (client)")
        good = [r for r in ra if r[3].startswith("2")]
        span = max(r[1] for r in ra) - min(r[0] for r in ra)
        headline["ra"] = (sum(1 for r in good if r[2] == "create"), len(good), len(ra) - len(good),
                          len(good) / max(span, 1e-9))
    finish(ax, "RA API (web front): requests/s by route / status", "requests/s")
    ax2.set_ylabel("request latency, ms (curl wall time)", fontsize=9)
    ax2.set_ylim(bottom=0)
    ax2.tick_params(labelsize=8)
    legend(ax, ax2, loc="upper right")


def draw_cpu(ax, series, times, xs, w, cpu, t0, headline):
    """Cores in use: the daemon's (from /proc, or process_cpu_seconds_total when exported) and
    the whole machine's, load generators and anything else running included."""
    cores = os.cpu_count() or 1
    if cpu:
        ax.plot([t - t0 for t, _, _ in cpu], [m for _, m, _ in cpu], color="#7f7f7f", lw=1.3,
                label="whole machine (load generators included)")
        ax.plot([t - t0 for t, _, _ in cpu], [d for _, _, d in cpu], color="#d62728", lw=1.5, label="cloudca daemon")
    elif has(series, "process_cpu_seconds_total"):
        daemon = sum_rate_by(series, "process_cpu_seconds_total", [], times, w)
        plot_lines(ax, xs, daemon, [], prefix="cloudca daemon", color="#d62728")
    else:
        note(ax, "no CPU samples (--cpu) and no process_cpu_seconds_total")
    ax.axhline(cores, color="#333", lw=0.8, ls=":")
    finish(ax, f"CPU: cores in use (of {cores})", "cores")
    ax.set_ylim(0, cores * 1.05)
    legend(ax, loc="center right")
    headline["cpu"] = cpu


def per_phase(phases, ab_paths, issued, signed, ra, cpu):
    """What each kind of work reached at once in each OCSP phase: mean rates over the phase
    (completions inside it) and the mean cores in use."""
    rows = []
    summaries = {os.path.basename(p)[3:-4]: read_ab_summary(p) for p in ab_paths}
    for name, start, end in phases:
        if name not in PHASE_COLOURS:
            continue
        span = end - start

        def rate(stamps):
            return sum(1 for s in stamps if start < s <= end) / span
        inside = [(m, d) for t, m, d in cpu if start < t <= end]
        rows.append({
            "phase": name,
            "ocsp": summaries.get(name, {}).get("rps"),
            "issued": rate([r[1] for r in issued if r[3] == 0]),
            "signed": rate([r[3] for r in signed if r[4] == 0]),
            "ra": rate([r[1] for r in ra if r[3].startswith("2")]),
            "machine": sum(m for m, _ in inside) / len(inside) if inside else None,
            "daemon": sum(d for _, d in inside) / len(inside) if inside else None,
        })
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scrapes", nargs="+", help="scrape files ('# SCRAPE <unix time>' + exposition text)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--phases", help="TSV: name, start, end (unix seconds)")
    ap.add_argument("--ab", nargs="*", default=[], help="ab -g files, named ab-<phase>.tsv")
    ap.add_argument("--issuance-log", help="lines 'start end profile rc' from the CLI issuance loop")
    ap.add_argument("--window", type=float, default=4.0,
                    help="rate window in seconds ($__rate_interval = 4 x scrape interval)")
    ap.add_argument("--host", default=socket.gethostname())
    ap.add_argument("--context", help="a note on the machine's state, shown in the title")
    ap.add_argument("--signing-log", help="lines 'open claimed approved done rc' from the signing loop")
    ap.add_argument("--ra-log", help="lines 'start end route status' from the RA loop")
    ap.add_argument("--cpu", help="lines 'time busy total daemon' (clock ticks from /proc)")
    ap.add_argument("--clk-tck", type=float, default=100.0, help="clock ticks per second (getconf CLK_TCK)")
    args = ap.parse_args()

    series, times = read_scrapes(args.scrapes)
    if len(times) < 3:
        sys.exit("too few scrapes to compute rates")
    phases = read_phases(args.phases)
    ab = read_ab(args.ab)
    issued = read_issuance_log(args.issuance_log)
    signed = read_signing_log(args.signing_log)
    ra = read_ra_log(args.ra_log)
    cpu = read_cpu(args.cpu, args.clk_tck)
    w = args.window
    t0 = times[0]
    xs = [t - t0 for t in times]
    P = PREFIX

    fig, axes = plt.subplots(3, 3, figsize=(19, 15.5))
    headline = {}

    # 1. HTTP request rate by listener / status ------------------------------------------------
    ax = axes[0][0]
    http = sum_rate_by(series, P + "http_requests_total", ["listener", "status"], times, w)
    plot_lines(ax, xs, http, ["listener", "status"])
    listeners = {k[0] for k in http}
    if "public" not in listeners:
        note(ax, "the public listener (CA certs, CRLs, OCSP) is not counted in\n"
                 "cloudca_http_requests_total by this build: see the OCSP panel")
    total = [sum(v[i] or 0 for v in http.values()) for i in range(len(times))]
    headline["http_peak"] = peak(total)
    finish(ax, "HTTP request rate by listener / status", "requests/s")
    legend(ax)

    # 2. OCSP and issuance throughput ----------------------------------------------------------
    ax = axes[0][1]
    ax2 = ax.twinx()
    ocsp_server = {}
    if has(series, P + "ocsp_responses_total"):
        ocsp_server = sum_rate_by(series, P + "ocsp_responses_total", ["source"], times, w)
        plot_lines(ax, xs, ocsp_server, ["source"], prefix="OCSP")
    elif "public" in listeners:
        ocsp_server = sum_rate_by(series, P + "http_requests_total", ["route"], times, w,
                                  where=lambda d: d.get("listener") == "public" and d.get("route", "").startswith("/ocsp"))
        plot_lines(ax, xs, ocsp_server, ["route"], prefix="OCSP")
    if ocsp_server:
        headline["ocsp_server_peak"] = peak([sum(v[i] or 0 for v in ocsp_server.values()) for i in range(len(times))])
    else:
        note(ax, "no server-side OCSP counter in this build (ocsp_responses_total, public listener);"
                 "\ndashed = requests completed by ab")
    # The client's view is drawn either way: next to a server series it is the cross-check.
    for name, counts in sorted(ab.items(), key=lambda kv: phase_order(kv[0])):
        # ab stamps requests by their start second; counting a second as done at its middle over
        # the same trailing window keeps the client line aligned with the rate() lines.
        ys = [sum(c for s, c in counts.items() if t - w < s + 0.5 <= t) / w for t in times]
        ax.plot(xs, [y if y else math.nan for y in ys], "--", lw=1.3, color=PHASE_COLOURS.get(name),
                label=f"OCSP {name[5:] if name.startswith('ocsp-') else name} (client, ab)")
    finish(ax, "OCSP and issuance throughput", "OCSP responses/s")
    if has(series, P + "issuance_total"):
        iss = sum_rate_by(series, P + "issuance_total", ["profile", "result"], times, w)
        plot_lines(ax2, xs, iss, ["profile", "result"], prefix="issuance", style=":")
    elif issued:
        for profile in sorted({r[2] for r in issued}):
            for what in ("issued", "refused", "failed"):
                stamps = [r[1] for r in issued if r[2] == profile and outcome(r[3]) == what]
                if stamps:
                    ax2.plot(xs, client_rate(stamps, times, w), ":", lw=1.8, color=ISSUE_COLOURS.get((profile, what)),
                             label=f"issuance {profile} {what} (client, CLI)")
        note(ax, "cloudca_issuance_total: not in the daemon's /metrics (the CLI counts in its own process);"
                 "\ndotted = CLI log")
    ax2.set_ylabel("issuances/s (dotted)", fontsize=9)
    ax2.set_ylim(bottom=0)
    ax2.tick_params(labelsize=8)
    legend(ax, ax2, loc="upper right")

    # 3. HSM operation rate and latency --------------------------------------------------------
    ax = axes[0][2]
    ax2 = ax.twinx()
    hsm = sum_rate_by(series, P + "hsm_operations_total", ["op"], times, w)
    plot_lines(ax, xs, hsm, ["op"], prefix="ops/s", color="#1f77b4")
    headline["hsm_peak"] = peak([sum(v[i] or 0 for v in hsm.values()) for i in range(len(times))])
    for q, style, color in ((0.5, "--", "#d62728"), (0.99, "-", "#ff7f0e")):
        lat = quantile_by(series, P + "hsm_operation_seconds", q, ["op"], times, w)
        plot_lines(ax2, xs, lat, ["op"], prefix=f"p{int(q * 100)} ms", scale=1000, style=style, color=color)
        headline[f"hsm_p{int(q * 100)}_ms_peak"] = peak([v * 1000 for vs in lat.values() for v in vs if v is not None])
    finish(ax, "HSM operation rate and p50 / p99 latency", "HSM operations/s")
    ax2.set_ylabel("latency, ms (queue to answer)", fontsize=9)
    ax2.set_ylim(bottom=0)
    ax2.tick_params(labelsize=8)
    legend(ax, ax2, loc="upper right")

    draw_signing(axes[1][0], series, times, xs, w, signed, headline)
    draw_ra(axes[1][1], series, times, xs, w, ra, headline)
    draw_cpu(axes[1][2], series, times, xs, w, cpu, t0, headline)

    # 4. Issuance p99 latency ------------------------------------------------------------------
    ax = axes[2][0]
    if has(series, P + "issuance_seconds_bucket") and any(
            v for (n, _), s in series.items() if n == P + "issuance_seconds_count" for _, v in s):
        for q, style in ((0.5, "--"), (0.99, "-")):
            lat = quantile_by(series, P + "issuance_seconds", q, ["profile"], times, w)
            plot_lines(ax, xs, lat, ["profile"], prefix=f"p{int(q * 100)}", scale=1000, style=style)
    elif issued:
        for profile in sorted({r[2] for r in issued}):
            rows = [r for r in issued if r[2] == profile and r[3] == 0]
            ys = []
            for t in times:
                d = sorted((r[1] - r[0]) * 1000 for r in rows if t - w < r[1] <= t)
                ys.append(d[min(len(d) - 1, math.ceil(0.99 * len(d)) - 1)] if d else math.nan)
            ax.plot(xs, ys, "--", lw=1.3, marker=".", ms=3, label=f"p99 {profile} (client: CLI wall time)")
            done = sorted((r[1] - r[0]) * 1000 for r in rows)
            if done:
                headline[f"cli_issue_{profile}_p99_ms"] = done[min(len(done) - 1, math.ceil(0.99 * len(done)) - 1)]
        note(ax, "cloudca_issuance_seconds: no samples in the daemon (issuance ran in the CLI process);\n"
                 "dashed = CLI wall time: process start, HSM login, issue, commit")
    else:
        note(ax, "no issuance data")
    finish(ax, "Issuance p99 latency", "ms")
    legend(ax)

    # 5. TLS handshake failures and access denials ---------------------------------------------
    ax = axes[2][1]
    tls_labels = sorted({k for (n, labels) in series if n == P + "tls_handshake_failures_total" for k, _ in labels})
    tls = sum_rate_by(series, P + "tls_handshake_failures_total", tls_labels, times, w)
    plot_lines(ax, xs, tls, tls_labels, prefix="TLS handshake failure", color="#9467bd")
    den_labels = sorted({k for (n, labels) in series if n == P + "access_denied_total" for k, _ in labels})
    den = sum_rate_by(series, P + "access_denied_total", den_labels, times, w)
    plot_lines(ax, xs, den, den_labels, prefix="access denied", color="#d62728")
    for name, key in ((P + "tls_handshake_failures_total", "tls_failures"), (P + "access_denied_total", "denials")):
        headline[key] = sum(s[-1][1] for (n, _), s in series.items() if n == name)
    finish(ax, "TLS handshake failures and access denials", "events/s")
    legend(ax)

    # 6. HSM ready, audit appends and checkpoint age -------------------------------------------
    ax = axes[2][2]
    ax2 = ax.twinx()
    ready = gauge(series, P + "hsm_ready", times)
    if ready:
        ax.step(xs, [math.nan if v is None else v for v in ready], where="post", color="#2ca02c", lw=2,
                label="hsm_ready (0/1)")
    pool = gauge(series, P + "hsm_pool_size", times)
    if pool:
        ax.step(xs, [math.nan if v is None else v for v in pool], where="post", color="#7f7f7f", lw=1,
                ls="--", label="hsm_pool_size")
    missing = []
    if has(series, P + "audit_appends_total"):
        app = sum_rate_by(series, P + "audit_appends_total", [], times, w)
        plot_lines(ax, xs, app, [], prefix="audit appends/s", color="#1f77b4")
    else:
        missing.append("audit_appends_total")
    age = gauge(series, P + "audit_checkpoint_age_seconds", times)
    if age:
        ax2.plot(xs, [math.nan if v is None else v for v in age], color="#ff7f0e", lw=1.3,
                 label="audit checkpoint age (s)")
        headline["checkpoint_age_max_s"] = peak(age)
    else:
        missing.append("audit_checkpoint_age_seconds")
    if missing:
        note(ax, "not exported by this build: " + ", ".join("cloudca_" + m for m in missing))
    finish(ax, "HSM ready, audit appends and checkpoint age", "ready / sessions / appends per s")
    top = max([v for v in (pool or []) + (ready or []) if v is not None] + [1])
    ax.set_ylim(0, max(ax.get_ylim()[1], top * 1.2))
    ax2.set_ylabel("checkpoint age, s", fontsize=9)
    ax2.set_ylim(bottom=0)
    ax2.tick_params(labelsize=8)
    legend(ax, ax2, loc="lower right")

    for row in axes:
        for a in row:
            draw_phases(a, phases, t0)
            a.set_xlim(0, xs[-1])

    # Headline numbers from the client side, where the daemon has no counter for them.
    lines = []
    for path in sorted(args.ab, key=lambda p: phase_order(os.path.basename(p)[3:-4])):
        name = os.path.basename(path)[3:-4].replace("ocsp-", "OCSP ")
        summary = read_ab_summary(path)
        if "rps" in summary:
            bad = f", {summary['non2xx']:.0f} non-2xx" if summary.get("non2xx") else ""
            lines.append(f"{name}: {summary['rps']:,.0f} req/s{bad}")
    ok = [r for r in issued if r[3] == 0]
    if ok:
        # The rate is over the issuance loop's span, leaving out the two certificates made before the load.
        loop = [r for r in ok if not phases or r[0] >= phases[0][1]] or ok
        span = max(r[1] for r in loop) - min(r[0] for r in loop)
        refused = sum(1 for r in issued if outcome(r[3]) == "refused")
        failed = sum(1 for r in issued if outcome(r[3]) == "failed")
        lines.append(f"issued {len(ok)}, refused {refused}, crashed/timed out {failed}; "
                     f"{len(loop) / max(span, 1e-9):.1f}/s")
    if headline.get("hsm_peak") is not None:
        lines.append(f"HSM peak {headline['hsm_peak']:,.0f} ops/s, p99 peak {headline.get('hsm_p99_ms_peak') or 0:.1f} ms")
    # The second line: the other kinds of work.
    first_row = len(lines)
    if headline.get("signing"):
        n, bad, per_s, p50, p99 = headline["signing"]
        lines.append(f"signed {n} ({bad} not), {per_s:.1f}/s, approve p50/p99 {p50:.0f}/{p99:.0f} ms")
    if headline.get("ra"):
        orders, good, bad, per_s = headline["ra"]
        lines.append(f"RA {orders} orders, {good} requests ({bad} not 2xx), {per_s:.1f}/s")
    lines.append(f"TLS failures {headline['tls_failures']:.0f}, denials {headline['denials']:.0f}")
    # The same run phase by phase: everything the box did at once.
    at_once = []
    for r in per_phase(phases, args.ab, issued, signed, ra, headline.get("cpu") or []):
        cpu_text = (f", CPU {r['machine']:.1f} cores (daemon {r['daemon']:.1f})"
                    if r["machine"] is not None else "")
        ocsp = f"OCSP {r['ocsp']:,.0f}/s + " if r["ocsp"] is not None else ""
        at_once.append(f"{r['phase'].replace('ocsp-', 'OCSP ')}: {ocsp}issued {r['issued']:.1f}/s + "
                       f"signed {r['signed']:.1f}/s + RA {r['ra']:.1f} req/s{cpu_text}")

    cores = os.cpu_count()
    day = datetime.datetime.fromtimestamp(t0).strftime("%Y-%m-%d %H:%M")
    context = f"; {args.context}" if args.context else ""
    fig.suptitle(f"cloudca — real load run {day}, host {args.host}, {cores} cores{context} "
                 f"(rate window {w:g} s, 1 s scrapes, {len(times)} samples)", fontsize=13, x=0.01, ha="left", y=0.995)
    rows = ["   ·   ".join(lines[:first_row]), "   ·   ".join(lines[first_row:])]
    rows += [("at once:  " if i == 0 else "               ") + text for i, text in enumerate(at_once)]
    y = 0.972
    for text in rows:
        fig.text(0.01, y, text, fontsize=9.5, color="#333", ha="left")
        y -= 0.0115
    fig.tight_layout(rect=(0, 0, 1, y + 0.004), h_pad=2.5, w_pad=2.0)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    for line in lines + at_once:
        print("  " + line)
    for k, v in headline.items():
        if isinstance(v, (int, float)):
            print(f"  {k} = {v:,.2f}")


if __name__ == "__main__":
    main()
