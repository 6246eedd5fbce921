# Condition monitoring on the board: sensor readings -> window features -> the net ->
# actions on pins, at a fixed sampling period, with no host attached.
#
#   m = Monitor(config, net)        config: a dict, as in docs/MONITOR.md
#   m.feed(values, now_ms)          one reading per input; a result at a window's end
#   m.run(duration_ms)              reads the configured sources every period
#
# A replayed reading (the host's --replay, a test) goes through feed() exactly as a
# live one does: only the read differs. Windows are tumbling (each sample in one
# window), and every feature but the raw values is accumulated as samples arrive, so
# the work between a window's last sample and its action is the net and a few sums.
import gc
import math
import time
from array import array

FEATURES = ("raw", "mean", "std", "min", "max", "rms", "slope")
_INF = float("inf")


class ConfigError(ValueError):
    pass


def feature_count(config):
    """How many numbers a window gives the net: per input, each feature's (raw: window)."""
    per_input = sum(config["window"] if f == "raw" else 1 for f in config["features"])
    return per_input * len(config["inputs"])


def check(config, inputs=None, outputs=None, labels=()):
    """The config with its defaults, or ConfigError saying what is wrong; ``inputs`` and
    ``outputs`` are the net's widths when known, ``labels`` its class names."""
    if not isinstance(config, dict):
        raise ConfigError("a monitor configuration is a JSON object")
    c = dict(config)
    if not isinstance(c.get("inputs"), list) or not c["inputs"]:
        raise ConfigError("'inputs' must list the sources, e.g. [{\"adc\": 4}]")
    for src in c["inputs"]:
        if not isinstance(src, dict) or not ("adc" in src or "call" in src or "replay" in src):
            raise ConfigError("an input is {\"adc\": channel}, {\"call\": \"function\"} (of sensors.py) "
                              "or {\"replay\": \"name\"}, not %r" % (src,))
        name = src.get("call")
        if name is not None and not callable(name) and not (
                isinstance(name, str) and name and name[0] != "_"
                and all(c.isalpha() or c.isdigit() or c == "_" for c in name)):
            raise ConfigError("'call' names a function of sensors.py, such as \"read\", not %r" % (name,))
    c["period_ms"] = _number(c, "period_ms", 100, 1)
    c["window"] = int(_number(c, "window", 10, 1))
    feats = c.get("features", ["mean"])
    if not isinstance(feats, list) or not feats or any(f not in FEATURES for f in feats):
        raise ConfigError("'features' must list some of %s" % ", ".join(FEATURES))
    c["features"] = feats
    if inputs is not None and feature_count(c) != inputs:
        raise ConfigError("%d inputs x features %s over a window of %d give %d numbers; the "
                          "model takes %d" % (len(c["inputs"]), ",".join(feats), c["window"],
                                              feature_count(c), inputs))
    rules = c.get("actions", [])
    if not isinstance(rules, list):
        raise ConfigError("'actions' must be a list")
    c["actions"] = [_rule(r, k, outputs, labels) for k, r in enumerate(rules)]
    c["log"] = int(_number(c, "log", 64, 0))
    if c.get("at_boot", False) not in (True, False):
        raise ConfigError("'at_boot' must be true or false")
    return c


def _number(c, key, default, least):
    v = c.get(key, default)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v < least:
        raise ConfigError("'%s' must be a number of at least %s, not %r" % (key, least, v))
    return v


def _rule(r, k, outputs, labels):
    where = "action %d: " % k
    if not isinstance(r, dict):
        raise ConfigError(where + "must be an object")
    r = dict(r)
    if "class" in r:
        if r["class"] not in labels:
            raise ConfigError(where + "class %r is not one of the model's (%s)"
                              % (r["class"], ", ".join(labels) or "none"))
        r["output"] = list(labels).index(r["class"])
    out = r.get("output", 0)
    if not isinstance(out, int) or out < 0 or (outputs is not None and out >= outputs):
        raise ConfigError(where + "'output' must be a model output's index")
    r["output"] = out
    for key, default in (("above", 0.5), ("hysteresis", 0.05), ("hold_ms", 0), ("on", 1), ("off", 0)):
        v = r.get(key, default)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ConfigError(where + "'%s' must be a number" % key)
        r[key] = v
    if r["hysteresis"] < 0 or r["hold_ms"] < 0:
        raise ConfigError(where + "'hysteresis' and 'hold_ms' must not be negative")
    pin = [key for key in ("pin", "led", "pwm") if key in r]
    if len(pin) != 1:
        raise ConfigError(where + "needs one of 'pin' (a GPIO number), 'led' or 'pwm' (a GPIO number)")
    return r


class _Window:
    # One input's sums over the current window, relative to its first sample (so that
    # a small spread on a large offset keeps its digits in the board's float32).
    def __init__(self, n, raw):
        self.raw = array("f", range(n)) if raw else None
        self.reset()

    def reset(self):
        self.k = 0
        self.base = self.s = self.ss = self.si = 0.0
        self.lo, self.hi = _INF, -_INF

    def add(self, v):
        if self.k == 0:
            self.base = v
        d = v - self.base
        if self.raw is not None:
            self.raw[self.k] = v
        self.s += d
        self.ss += d * d
        self.si += self.k * d
        if v < self.lo:
            self.lo = v
        if v > self.hi:
            self.hi = v
        self.k += 1

    def features(self, names, period_s, dst, at):
        n = self.k
        mean_d = self.s / n
        mean = self.base + mean_d
        for name in names:
            if name == "raw":
                for i in range(n):
                    dst[at + i] = self.raw[i]
                at += n
                continue
            if name == "mean":
                v = mean
            elif name == "std":
                v = math.sqrt(max(0.0, self.ss / n - mean_d * mean_d))
            elif name == "min":
                v = self.lo
            elif name == "max":
                v = self.hi
            elif name == "rms":  # of the values themselves: sum v^2 = sum (base + d)^2
                v = math.sqrt(max(0.0, self.base * self.base + 2 * self.base * mean_d + self.ss / n))
            else:  # slope: least squares against time, per second
                sxx = n * (n * n - 1) / 12.0
                v = (self.si - (n - 1) / 2.0 * self.s) / sxx / period_s if n > 1 else 0.0
            dst[at] = v
            at += 1
        return at


class Monitor:
    def __init__(self, config, net, outputs=None, log=None):
        self.net = net
        self.config = c = check(config, net.inputs, net.outputs, net.labels)
        self.windows = [_Window(c["window"], "raw" in c["features"]) for _ in c["inputs"]]
        self.x = array("f", range(net.inputs))
        self.rules = c["actions"]
        self.outputs = outputs if outputs is not None else [_output(r) for r in self.rules]
        self.state = [False] * len(self.rules)
        self.since = [None] * len(self.rules)  # when each rule last switched (ms)
        self.log = log
        self.last_class = self.last_bits = None
        self.windows_done = 0
        self.gc_us = 0  # how long the last collection in idle time took
        self.collections = 0
        self.collected = False  # in idle time, in this window
        for out, r in zip(self.outputs, self.rules):
            out.set(r["off"])

    def feed(self, values, now_ms=None):
        """One reading of every input. At a window's end: the result, a dict of the
        features, the net's outputs, the class, the rules' states (bits), the event
        logged (its sequence number, or None) and reaction_us, the board time from
        this reading's arrival to the actions set."""
        t0 = time.ticks_us()
        now = time.ticks_ms() if now_ms is None else now_ms
        for w, v in zip(self.windows, values):
            w.add(float(v))
        if self.windows[0].k < self.config["window"]:
            return None
        at = 0
        period_s = self.config["period_ms"] / 1000.0
        for w in self.windows:
            at = w.features(self.config["features"], period_s, self.x, at)
            w.reset()
        y = self.net.forward(self.x)
        outputs = [y[i] for i in range(self.net.outputs)]
        cls = self.net.decide(y)
        bits = self._act(outputs, now)
        reaction = time.ticks_diff(time.ticks_us(), t0)
        event = None
        if self.log is not None and (cls != self.last_class or bits != self.last_bits):
            event = self.log.write(now, cls, outputs, bits)  # a change: not every window
        self.last_class, self.last_bits = cls, bits
        self.windows_done += 1
        self.collected = False
        return {"features": list(self.x), "outputs": outputs, "class": cls, "actions": bits,
                "event": event, "reaction_us": reaction, "ms": now}

    def idle(self, us_left):
        """After a reading, with ``us_left`` microseconds until the next: collect the
        heap, once per window, if a collection fits. Float arithmetic allocates, and a
        collection that falls inside a window's last reading delays its action by
        milliseconds (7 ms on an RP2040); made here, when there is time, it leaves the
        window the heap it needs. The first one, unmeasured, is made at once."""
        if not self.collected and us_left > self.gc_us + (self.gc_us >> 2):
            t0 = time.ticks_us()
            gc.collect()
            self.gc_us = time.ticks_diff(time.ticks_us(), t0)
            self.collected = True
            self.collections += 1

    def _act(self, outputs, now):
        bits = 0
        for k, r in enumerate(self.rules):
            score, on = outputs[r["output"]], self.state[k]
            want = score >= r["above"] if not on else score >= r["above"] - r["hysteresis"]
            held = self.since[k] is not None and time.ticks_diff(now, self.since[k]) < r["hold_ms"]
            if want != on and not held:
                self.state[k], self.since[k] = want, now
                self.outputs[k].set(r["on"] if want else r["off"])
            bits |= (1 << k) if self.state[k] else 0
        return bits

    def run(self, duration_ms=None, report=None, stop=None):
        """Read the configured sources every period and feed them; ``report`` is called
        with each window's result. Stops after duration_ms, when ``stop()`` is true
        (asked once a period), or on Ctrl-C."""
        read = [_source(src) for src in self.config["inputs"]]
        period = int(self.config["period_ms"])
        start = due = time.ticks_ms()
        try:
            while duration_ms is None or time.ticks_diff(due, start) < duration_ms:
                if stop and stop():
                    break
                wait = time.ticks_diff(due, time.ticks_ms())
                if wait > 0:
                    time.sleep_ms(wait)
                result = self.feed([f() for f in read], due)
                due = time.ticks_add(due, period)
                if result is not None and report:
                    report(result)
                self.idle(1000 * time.ticks_diff(due, time.ticks_ms()))
        except KeyboardInterrupt:
            pass


class Recorder:
    """An output where the port has no pins (the virtual Pico): keeps every level set."""

    def __init__(self):
        self.levels = []

    def set(self, level):
        self.levels.append(level)


class _Pin:
    def __init__(self, pin):
        self.pin = pin

    def set(self, level):
        self.pin.value(1 if level else 0)


class _Pwm:
    def __init__(self, pwm):
        self.pwm = pwm

    def set(self, level):  # a duty from 0 to 1
        self.pwm.duty_u16(int(min(1.0, max(0.0, level)) * 65535))


def _output(rule):
    try:
        from machine import PWM, Pin
    except ImportError:  # no pins on this port
        return Recorder()
    if "pwm" in rule:
        pwm = PWM(Pin(rule["pwm"]))
        pwm.freq(int(rule.get("freq", 1000)))
        return _Pwm(pwm)
    return _Pin(Pin("LED" if "led" in rule else rule["pin"], Pin.OUT))


def _source(src):
    # A function returning one reading of the source.
    if "adc" in src:
        from machine import ADC

        adc = ADC(src["adc"])
        if src["adc"] == 4 and src.get("unit", "celsius") == "celsius":
            # The RP2040's sensor: 0.706 V at 27 C, -1.721 mV per degree (datasheet 4.9.5).
            return lambda: 27.0 - (adc.read_u16() * 3.3 / 65535 - 0.706) / 0.001721
        return lambda: adc.read_u16() * 3.3 / 65535
    if "call" in src:
        # A function of the user's sensors.py, beside main.py: the module's name is fixed,
        # so a configuration sent over the wire can name a function but import nothing else.
        # At the REPL the function itself may be given.
        name = src["call"]
        if callable(name):
            return name
        try:
            import sensors
        except ImportError:
            raise ConfigError("input %r needs sensors.py on the board, beside main.py" % (src,))
        if not callable(getattr(sensors, name, None)):
            raise ConfigError("sensors.py has no function %r" % name)
        return getattr(sensors, name)
    raise ConfigError("input %r can only be replayed (anne-host monitor --replay)" % (src,))


CONFIG = "monitor.json"  # beside main.py, in the board's root


def at_boot():
    """main.py's first step: with a monitor.json whose "at_boot" is true, monitor with no
    host attached until a host sends a byte (or Ctrl-C); then return, the monitor and its
    code let go, for the server to start. A missing or broken file: return at once."""
    import json
    import select
    import sys

    try:
        with open(CONFIG) as f:
            config = json.load(f)
        if not isinstance(config, dict) or config.get("at_boot") is not True:
            return False
    except (OSError, ValueError):
        return False
    poll = select.poll()
    poll.register(sys.stdin, select.POLLIN)
    try:
        monitor(config, quiet=True, stop=lambda: poll.poll(0))
    except Exception as e:  # a monitor that cannot run must not keep the server from starting
        print("monitor not started: %s: %s" % (type(e).__name__, e))
    return True


def monitor(config=None, duration_ms=None, quiet=False, stop=None):
    """anne.monitor(): the configuration (a dict, a file, or monitor.json), its model
    loaded, its log opened, and the loop run for ``duration_ms`` or until Ctrl-C,
    printing a line per window unless ``quiet``. Returns the Monitor."""
    import json

    from . import load, store
    from .eventlog import EVENTS, EventLog

    if config is None or isinstance(config, str):
        with open(config or CONFIG) as f:
            config = json.load(f)
    net = load(config.get("model", ""))
    slots = config.get("log", 64)
    if slots:
        try:
            import os

            os.mkdir(store.ROOT)
        except OSError:
            pass  # it exists
    m = Monitor(config, net, log=EventLog(EVENTS, slots) if slots else None)

    def report(r):
        print("%8d ms  class %s  %s  actions %s  %d us" % (
            r["ms"], net.labels[r["class"]] if r["class"] < len(net.labels) else r["class"],
            " ".join("%.3f" % v for v in r["outputs"]), bin(r["actions"]), r["reaction_us"]))

    m.run(duration_ms, None if quiet else report, stop)
    return m
