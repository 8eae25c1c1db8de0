"""Plots of the curves (throughput against loss rate and against message size) and of the
real-path figures (one panel per metric, a bar per system), with matplotlib's Agg backend when
matplotlib is installed; otherwise :func:`write_plots` says why it wrote none."""

from __future__ import annotations

import textwrap
from pathlib import Path

from seigr_stt.bench.common import median
from seigr_stt.bench.model import Metric, Suite

__all__ = ["PathBar", "path_bars", "write_plots"]

#: One bar of the real-path plot: system (case name), median, minimum and maximum over rounds.
PathBar = tuple[str, float, float, float]


def _curve(
    suite: Suite, metric: Metric, system: str
) -> tuple[list[float], list[float], list[float], list[float]]:
    xs: list[float] = []
    mids: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    for case in metric.cases:
        if case.system != system:
            continue
        result = suite.result(metric.key, case.name)
        if result is None:
            continue
        values = result.finite("mbps")
        if not values:
            continue
        x = float(case.relay["loss"]) * 100 if case.relay else float(case.params["size"])
        xs.append(x)
        mid = median(values)
        mids.append(mid)
        lows.append(mid - min(values))
        highs.append(max(values) - mid)
    return xs, mids, lows, highs


def _tick(value: float, _position: object) -> str:
    """A log axis's tick: 200, 5k, 1.2M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def path_bars(suite: Suite) -> list[tuple[Metric, str, list[PathBar]]]:
    """The real-path metrics that have results (cases across the veth pair), each with the label
    of its first quantity and a bar per system that ran: ``(system, median, min, max)``."""
    panels: list[tuple[Metric, str, list[PathBar]]] = []
    for metric in suite.metrics:
        if metric.plot or not any(case.netns for case in metric.cases):
            continue
        quantity = metric.quantities[0]
        bars: list[PathBar] = []
        for case in metric.cases:
            result = suite.result(metric.key, case.name)
            values = result.finite(quantity.key) if result is not None else []
            if values:
                bars.append((case.name, median(values), min(values), max(values)))
        if bars:
            lower = "" if quantity.higher_is_better else ", lower is better"
            panels.append((metric, f"{quantity.label} ({quantity.unit}{lower})", bars))
    return panels


def write_plots(suite: Suite, directory: Path) -> list[str]:
    """Write ``throughput_vs_loss.png`` and ``throughput_vs_size.png`` (the curves) and
    ``real_path.png`` (the real-path figures), each when the suite has its metrics; return
    messages saying what was written or why not."""
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
        from matplotlib import ticker  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        return [
            f"plots skipped: matplotlib is not installed ({exc}); "
            "pip install -e '.[bench]' from a checkout"
        ]
    directory.mkdir(parents=True, exist_ok=True)
    messages: list[str] = []
    env = suite.env
    footer = f"{env['nproc']} CPUs, {env['cpu']}; Python {env['python']}, {env['loop']}"
    for metric in suite.metrics:
        if not metric.plot:
            continue
        systems = list(dict.fromkeys(c.system for c in metric.cases))
        fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
        plotted = 0
        for system in systems:
            xs, mids, lows, highs = _curve(suite, metric, system)
            if not xs:
                continue
            ax.errorbar(xs, mids, yerr=[lows, highs], marker="o", capsize=3, label=system)
            plotted += 1
        if metric.plot == "loss":
            ax.set_xlabel("datagrams lost each way (%)")
            name = "throughput_vs_loss.png"
        else:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("message size (bytes)")
            name = "throughput_vs_size.png"
        ax.set_yscale("log")  # the systems differ by orders of magnitude
        ax.set_ylabel("MB/s (median, min–max; log scale)")
        ax.set_title(metric.title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        if plotted:
            ax.legend(fontsize=8)
        fig.text(0.01, 0.01, footer, fontsize=6, color="gray")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        path = directory / name
        fig.savefig(path)
        plt.close(fig)
        messages.append(f"wrote {path}")
    panels = path_bars(suite)
    if panels:
        rows = (len(panels) + 1) // 2
        fig, axes = plt.subplots(rows, 2, figsize=(10, 3.2 * rows), dpi=100, squeeze=False)
        for ax, (metric, label, bars) in zip(axes.flat, panels, strict=False):
            names = [bar[0] for bar in bars]
            mids = [bar[1] for bar in bars]
            errors = [[bar[1] - bar[2] for bar in bars], [bar[3] - bar[1] for bar in bars]]
            colors = ["C0" if name.startswith("seigr_stt") else "C7" for name in names]
            ax.barh(names, mids, xerr=errors, color=colors, capsize=3)
            ax.invert_yaxis()  # the suite's order, top to bottom
            ax.set_xscale("log")  # the systems differ by orders of magnitude
            ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(_tick))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_xlabel(f"{label}; median, min–max; log scale", fontsize=8)
            title = metric.title.split(" (")[0].split(": ", 1)[-1]  # "Real path, MTU 1500: x"
            ax.set_title(textwrap.fill(title, 60), fontsize=9)
            ax.tick_params(labelsize=7)
            ax.grid(True, axis="x", which="both", alpha=0.3)
        for ax in list(axes.flat)[len(panels) :]:
            ax.axis("off")
        fig.suptitle(
            "Real path: a veth pair with MTU 1500 between two network namespaces", fontsize=10
        )
        fig.text(0.01, 0.01, footer, fontsize=6, color="gray")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        path = directory / "real_path.png"
        fig.savefig(path)
        plt.close(fig)
        messages.append(f"wrote {path}")
    return messages
