"""What `anne-host monitor` shows while it runs: a view that updates in place (rich's Live)
with the newest readings, features, class probabilities, the board's reaction time and
the events; one JSON line per window for scripts; a time-series picture at the end."""

import json
import sys

from .report import figure, save

_EVENTS_SHOWN = 8


class LiveView:
    """A terminal view of a monitoring run, redrawn after every window."""

    def __init__(self, session, labels):
        from rich.console import Console
        from rich.live import Live

        self.session, self.labels, self.rules = session, labels, session["actions"]
        self.events = []
        self.last = None
        self.count = 0
        self.live = Live(self._render(), console=Console(stderr=False), refresh_per_second=8,
                         transient=False)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        return self.live.__exit__(*exc)

    def window(self, r):
        self.last, self.count = r, self.count + 1
        if r.get("event") is not None:
            self.events.insert(0, r)
            del self.events[_EVENTS_SHOWN:]
        self.live.update(self._render())

    def _render(self):
        from rich.console import Group
        from rich.table import Table

        s = self.session
        head = Table.grid(padding=(0, 2))
        head.add_row("[b]%s[/b] on the board" % s["model"],
                     "%d inputs, windows of %d every %s ms x %d" % (s["inputs"], s["window"], s["period_ms"], s["window"]),
                     "windows: %d" % self.count)
        parts = [head]
        r = self.last
        if r is None:
            return Group(*parts)
        names = s["names"]
        feats = Table(title="features of the last window", title_justify="left")
        feats.add_column("input")
        for f in s["features"]:
            feats.add_column(f, justify="right")
        per = len(r["features"]) // max(1, len(names))
        for k, name in enumerate(names):
            values = r["features"][k * per:(k + 1) * per]
            if len(values) == len(s["features"]):
                feats.add_row(name, *["%.4g" % v for v in values])
        probs = Table(title="the net's outputs", title_justify="left")
        probs.add_column("class")
        probs.add_column("p", justify="right")
        probs.add_column("")
        for k, p in enumerate(r["outputs"]):
            label = self.labels[k] if k < len(self.labels) else str(k)
            mark = "[b]%s[/b]" % label if k == r["class"] else label
            probs.add_row(mark, "%.3f" % p, "#" * int(max(0.0, min(1.0, p)) * 30 + 0.5))
        acts = ", ".join("%s %s" % (_rule_name(rule, self.labels), "ON" if r["actions"] >> k & 1 else "off")
                         for k, rule in enumerate(self.rules)) or "none"
        parts += [feats, probs, "actions: %s    board reaction time: %d µs (board time)" % (acts, r["reaction_us"])]
        ev = Table(title="events (newest first)", title_justify="left")
        for col in ("seq", "t (s)", "class", "actions"):
            ev.add_column(col)
        for e in self.events:
            ev.add_row(str(e["event"]), "%.2f" % (e["ms"] / 1000.0), self._label(e["class"]), bin(e["actions"]))
        parts.append(ev)
        return Group(*parts)

    def _label(self, k):
        return self.labels[k] if 0 <= k < len(self.labels) else str(k)


def _rule_name(rule, labels):
    pin = "LED" if "led" in rule else "PWM %s" % rule["pwm"] if "pwm" in rule else "GPIO %s" % rule.get("pin")
    what = rule.get("class") or (labels[rule["output"]] if rule.get("output", 0) < len(labels) else "output %d" % rule.get("output", 0))
    return "%s (%s)" % (pin, what)


def json_line(r, labels):
    """One window as a JSON line (``anne-host monitor --json``)."""
    out = dict(r)
    out["label"] = labels[r["class"]] if 0 <= r["class"] < len(labels) else None
    print(json.dumps(out), flush=True)


def plot(watch, labels, path, title=None):
    """Class probabilities and actions over time, and the first input's mean if present."""
    import numpy as np

    if not watch.windows:
        raise ValueError("nothing to plot: no window was completed")
    t = np.array([w["ms"] for w in watch.windows]) / 1000.0
    p = np.array([w["outputs"] for w in watch.windows])
    acts = np.array([w["actions"] for w in watch.windows])
    fig = figure((9.0, 5.0))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for k in range(p.shape[1]):
        ax1.plot(t, p[:, k], lw=1.2, label=labels[k] if k < len(labels) else "output %d" % k)
    ax1.set_ylabel("the net's outputs")
    ax1.legend(fontsize=8, loc="upper left")
    ax1.grid(alpha=0.3)
    for k in range(int(acts.max()).bit_length() or 1):
        ax2.step(t, ((acts >> k) & 1) + 1.2 * k, where="post", lw=1.2, label="action %d" % k)
    ax2.set_ylabel("actions (on/off)")
    ax2.set_xlabel("time (s, board clock of the readings)")
    ax2.legend(fontsize=8, loc="upper left")
    ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    save(fig, path)


def warn(message):
    print(message, file=sys.stderr)
