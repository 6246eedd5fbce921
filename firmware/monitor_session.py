# The monitor over the wire (PROTOCOL.md, "Monitoring"): its configuration stored on
# the board, a monitor session fed with replayed readings or reading its own sensors a
# window at a time, and its event log read back. Imported for these requests only and
# forgotten when the session ends (code is heap).
import gc
import json
import os
import struct

from . import store
from .eventlog import EVENTS, EventLog
from .monitoring import CONFIG, ConfigError, Monitor, Recorder, check
from .protocol import modelfile
from .refused import Refused, field, flash_error, int_field


_CONFIG_TMP = ".monitor.json"
_MAX_CONFIG = 2048  # bytes of JSON
_PAGE = 24  # events per reply: [seq, ms, class, action bits, 8 outputs] each, within a frame


def _model_shape(name):
    # (inputs, outputs, labels) of a stored model, read without its weights.
    try:
        with open(store.path(store.check_name(name)), "rb") as f:
            meta, layers = modelfile.load(f, keep=False)
    except (OSError, ValueError):
        raise Refused("no_model", "the configuration names model %r, which is not stored" % name)
    return layers[0].inputs, layers[-1].units, meta.get("labels") or ()


def checked(config):
    """The configuration with its defaults, checked against the model it names."""
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        raise Refused("bad_config", "a monitor configuration is a map with a 'model' name")
    inputs, outputs, labels = _model_shape(config["model"])
    try:
        return check(config, inputs, outputs, labels)
    except ConfigError as e:
        raise Refused("bad_config", str(e))


def configure(req):
    config = field(req, "config", dict, "a map")
    checked(config)
    text = json.dumps(config)
    if len(text) > _MAX_CONFIG:
        raise Refused("bad_config", "the configuration is %d bytes of JSON; at most %d" % (len(text), _MAX_CONFIG))
    try:  # written beside, then renamed over: the old file or the new, never half
        with open(_CONFIG_TMP, "w") as f:
            f.write(text)
        os.rename(_CONFIG_TMP, CONFIG)
    except OSError as e:
        raise flash_error(e)
    return {"stored": CONFIG, "bytes": len(text)}


def stored():
    try:
        with open(CONFIG) as f:
            return json.load(f)
    except OSError:
        raise Refused("no_config", "no monitor configuration on the board: anne-host monitor --configure FILE")
    except ValueError:
        raise Refused("bad_config", "%s is not JSON: configure the monitor again" % CONFIG)


class Session:
    """A monitor over the active model: ``replay`` readings come from the host and its
    actions are recorded, not set on pins; otherwise it reads its own sensors."""

    def __init__(self, svc, config, replay):
        config = checked(config)
        if svc.active.name != config["model"]:
            svc.active.activate(config["model"])
        self.replay = replay
        outputs = [Recorder() for _ in config["actions"]] if replay else None
        slots = config["log"]
        try:
            log = EventLog(EVENTS, slots) if slots else None
            self.monitor = Monitor(config, svc.active.need(), outputs, log)
        except ConfigError as e:
            raise Refused("bad_config", str(e))
        except ImportError as e:  # a pin or an ADC this port does not have
            raise Refused("no_sensor", "this board cannot read its sensors (%s): replay recorded "
                          "readings (anne-host monitor --replay FILE)" % e)
        except OSError as e:
            raise flash_error(e)
        self.sources = None

    def describe(self):
        c = self.monitor.config
        return {"model": c["model"], "inputs": len(c["inputs"]), "window": c["window"],
                "period_ms": c["period_ms"], "features": c["features"], "actions": c["actions"],
                "names": [src.get("name", "input %d" % k) for k, src in enumerate(c["inputs"])]}

    def feed(self, data, start_ms):
        # Replayed readings: float32, one per input each, at the sampling period from start_ms.
        m = self.monitor
        n = len(m.config["inputs"])
        if len(data) % (4 * n):
            raise Refused("bad_input", "readings are %d float32 values each; got %d bytes" % (n, len(data)))
        rows = len(data) // (4 * n)
        results = []
        for k in range(rows):
            values = struct.unpack_from("<%df" % n, data, 4 * n * k)
            r = m.feed(values, start_ms + int(k * m.config["period_ms"]))
            if r is not None:
                results.append(_compact(r))
        return {"windows": results}

    def read(self):
        # A window of live readings, at the sampling period: its result and readings.
        from .monitoring import _source

        m = self.monitor
        if self.sources is None:
            try:
                self.sources = [_source(src) for src in m.config["inputs"]]
            except (ImportError, AttributeError, ConfigError) as e:
                raise Refused("no_sensor", "this board cannot read its inputs (%s): replay "
                              "recorded readings (anne-host monitor --replay FILE)" % e)
        import time

        readings = []
        period = int(m.config["period_ms"])
        due = time.ticks_ms()
        while True:
            wait = time.ticks_diff(due, time.ticks_ms())
            if wait > 0:
                time.sleep_ms(wait)
            values = [f() for f in self.sources]
            readings.append(values)
            r = m.feed(values, due)
            if r is not None:
                out = _compact(r)
                out["readings"] = readings
                m.idle(1000 * period)  # the next window begins with the next request
                return {"windows": [out]}
            due = time.ticks_add(due, period)


def _compact(r):
    return {"ms": r["ms"], "features": r["features"], "outputs": r["outputs"], "class": r["class"],
            "actions": r["actions"], "event": r["event"], "reaction_us": r["reaction_us"]}


def events(req):
    # A page of the log, newest first: at most _PAGE records older than `before`.
    before = req.get("before")
    if before is not None and (not isinstance(before, int) or before < 1):
        raise Refused("bad_request", "field 'before' must be a positive int")
    out = [e for e in EventLog(EVENTS).read() if before is None or e[0] < before][:_PAGE]
    gc.collect()
    return {"events": out, "more": len(out) == _PAGE}


def handle(svc, req):
    """The reply to a monitoring request (svc: the Service, whose `monitoring` holds the
    open Session)."""
    cmd = req["cmd"]
    if cmd == "monitor_start" and svc.training:
        raise Refused("bad_request", "a training session is open: end it first (train_end)")
    if cmd == "monitor_config":
        return configure(req)
    if cmd == "events":
        return events(req)
    if cmd == "monitor_start":
        replay, config = req.get("replay", False), req.get("config")
        if replay is not True and replay is not False or config is not None and not isinstance(config, dict):
            raise Refused("bad_request", "field 'replay' must be true or false, 'config' a map")
        svc.monitoring = None
        svc.monitoring = Session(svc, config if config is not None else stored(), replay)
        return svc.monitoring.describe()
    if cmd not in ("monitor_feed", "monitor_read", "monitor_stop"):
        raise Refused("unknown_command", "unknown command %r" % cmd[:40])
    data = field(req, "x", (bytes, memoryview), "bin") if cmd == "monitor_feed" else None
    start = int_field(req, "start_ms") if cmd == "monitor_feed" else 0
    session = svc.monitoring
    if not session:
        raise Refused("no_monitor", "no monitor session is open: send monitor_start first")
    if cmd == "monitor_feed":
        return session.feed(data, start)
    if cmd == "monitor_read":
        return session.read()
    svc.monitoring = None  # monitor_stop
    return {"windows": session.monitor.windows_done}
